"""Lineage is believed only of content the tool recorded making, and of
what the record cannot know: a state DB restored from one of the tool's own
backups (README: "To restore one, stop cron and copy it over state.db")
does not know the renditions made since (a file the record puts at another
tier was moved there by an encode); a state DB rebuilt while a library
folder was away never saw that folder's renditions (files older than the
database). Neither is archived as a photo of the person's."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import files_under, make_jpeg, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # samples taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def held(ws) -> list[bytes]:
    return [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]


def test_state_backup_restored_after_a_tier_change_archives_no_rendition(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    state = ws.root / "state"
    saved = tmp_path / "state-backup.db"
    shutil.copy(state / "state.db", saved)
    assert not (state / "state.db-wal").exists() or (state / "state.db-wal").stat().st_size == 0

    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (sha(original), "older")
    rendition = lib.read_bytes()
    before = sorted(held(ws))
    assert before == [original, original]

    # the person restores yesterday's backup of the state DB, as the README says
    for p in state.glob("state.db*"):
        p.unlink()
    shutil.copy(saved, state / "state.db")

    p = ws.run("plan", "--detailed-exitcode", now=T2)
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    assert rendition not in held(ws), ("the tool's rendition archived as a photo", p.out, r.out)
    assert sorted(held(ws)) == before, r.out
    assert read_lineage(lib) == (sha(original), "older"), r.out


def _offloaded(ws) -> tuple[Path, bytes]:
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    return lib, original


def test_a_state_db_rebuilt_while_a_library_folder_was_away_archives_no_rendition(
    tmp_path: Path,
) -> None:
    """The state DB is lost; the first run after it does not see one
    library folder (moved aside for a while); the next run sees it again."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=T1).code == 0
    # a second photo of another day, in its own library folder
    make_jpeg(ws.incoming / "IMG_9.JPG", datetime(2021, 7, 2, tzinfo=UTC), seed=9, size=256)
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    before = sorted(held(ws))
    july = ws.library / "2021" / "07"
    assert july.is_dir(), sorted(files_under(ws.library))
    shutil.rmtree(ws.root / "state")
    july.rename(ws.root / "july-aside")
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (ws.root / "july-aside").rename(july)
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert sorted(held(ws)) == before, ("a rendition archived as a photo", r.out)
