"""A state DB that does not know the encodes made since it was written: one
put back from the tool's own backups (README: ``state.backup_interval_hours``:
"To restore one, stop cron and copy it over state.db"), or another state
directory on the same library and targets (a laptop's and a desktop's).
The library's encodes carry their lineage, which alone is not believed (an
editor copies it into the person's crop): each was taken for a new photo,
archived as ``IMG_2~<sha>.JPG`` and encoded again from itself. The library
keeps its own journal of the tool's encodes (``renditions_journal``), which
the state DB's backup cannot lose. Real Pillow and exiftool."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest
from PIL import Image

from reconciler import renditions_journal
from reconciler.media import read_lineage
from reconciler.renditions_journal import journal_path
from tests.helpers import Workspace, files_under, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # samples taken 2021-06-01: tier recent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def held(ws: Workspace) -> list[bytes]:
    return sorted(v for t in ("nas", "usb") for v in media_under(ws.target(t)).values())


def with_backups(ws: Workspace) -> None:
    text = ws.config.read_text()
    ws.config.write_text(text.replace('dir = "state"', 'dir = "state"\nbackup_interval_hours = 0'))


def restore(ws: Workspace, backup: Path) -> None:
    """As README says: the backup copied over state.db, its -wal and -shm removed."""
    state = ws.root / "state"
    for p in state.glob("state.db*"):
        p.unlink()
    shutil.copy(backup, state / "state.db")


def imported(ws: Workspace, name: str, at: datetime) -> tuple[Path, bytes]:
    """A camera photo imported from the card: archived, then encoded in the
    library (the card lets it go). Its library file, and the original."""
    original = make_camera_jpeg(ws.incoming / name, size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=at)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    (lib,) = list(ws.library.rglob(name))
    assert read_lineage(lib) == (sha(original), "recent")
    return lib, original


def rolled_back(tmp_path: Path) -> tuple[Workspace, Path, bytes, list[bytes], Path]:
    """IMG_1 imported, the first backup taken, IMG_2 imported and encoded
    since. The workspace, IMG_2's library file and original, what the
    targets hold, and the backup (not put back yet)."""
    ws = make_workspace(tmp_path / "ws")
    with_backups(ws)
    imported(ws, "IMG_1.JPG", T1)
    (first,) = sorted((ws.root / "state" / "backups").glob("state-*.db"))
    lib2, original = imported(ws, "IMG_2.JPG", T1 + timedelta(hours=1))
    assert lib2.read_bytes() not in held(ws)
    return ws, lib2, original, held(ws), first


def converged(ws: Workspace, at: datetime) -> str:
    """Two applies, then a plan with nothing to do; the outputs."""
    outs = []
    for i in range(2):
        r = ws.run("apply", "--yes", now=at + timedelta(hours=i))
        assert r.code == 0, r.out + r.err
        outs.append(r.out)
    final = ws.run("plan", "--detailed-exitcode", now=at + timedelta(hours=2))
    assert final.code == 0, (final.out, outs)
    return "\n".join(outs)


def test_a_backup_put_back_archives_no_encode_and_encodes_none_again(tmp_path: Path) -> None:
    ws, lib2, original, before, first = rolled_back(tmp_path)
    encoded = lib2.read_bytes()
    restore(ws, first)
    out = converged(ws, T1 + timedelta(hours=2))
    assert held(ws) == before, ("an encode archived as a photo", out)
    assert lib2.read_bytes() == encoded, ("an encode encoded again", out)
    assert read_lineage(lib2) == (sha(original), "recent")


def test_two_configurations_on_one_library_archive_no_encode(tmp_path: Path) -> None:
    """A laptop and a desktop each run cron with their own state dir on one
    library and one pair of targets (a NAS share), each importing its own
    camera card."""
    ws = make_workspace(tmp_path / "ws")
    other = ws.root / "desktop.toml"
    other.write_text(
        ws.config.read_text()
        .replace('dir = "state"', 'dir = "state-desktop"')
        .replace('path = "incoming"', 'path = "card2"')
    )
    (ws.root / "card2").mkdir()
    desk = Workspace(root=ws.root, config=other)
    imported(ws, "IMG_1.JPG", T1)
    b = make_camera_jpeg(ws.root / "card2" / "IMG_2.JPG", size=(600, 400)).read_bytes()
    r = desk.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib2,) = list(ws.library.rglob("IMG_2.JPG"))
    assert read_lineage(lib2) == (sha(b), "recent")
    encoded = lib2.read_bytes()
    before = held(ws)
    assert encoded not in before

    out = converged(ws, T1)
    assert held(ws) == before, ("an encode archived as a photo", out)
    assert lib2.read_bytes() == encoded, ("an encode encoded again", out)
    r = desk.run("plan", "--detailed-exitcode", now=T1 + timedelta(hours=3))
    assert r.code == 0, r.out


def test_a_crop_saved_after_the_backup_was_put_back_is_archived(tmp_path: Path) -> None:
    """The journal vouches for the tool's bytes only: the person's crop of
    the library photo, saved by an editor that keeps its XMP packet (and so
    the tool's lineage), is new content of theirs."""
    ws, lib2, original, before, first = rolled_back(tmp_path)
    encoded = lib2.read_bytes()
    restore(ws, first)
    crop = lib2.with_name("IMG_2-crop.JPG")
    with Image.open(lib2) as im:
        im.crop((0, 0, 320, 240)).save(
            crop, quality=90, exif=im.info.get("exif", b""), xmp=im.info["xmp"]
        )
    assert read_lineage(crop) == (sha(original), "recent")
    mine = crop.read_bytes()
    r = ws.run("apply", "--yes", now=T1 + timedelta(hours=2))
    assert r.code == 0, r.out + r.err
    assert held(ws) == sorted([*before, mine, mine]), r.out  # on both targets, and no encode
    assert lib2.read_bytes() == encoded, r.out


def test_a_torn_last_line_is_passed_over(tmp_path: Path) -> None:
    """A run killed mid-append leaves half a line: the journal's other
    lines still count, and the next encode's line is whole."""
    ws, lib2, _original, before, first = rolled_back(tmp_path)
    encoded = lib2.read_bytes()
    journal = journal_path(ws.library)
    with open(journal, "ab") as f:
        f.write(b"0123456789abcdef 0123")
    restore(ws, first)
    out = converged(ws, T1 + timedelta(hours=2))
    assert held(ws) == before, out
    assert lib2.read_bytes() == encoded, out
    lib3, original3 = imported(ws, "IMG_3.JPG", T1 + timedelta(hours=5))
    lines = journal.read_bytes().split(b"\n")
    assert lines[-2].startswith(f"{sha(lib3.read_bytes())} {sha(original3)} recent".encode())
    assert b"0123456789abcdef 0123" in lines  # left as it was, on a line of its own


def test_a_no_op_run_neither_reads_nor_writes_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _lib2, _original, _before, _first = rolled_back(tmp_path)
    journal = journal_path(ws.library)
    was = journal.stat()

    def untouched(*_: object) -> NoReturn:
        raise AssertionError("the journal used on a run with nothing to do")

    monkeypatch.setattr(renditions_journal, "append", untouched)
    monkeypatch.setattr(renditions_journal.Journal, "_read", untouched)
    for args in (("apply", "--yes"), ("plan", "--detailed-exitcode")):
        r = ws.run(*args, now=T1 + timedelta(hours=2))
        assert r.code == 0, r.out + r.err
    now = journal.stat()
    assert (now.st_size, now.st_mtime_ns) == (was.st_size, was.st_mtime_ns)


def test_without_its_journal_the_state_database_alone_decides(tmp_path: Path) -> None:
    """The journal deleted, then a backup put back: as before the journal
    was kept, the encode made since the backup, known to no record, is taken
    for a new photo of the person's (archived, so nothing is lost), and the
    runs converge."""
    ws, lib2, _original, before, first = rolled_back(tmp_path)
    encoded = lib2.read_bytes()
    journal_path(ws.library).unlink()
    restore(ws, first)
    out = converged(ws, T1 + timedelta(hours=2))
    assert encoded in held(ws), out
    assert set(before) <= set(held(ws)), out


def test_a_journal_deleted_is_begun_again_with_what_the_state_database_knows(
    tmp_path: Path,
) -> None:
    """The journal deleted (or never kept: an upgrade), the next encode
    begins it with every encode the state DB recorded, so a backup older
    than those is caught up too."""
    ws, lib2, _original, before, first = rolled_back(tmp_path)
    encoded = lib2.read_bytes()
    journal_path(ws.library).unlink()
    lib3, _ = imported(ws, "IMG_3.JPG", T1 + timedelta(hours=2))
    before = held(ws)
    restore(ws, first)
    out = converged(ws, T1 + timedelta(hours=3))
    assert held(ws) == before, out
    assert lib2.read_bytes() == encoded, out
    assert lib3.read_bytes() not in held(ws), out


def test_an_encode_waits_while_the_journal_cannot_be_written(tmp_path: Path) -> None:
    """Something else at the journal's name: the encode is not placed
    unrecorded there (the library keeps the file, said in one line), and
    lands once the name is free."""
    ws = make_workspace(tmp_path / "ws")
    journal_path(ws.library).mkdir(parents=True)
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code != 0, r.out
    assert "Traceback" not in r.out + r.err
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert lib.read_bytes() == original, r.out
    assert f"recording its encode in {journal_path(ws.library)} failed" in r.out + r.err
    assert "the library keeps the file" in r.out + r.err
    journal_path(ws.library).rmdir()
    out = converged(ws, T1 + timedelta(hours=1))
    assert read_lineage(lib) == (sha(original), "recent"), out
    assert journal_path(ws.library).read_text().startswith(f"{sha(lib.read_bytes())} "), out
