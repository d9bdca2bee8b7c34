"""The library holds every item (DESIGN, "Kept"). A library file gone
(deleted by hand, a disk replaced, an item off-loaded while the library
was away) of an item that lives only in the library was never put back:
the plan said the library matched, and status counted the file. It is put
back from a target's verified copy of its original, then encoded for its
tier; a file moved within the library is known at its new path."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from reconciler.state import StateDB
from tests.helpers import files_under, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2026, 11, 25, tzinfo=UTC)  # the sample photos were taken 2021-06-01


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _offloaded(ws) -> tuple[Path, bytes]:
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (sha(original), "archive")
    return lib, original


def _library_rows(ws) -> list[str]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return [r["path"] for r in db.db.query("select path from library order by path")]
    finally:
        db.close()


def test_a_library_file_deleted_is_put_back_from_a_target_and_encoded(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    lib, original = _offloaded(ws)
    encoded = lib.read_bytes()
    lib.unlink()

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out  # not "No changes"
    assert "copy-to-library library:2021/06/01/IMG_1.JPG: gone from the library" in p.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert lib.exists() and read_lineage(lib) == (sha(original), "archive")
    assert lib.read_bytes() == encoded  # the same encode of the same original
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    # the targets kept the original, and nothing else was archived
    for t in ("nas", "usb"):
        assert list(media_under(ws.target(t)).values()) == [original]


def test_a_whole_library_lost_is_rebuilt(tmp_path: Path) -> None:
    """A disk replaced: every folder gone, the store marked again."""
    ws = make_workspace(tmp_path / "ws")
    lib, original = _offloaded(ws)
    for folder in [p for p in ws.library.iterdir() if p.is_dir()]:
        for f in sorted(folder.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        folder.rmdir()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert read_lineage(lib) == (sha(original), "archive")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_file_moved_within_the_library_is_not_put_back(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    lib, _ = _offloaded(ws)
    moved = ws.library / "favourites" / "IMG_1.JPG"
    moved.parent.mkdir()
    lib.rename(moved)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out
    assert _library_rows(ws) == ["favourites/IMG_1.JPG"]  # status counts it once


def test_without_a_target_holding_it_the_plan_says_so_and_waits(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    lib, original = _offloaded(ws)
    lib.unlink()
    away = [ws.target(t).rename(ws.root / f"{t}-away") for t in ("nas", "usb")]
    p = ws.run("plan", now=NOW)
    assert "library:2021/06/01/IMG_1.JPG: gone from the library; put back once" in p.out, p.out
    assert "copy-to-library" not in p.out
    for t, moved in zip(("nas", "usb"), away, strict=True):
        moved.rename(ws.target(t))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert read_lineage(lib) == (sha(original), "archive")


def test_an_item_still_in_its_source_is_placed_from_there_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    lib.unlink()
    p = ws.run("plan", now=NOW)
    assert p.out.count("copy-to-library") == 1, p.out
    assert "incoming:IMG_1.JPG" in p.out
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert [p.name for p in ws.library.rglob("*.JPG")] == ["IMG_1.JPG"]
    assert read_lineage(lib) == (sha(original), "archive")
