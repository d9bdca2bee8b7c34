"""Names every backup disk can hold.

A USB disk comes formatted exFAT, a NAS may be an SMB share, a phone's
storage is shared storage: each refuses ``: * ? " < > |`` in a name and
tells names apart by neither case nor Unicode form. A photo named
``Screenshot 12:00:00.png`` was refused by an exFAT target on every run (so
never archived), and ``img_1.jpg`` beside ``IMG_1.JPG`` never reached the
phone (its Syncthing refuses a case conflict for ever), so neither was ever
off-loaded. The disks here are real: exFAT through FUSE (Debian's
exfat-fuse) on a loop device, and Syncthing on loopback for the phone.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from providers.syncthing.pair import SyncthingPair
from tests.helpers import (
    KEEP_ORIGINALS,
    NAS_AND_USB,
    exfat_disk,
    files_under,
    make_jpeg,
    make_workspace,
    mounted,
    phone_files,
    phone_workspace,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)

#: Names a Linux disk holds and exFAT, SMB or a phone refuse or merge.
AWKWARD = (
    "Screenshot 12:00:00.png",
    "what?.jpg",
    "star*.jpg",
    "a<b>c.jpg",
    "pipe|.jpg",
    'quote".jpg',
    "back\\slash.jpg",
    "ends in a dot.jpg.",
    "ends in a space.jpg ",
    "CON.jpg",
    "aux",
    "IMG_1.JPG",
    "img_1.jpg",
)


def _photos(folder: Path) -> set[bytes]:
    """A different photo under each awkward name (written under a plain
    name first: Pillow picks the format by it)."""
    made = set()
    for i, name in enumerate(AWKWARD):
        plain = make_jpeg(folder / f"plain-{i}.jpg", OLD, seed=i)
        made.add(plain.read_bytes())
        plain.rename(folder / name)
    return made


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_name_reaches_an_exfat_disk_and_the_item_is_off_loaded(tmp_path: Path) -> None:
    with mounted(tmp_path / "nas", "-t", "tmpfs", "tmpfs"), exfat_disk(tmp_path / "usb") as usb:
        write_marker(tmp_path / "nas", "nas")
        write_marker(usb, "usb")
        ws = make_workspace(
            tmp_path, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",)
        )
        photos = _photos(ws.incoming)
        first = ws.run("apply", "--yes", now=NOW)
        assert first.code == 0, first.out + first.err
        held = {_sha(b) for b in files_under(usb).values()}
        assert {_sha(p) for p in photos} <= held, first.out
        # every photo on both disks, read back: each one off-loaded
        assert files_under(ws.incoming) == {}, first.out
        again = ws.run("plan", "--detailed-exitcode", now=NOW)
        assert again.code == 0, again.out + again.err
    names = set(files_under(ws.library))
    assert "2022/03/04/Screenshot 12_00_00.png" in names
    assert "2022/03/04/ends in a dot.jpg" in names
    assert "2022/03/04/_CON.jpg" in names


def test_names_alike_but_for_case_both_reach_the_phone(tmp_path: Path, pair: SyncthingPair) -> None:
    # The phone's storage is case-insensitive, as a phone's shared storage is.
    with exfat_disk(pair.phone_folder):
        (pair.phone_folder / ".stfolder").mkdir()
        ws = phone_workspace(
            tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 10\n"
        )
        one = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
        two = make_jpeg(ws.incoming / "img_1.jpg", OLD, seed=2).read_bytes()
        deadline = time.monotonic() + 30
        while files_under(ws.incoming) and time.monotonic() < deadline:
            r = ws.run("apply", "--yes", now=NOW)
            assert r.code == 0, r.out + r.err
            time.sleep(0.3)
        on_phone = set(phone_files(pair).values())
        assert {one, two} <= on_phone, r.out
        assert files_under(ws.incoming) == {}, r.out
