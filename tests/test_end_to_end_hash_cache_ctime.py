"""The hash cache's key (size, mtime, ctime; the inode only of rows an older
version kept without a ctime), attacked: rows from before the ctime gain one
once trusted, import-legacy keeps it, an exFAT disk (inodes numbered anew at
each mount) is not read again whole, and what a run wrote or a chmod touched
is read at most once. Real exfat-fuse where a disk is needed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

import reconciler.observe.hasher as hasher_mod
from providers.filesystem import write_marker
from tests.helpers import KEEP_ORIGINALS, NAS_AND_USB, make_jpeg, make_workspace, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _flip(data: bytes) -> bytes:
    i = len(data) - 20
    return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1 :]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = hasher_mod.sha256_file

    def counting(path, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(hasher_mod, "sha256_file", counting)
    return seen


def _state_db(root: Path) -> Path:
    return root / "state" / "state.db"


def test_a_row_from_an_older_version_does_not_hide_a_later_in_place_edit(tmp_path: Path) -> None:
    """Rows cached before ctime was kept (ctime_ns NULL) are trusted, as the
    migration says ("they gain one when next read"). But a row trusted is
    never given its file's ctime, so an edit in place made *after* the
    upgrade (exiftool -P) is never seen either: the plan says the library
    matches while the targets hold only the old bytes."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    # as an older version left it
    with sqlite3.connect(_state_db(tmp_path)) as c:
        c.execute("update hash_cache set ctime_ns = null")
    # the first run of the new version: nothing changed, nothing to do
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    # now, after the upgrade, the photo is edited in place
    new = _flip(photo.read_bytes())
    _rewrite_in_place(photo, new)
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 2, "edited after the upgrade, yet the plan says nothing to do:\n" + r.out


def test_a_legacy_import_keeps_each_files_ctime(tmp_path: Path) -> None:
    """``import-legacy`` (current code) writes cache rows without a ctime."""
    from reconciler.legacy import _cached

    p = tmp_path / "a.jpg"
    p.write_bytes(b"x")
    row = _cached(str(p), os.stat(p), "0" * 64, time.time())
    assert row.ctime_ns == os.stat(p).st_ctime_ns


def test_a_converged_run_reads_nothing_again(tmp_path: Path, reads: list[str]) -> None:
    """Files the tool itself wrote (library, targets, sidecars): the no-op
    plan after the apply reads none of them."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    reads.clear()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert reads == []


def test_the_first_plan_after_an_apply_reads_nothing_the_apply_wrote(
    tmp_path: Path, reads: list[str]
) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    reads.clear()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    reads.clear()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    wrote = [p for p in reads if "/incoming/" not in p]
    assert wrote == [], wrote


def test_a_chmod_is_read_once_not_every_run(tmp_path: Path, reads: list[str]) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    photo.chmod(0o600)
    for f in media_under(ws.target("nas")):
        (ws.target("nas") / f).chmod(0o600)
    reads.clear()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert reads  # read once
    reads.clear()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert reads == []


def test_a_renamed_parent_folder_outside_any_store_is_no_storm(
    tmp_path: Path, reads: list[str]
) -> None:
    """Renaming a folder keeps its files' ctimes: the files under a renamed
    folder in incoming are new paths (read once), nothing more."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    (ws.incoming / "a").mkdir()
    make_jpeg(ws.incoming / "a" / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    os.rename(ws.incoming / "a", ws.incoming / "b")
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    reads.clear()
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert reads == [], r.out


@contextmanager
def _exfat_image(image: Path, at: Path) -> Iterator[Path]:
    loop = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        at.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount.exfat-fuse", "-o", "nonempty", loop, str(at)], check=True, capture_output=True
        )
        try:
            yield at
        finally:
            subprocess.run(["umount", str(at)], check=False, capture_output=True)
            time.sleep(0.3)
    finally:
        subprocess.run(["losetup", "--detach", loop], check=False, capture_output=True)


