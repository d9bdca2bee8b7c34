"""Two copies on one disk are one backup; a copy on the library's disk is none.

Real filesystems: the tests' tmp_path is one disk and /dev/shm (a tmpfs) is
another, as a NAS mount would be.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.fake import FakeStore, sha256_bytes
from providers.filesystem import write_marker
from reconciler.gate import GateRefused, check_removal
from reconciler.independence import backup_groups
from reconciler.model import FileCopy
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


@pytest.fixture
def other_disk(tmp_path: Path) -> Iterator[Path]:
    place = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="reconcile-test-"))
    assert os.stat(place).st_dev != os.stat(tmp_path).st_dev, "need a second filesystem"
    yield place
    shutil.rmtree(place, ignore_errors=True)


def _targets(**places: tuple[Path, bool]) -> str:
    return "".join(
        f'[targets.{tid}]\nkind = "filesystem"\npath = "{path}"\n'
        + ("same_disk_ok = true\n" if ok else "")
        for tid, (path, ok) in places.items()
    )


def test_targets_on_the_library_disk_are_no_backup(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path,
        targets=_targets(nas=(tmp_path / "nas", False), usb=(tmp_path / "usb", False)),
        extra=KEEP_ORIGINALS,
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.out == (
        "Not done this run:\n"
        "  ! shared-disk (2): on the library's own disk: its copies are written but "
        "are not a backup (put it on another disk, or set same_disk_ok = true)\n"
        "      target nas\n"
        "      target usb\n"
        "  … waiting incoming:IMG_1.JPG: 0 of 2 verified copies (copies on one disk count "
        "once); kept in the source\n"
        "\n"
        "No changes. The library matches desired_state.toml. (2 shared-disk, 1 waiting)\n"
    )
    assert p.code == 0
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]  # copies made, none counted
    assert len(files_under(ws.target("nas"))) == 1


def test_two_targets_on_one_other_disk_count_once(tmp_path: Path, other_disk: Path) -> None:
    nas, usb = other_disk / "nas", other_disk / "usb"
    for tid, path in (("nas", nas), ("usb", usb)):
        write_marker(path, tid)
    ws = make_workspace(
        tmp_path,
        targets=_targets(nas=(nas, False), usb=(usb, False)),
        extra=KEEP_ORIGINALS,
        stores=("library",),
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0
    assert "  ! shared-disk target nas: on the same disk as usb: together they count as one" in (
        r.out
    )
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]  # one disk, one backup: kept

    # The person says these two are independent enough (say, two partitions
    # they back up separately): then they count twice, and the photo leaves.
    ws.config.write_text(
        ws.config.read_text().replace(f'path = "{usb}"\n', f'path = "{usb}"\nsame_disk_ok = true\n')
    )
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out
    assert "+ changed remove-from-source incoming:IMG_1.JPG" in r.out
    assert files_under(ws.incoming) == {}


def test_one_target_on_another_disk_is_one_backup(tmp_path: Path, other_disk: Path) -> None:
    write_marker(other_disk / "nas", "nas")
    ws = make_workspace(
        tmp_path,
        targets=_targets(nas=(other_disk / "nas", False), usb=(tmp_path / "usb", False)),
        extra=KEEP_ORIGINALS,
        stores=("library", "usb"),
    )
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out
    assert files_under(ws.incoming) == {}
    assert list(files_under(other_disk / "nas").values()) == [photo]


def test_the_gate_counts_disks_not_stores() -> None:
    photo = b"the photo" * 100
    sha = sha256_bytes(photo)
    stores = {i: FakeStore(i) for i in ("nas", "usb", "phone")}
    copies = {}
    for i, store in stores.items():
        store.files["p.jpg"] = photo
        copies[i] = {
            sha: FileCopy(store_id=i, path="p.jpg", size=len(photo), mtime_ns=0, sha256=sha)
        }
    one_disk = backup_groups({"nas": 7, "usb": 7, "phone": None}, library=1, same_disk_ok=())
    both = {k: v for k, v in stores.items() if k != "phone"}
    with pytest.raises(GateRefused) as e:
        check_removal([("p.jpg", sha)], need=2, stores=both, copies=copies, groups=one_disk)
    assert str(e.value) == (
        "p.jpg: 1 of 2 verified copies now (nas, usb); copies on one disk count once; kept"
    )
    # The phone is always a device of its own.
    assert check_removal(
        [("p.jpg", sha)], need=2, stores=stores, copies=copies, groups=one_disk
    ) == [sha]
    on_library = backup_groups({"nas": 1, "usb": 2}, library=1, same_disk_ok=())
    with pytest.raises(GateRefused, match=r"^p\.jpg: 1 of 2 verified copies now \(nas, usb\)"):
        check_removal([("p.jpg", sha)], need=2, stores=both, copies=copies, groups=on_library)
