"""A library file gone whose only copy this run can see is the phone's
freed one (on the phone only: its staging copy here was deleted). Nothing
here can read it, so nothing is planned from it: the file waits for a
target that holds it here. It was planned 'put back from a target's copy'
and failed every run ('no readable original … anywhere', exit 1)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem.markers import MARKER
from providers.syncthing.pair import SyncthingPair
from tests.helpers import Run, Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
FREED = "- free-staging-copy phone:2022/03/04/IMG_1.JPG"


def _until(ws: Workspace, text: str, timeout: float = 20.0) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=NOW)
        if text in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def _freed(tmp_path: Path, pair: SyncthingPair) -> Workspace:
    """A photo archived on the NAS and the phone, removed from its folder,
    its staging copy freed: the phone holds it, this machine's folder not."""
    options = "delete_local_copy = true\nliveness_timeout_s = 10\n"
    ws = phone_workspace(tmp_path / "ws", pair, removal=True, phone_options=options)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert FREED in _until(ws, FREED).out
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}
    assert phone_files(pair) == {"2022/03/04/IMG_1.JPG": photo}
    (lib,) = ws.library.rglob("IMG_1.JPG")
    lib.unlink()  # the person deletes the library's file
    return ws


def test_a_file_held_only_by_a_freed_phone_copy_waits(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _freed(tmp_path, pair)
    for p in ws.target("nas").rglob("IMG_1.JPG"):
        p.unlink()  # and the NAS's copy (a disk replaced)
    for _ in range(2):
        r = ws.run("apply", "--yes", now=NOW)
        assert "copy-to-library" not in r.out, r.out
        assert "waiting library:2022/03/04/IMG_1.JPG" in r.out, r.out
    assert r.code == 0, r.out + r.err


def test_with_the_nas_away_it_waits_for_the_nas(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _freed(tmp_path, pair)
    (ws.target("nas") / MARKER).unlink()  # the NAS not mounted today
    r = ws.run("apply", "--yes", now=NOW)
    assert "copy-to-library" not in r.out, r.out
    assert (
        "waiting library:2022/03/04/IMG_1.JPG: gone from the library; put back once a "
        "target holding it is available"
    ) in r.out, r.out
    assert r.code == 1 and "target nas could not be read" in r.err, r.err  # (the NAS: README)