def test_an_exfat_disk_plugged_in_again_is_not_read_whole(tmp_path: Path, reads: list[str]) -> None:
    """exfat-fuse numbers inodes in the order files are looked up, per
    mount: a disk plugged in again shows other inodes for the same files
    (here: another program listed it first in another order, as a file
    manager or indexer does). Every file on it is read again each time."""
    image = tmp_path / "exfat.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    usb = tmp_path / "usb"
    with _exfat_image(image, usb):
        write_marker(tmp_path / "nas", "nas")
        write_marker(usb, "usb")
        ws = make_workspace(
            tmp_path, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",), removal=False
        )
        for i in range(4):
            make_jpeg(ws.incoming / f"IMG_{i}.JPG", datetime(2024 - i, 1, 2, tzinfo=UTC), seed=i)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    with _exfat_image(image, usb):
        # something else looks at the disk first, in its own order
        for p in sorted((q for q in usb.rglob("*")), reverse=True):
            p.stat()
        reads.clear()
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
        assert r.code == 0, r.out + r.err
        on_usb = [p for p in reads if p.startswith(str(usb))]
        assert on_usb == [], f"{len(on_usb)} files on the exFAT disk read again: {on_usb}"


def test_an_exfat_target_plugged_in_again_after_new_files_is_not_read_whole(
    tmp_path: Path, reads: list[str]
) -> None:
    """Nothing else touches the disk: two applies, each adding a photo to
    the exFAT target, then the disk is plugged in again. The files the
    second apply wrote got inodes after the walk's; plugged in again, the
    walk numbers them in directory order."""
    image = tmp_path / "exfat.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    usb = tmp_path / "usb"
    with _exfat_image(image, usb):
        write_marker(tmp_path / "nas", "nas")
        write_marker(usb, "usb")
        ws = make_workspace(
            tmp_path, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",), removal=False
        )
        for i in range(3):
            make_jpeg(ws.incoming / f"IMG_{i}.JPG", datetime(2024, 1, 2 + i, tzinfo=UTC), seed=i)
        assert ws.run("apply", "--yes", now=NOW).code == 0
    with _exfat_image(image, usb):
        make_jpeg(ws.incoming / "IMG_9.JPG", datetime(2020, 1, 2, tzinfo=UTC), seed=9)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    with _exfat_image(image, usb):
        reads.clear()
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
        assert r.code == 0, r.out + r.err
        on_usb = [p for p in reads if p.startswith(str(usb))]
        reads.clear()
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
    with _exfat_image(image, usb):
        reads.clear()
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
        again = [p for p in reads if p.startswith(str(usb))]
        assert (on_usb, again) == ([], []), f"first plug: {on_usb}; next plug: {again}"


def _all_bytes(ws) -> set[bytes]:  # type: ignore[no-untyped-def]
    out: set[bytes] = set()
    for root in (ws.library, ws.target("nas"), ws.target("usb"), ws.incoming):
        out |= set(media_under(root).values())
    return out


def test_an_edit_hidden_by_an_old_row_is_not_lost_when_removal_is_on(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    with sqlite3.connect(_state_db(tmp_path)) as c:
        c.execute("update hash_cache set ctime_ns = null")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    new = _flip(photo.read_bytes())
    _rewrite_in_place(photo, new)
    ws.removal(True)
    r = ws.run("apply", "--yes", now=NOW)
    assert new in _all_bytes(ws), "the edited photo is gone:\n" + r.out


def test_an_edit_on_an_exfat_source_is_not_lost_when_removal_is_on(tmp_path: Path) -> None:
    image = tmp_path / "exfat.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    src = tmp_path / "incoming"
    src.mkdir()
    with _exfat_image(image, src):
        ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        time.sleep(1.1)
        new = _flip(photo.read_bytes())
        _rewrite_in_place(photo, new)
        ws.removal(True)
        r = ws.run("apply", "--yes", now=NOW)
        assert new in _all_bytes(ws), "the edited photo is gone:\n" + r.out


@pytest.mark.parametrize("how", ["xattr", "cp-a", "touch-back", "rsync-a"])
def test_a_metadata_change_is_read_once(tmp_path: Path, reads: list[str], how: str) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (lib,) = media_under(ws.library)
    f = ws.library / lib
    if how == "xattr":
        os.setxattr(f, "user.x", b"1")
        os.setxattr(photo, "user.x", b"1")
    elif how == "cp-a":
        subprocess.run(["cp", "-a", str(f), str(tmp_path / "bk")], check=True)
        f.unlink()
        subprocess.run(["cp", "-a", str(tmp_path / "bk"), str(f)], check=True)
    elif how == "rsync-a":
        subprocess.run(["rsync", "-a", str(ws.library) + "/", str(tmp_path / "bk2")], check=True)
        subprocess.run(["rm", "-rf", str(ws.library)], check=True)
        subprocess.run(["rsync", "-a", str(tmp_path / "bk2") + "/", str(ws.library)], check=True)
    else:
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0, r.out
    reads.clear()
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0, r.out
    assert reads == []
