"""The library holds every item (DESIGN, "Kept"). A library file gone
(deleted by hand, a disk replaced, an item off-loaded while the library
was away) of an item that lives only in the library was never put back:
the plan said the library matched, and status counted the file. It is put
back from a target's verified copy of its original, then encoded for its
tier; a file moved within the library is known at its new path."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from reconciler.state import StateDB
from tests.helpers import Workspace, files_under, make_workspace, media_under
from tests.media.conftest import make_clip
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2026, 11, 25, tzinfo=UTC)  # the sample photos were taken 2021-06-01
T1 = datetime(2021, 12, 1, tzinfo=UTC)  # tier recent


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
    _wipe_library(ws)
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


def _wipe_library(ws: Workspace) -> None:
    """A disk replaced: every folder gone, the store marked again."""
    for folder in [p for p in ws.library.iterdir() if p.is_dir()]:
        shutil.rmtree(folder)


def _live_pair(ws: Workspace) -> tuple[bytes, bytes]:
    still = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(480, 320)).read_bytes()
    video = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    return still, video


def test_a_live_photo_put_back_after_a_whole_library_lost_keeps_its_video(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    _still, video = _live_pair(ws)
    assert [v for k, v in files_under(ws.library).items() if k.endswith(".MOV")] == [video]
    _wipe_library(ws)
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    movs = {k: v for k, v in files_under(ws.library).items() if k.endswith(".MOV")}
    # a Live Photo's video is kept as it is (README "Encoding")
    assert list(movs.values()) == [video], (r.out, list(movs))
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0


def test_a_live_photo_video_alone_lost_is_put_back_as_it_is(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    _still, video = _live_pair(ws)
    (mov,) = list(ws.library.rglob("IMG_1.MOV"))
    mov.unlink()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert mov.read_bytes() == video, r.out
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0


def _two_offloaded(ws: Workspace) -> tuple[Path, bytes, Path, bytes]:
    one = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    two = make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320)).read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    (lib1,) = list(ws.library.rglob("IMG_1.JPG"))
    (lib2,) = list(ws.library.rglob("IMG_2.JPG"))
    return lib1, one, lib2, two


def test_a_library_file_overwritten_by_a_copy_of_another_is_put_back(tmp_path: Path) -> None:
    """The person copies IMG_1.JPG over IMG_2.JPG by mistake (a file
    manager's "replace"): IMG_2's item is no longer in the library, as if
    deleted. A deleted file is put back; this one is not, and the plan says
    the library matches."""
    ws = make_workspace(tmp_path / "ws")
    lib1, _one, lib2, two = _two_offloaded(ws)
    shutil.copyfile(lib1, lib2)
    p = ws.run("plan", "--detailed-exitcode", now=T1)
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    originals = {read_lineage(p)[0] for p in ws.library.rglob("*.JPG") if read_lineage(p)}  # type: ignore[index]
    assert sha(two) in originals, ("IMG_2's item is gone from the library", p.code, p.out)


def test_status_does_not_count_a_library_file_gone(tmp_path: Path) -> None:
    """The targets are away: the file gone waits to be put back. Status
    counts it as in the library, by tier, with its bytes."""
    ws = make_workspace(tmp_path / "ws")
    lib1, _one, _lib2, _two = _two_offloaded(ws)
    before = ws.run("status", now=T1).out
    assert "files by tier: recent 2" in before, before
    lib1.unlink()
    away = [ws.target(t).rename(ws.root / f"{t}-away") for t in ("nas", "usb")]
    p = ws.run("plan", now=T1)
    assert "gone from the library; put back once" in p.out, p.out
    ws.run("apply", "--yes", now=T1)
    s = ws.run("status", now=T1)
    assert "files by tier: recent 1" in s.out, s.out
    for t, moved in zip(("nas", "usb"), away, strict=True):
        moved.rename(ws.target(t))


def test_a_file_gone_is_put_back_where_it_was(tmp_path: Path) -> None:
    """README: "put back where it was". The person keeps it in an album
    folder of their own (known there: a move within the library)."""
    ws = make_workspace(tmp_path / "ws")
    lib1, _one, _lib2, _two = _two_offloaded(ws)
    moved = ws.library / "Trips" / "Rome" / "IMG_1.JPG"
    moved.parent.mkdir(parents=True)
    lib1.rename(moved)
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0
    moved.unlink()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert "library:Trips/Rome/IMG_1.JPG" in r.out, r.out
    assert moved.exists(), (r.out, sorted(files_under(ws.library)))


def test_a_live_photo_still_lost_leaves_its_video_as_it_is(tmp_path: Path) -> None:
    """The still is deleted from the library, the video kept: the still is
    put back; the video, a Live Photo's all along, must not be encoded."""
    ws = make_workspace(tmp_path / "ws")
    still, video = _live_pair(ws)
    (jpg,) = list(ws.library.rglob("IMG_1.JPG"))
    (mov,) = list(ws.library.rglob("IMG_1.MOV"))
    assert mov.read_bytes() == video
    jpg.unlink()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert read_lineage(jpg)[0] == sha(still)  # type: ignore[index]
    assert mov.read_bytes() == video, r.out


def test_a_file_gone_that_no_target_holds_is_lost_and_said_as_an_error(tmp_path: Path) -> None:
    """Gone from the library and from both targets, every target read: no
    run can put it back. It was "waiting" with exit 0 and "No changes. The
    library matches", for ever."""
    ws = make_workspace(tmp_path / "ws")
    _offloaded(ws)
    for root in (ws.library, ws.target("nas"), ws.target("usb")):
        (f,) = root.rglob("IMG_1.JPG")
        f.unlink()
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 1, p.out
    assert p.out == (
        "Not done this run:\n"
        "  x lost library:2021/06/01/IMG_1.JPG: gone from the library, and no target holds it "
        "any more; nothing here can put it back\n\n"
        "Nothing to run, but the library does not match desired_state.toml: files are lost. "
        "(1 lost)\n"
    )
    assert p.err == (
        "error: 1 file(s) lost: held by no store any more (a library file gone, an "
        "encoded file's original) (see 'x' above); put them back from a backup of your own\n"
    )
    assert "every item is archived" not in ws.run("status").out
