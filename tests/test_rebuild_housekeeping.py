"""What a disk holds at its top for itself (Windows' ``System Volume
Information``, ``$RECYCLE.BIN``, fsck's ``lost+found``) is no file of the
person's: a new library disk holding only that is empty (rebuilt from the
targets), and none of it is ever archived as a photo."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import write_marker
from reconciler.media.kinds import is_archivable
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

WHEN = datetime(2021, 12, 1, tzinfo=UTC)


def _windows_saw(disk: Path) -> None:
    """What Windows leaves at the top of a disk it has mounted."""
    svi = disk / "System Volume Information"
    svi.mkdir()
    guid = "{1B2C3D4E-0000-1111-2222-333344445555}"
    (svi / "IndexerVolumeGuid").write_bytes(guid.encode("utf-16"))
    (svi / "WPSettings.dat").write_bytes(b"\x0c\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08")
    (disk / "$Recycle.Bin" / "S-1-5-21-1").mkdir(parents=True)
    (disk / "$Recycle.Bin" / "S-1-5-21-1" / "desktop.ini").write_bytes(b"[.ShellClassInfo]\r\n")


@pytest.mark.parametrize(
    ("path", "archived"),
    [
        ("System Volume Information/IndexerVolumeGuid", False),
        ("system volume information/WPSettings.dat", False),
        ("$RECYCLE.BIN/S-1-5-21-1/$RABC123.JPG", False),
        # files found again or waiting in a bin may be the person's: archived
        # from a source or the library (a target's listing leaves them out)
        ("lost+found/#1234", True),
        ("FOUND.000/FILE0001.CHK", True),
        ("Recycled/IMG_7.JPG", True),
        ("2021/06/01/IMG_1.JPG", True),
        ("summer/lost+found/IMG_1.JPG", True),  # (only a disk's top is its own)
        ("lost+found.JPG", True),
        ("sunset.JPG", True),
    ],
)
def test_a_disk_s_housekeeping_is_not_archivable(path: str, archived: bool) -> None:
    assert is_archivable(path) is archived


def test_a_new_library_disk_windows_has_seen_is_still_empty(tmp_path: Path) -> None:
    """The state directory and the library disk lost; the new library disk
    was plugged into Windows first. It holds none of the person's files:
    the library is rebuilt from the targets, and Windows' files go nowhere."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    before = media_under(ws.library)
    targets = {t: files_under(ws.target(t)) for t in ("nas", "usb")}
    shutil.rmtree(ws.root / "state")
    shutil.rmtree(ws.library)
    write_marker(ws.library, "library")
    _windows_saw(ws.library)

    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    rebuilt = {k: v for k, v in media_under(ws.library).items() if k[:1].isdigit()}
    assert rebuilt == before, r.out
    assert {t: files_under(ws.target(t)) for t in ("nas", "usb")} == targets, r.out
    again = ws.run("plan", "--detailed-exitcode", now=WHEN)
    assert again.code == 0, again.out


def _card(ws: Workspace) -> Path:
    (ws.incoming / "DCIM").mkdir()
    make_camera_jpeg(ws.incoming / "DCIM" / "IMG_1.JPG", size=(640, 480))
    _windows_saw(ws.incoming)
    return ws.incoming


def test_a_card_windows_has_seen_gives_only_its_photos(tmp_path: Path) -> None:
    """A card's own housekeeping is no photo of the person's either."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    _card(ws)
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    for store in (ws.library, ws.target("nas"), ws.target("usb")):
        assert [k for k in media_under(store) if not k.endswith(".xmp")] == [
            "2021/06/01/IMG_1.JPG"
        ], r.out


def test_init_target_takes_windows_housekeeping_for_an_empty_disk(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    disk = tmp_path / "newdisk"
    disk.mkdir()
    _windows_saw(disk)
    r = ws.run("init-target", str(disk), "--id", "usb2")
    assert (r.code, r.err) == (0, ""), r.out + r.err


@pytest.mark.parametrize("where", ["$RECYCLE.BIN/S-1-5-21-1/$RABC123.JPG", "lost+found/#1234"])
def test_a_copy_in_a_target_s_recycle_bin_is_no_backup(tmp_path: Path, where: str) -> None:
    """The NAS's copy deleted in Explorer (moved into its recycle bin) is
    no backup: counted, the card's photo was removed on the strength of a
    copy the next 'Empty Recycle Bin' takes away. It is copied again."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    nas = ws.target("nas")
    (rel,) = [k for k in files_under(nas) if k.endswith(".JPG")]
    (nas / where).parent.mkdir(parents=True)
    (nas / rel).rename(nas / where)
    ws.removal(True)
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    assert (nas / rel).exists(), r.out
    assert (nas / where).exists()  # the bin is the disk's: left as it is


def test_status_counts_no_disk_housekeeping_as_an_item(tmp_path: Path) -> None:
    """A library disk Windows has seen: plan converged, and status must not
    count its System Volume Information as items 'in the library only'."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    svi = ws.library / "System Volume Information"
    svi.mkdir()
    (svi / "IndexerVolumeGuid").write_bytes("{1B2C}".encode("utf-16"))
    (svi / "WPSettings.dat").write_bytes(b"\x0c\x00\x00\x00\x01\x02\x03\x04")
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=WHEN).code == 0
    items = json.loads(ws.run("status", "--json", now=WHEN).out)["census"]["items"]
    assert (items["library_only"], items["archived_2plus"]) == (0, 1), items


@pytest.mark.parametrize("folder", ["Recycled", "FOUND.000", "lost+found"])
def test_photos_in_a_source_or_library_folder_named_like_a_bin_are_archived(
    tmp_path: Path, folder: str
) -> None:
    """A card's folder "Recycled", chkdsk's FOUND.000 holding the only copies
    of recovered photos: the person's. Skipped by name, they were never
    archived while the run said "No changes"."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    (ws.incoming / folder).mkdir(parents=True)
    (ws.library / folder).mkdir(parents=True)
    make_camera_jpeg(ws.incoming / folder / "IMG_7.JPG", size=(640, 480))
    make_camera_jpeg(ws.library / folder / "IMG_9.JPG", size=(480, 320))
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    held = [k.rpartition("/")[2] for k in files_under(ws.target("nas"))]
    assert "IMG_7.JPG" in held and "IMG_9.JPG" in held, r.out
