"""Two targets on one filesystem (``same_disk_ok``, as in tests/helpers.py)
whose disks' mount points are swapped, the configuration following them
(README's markers section), then one mounted elsewhere. No file was ever
hard-linked, so none is judged "the same file as another's": the hash
cache trusts a row by its ctime (copies made within one tick of the clock
share one, and a folder moved keeps its files'), but the row takes the
inode the walk found, and a link read from the cache is checked by a stat
(``reconciler.links``) before it counts."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.links import one_file_twice
from reconciler.state import StateDB
from tests.helpers import Workspace, files_under, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

T0 = datetime(2021, 6, 10, tzinfo=UTC)  # the samples are taken 2021-06-01: kept in the card
LATER = T0 + timedelta(days=60)  # old enough to leave the card


def _repoint(ws: Workspace, nas: str, usb: str) -> None:
    head, _, _ = ws.config.read_text().partition("[targets.nas]")
    ws.config.write_text(
        head
        + f'[targets.nas]\nkind = "filesystem"\npath = "{nas}"\nsame_disk_ok = true\n'
        + f'[targets.usb]\nkind = "filesystem"\npath = "{usb}"\nsame_disk_ok = true\n'
    )


def _one_tick(a: Path, b: Path) -> None:
    """Give ``a`` and ``b`` one mtime and one ctime, as two copies written
    within one tick of the kernel's clock have (a few ms: the tool's own
    copies to two targets often do, but not on every run)."""
    t = a.stat().st_mtime_ns
    for _ in range(10_000):
        os.utime(a, ns=(t, t))
        os.utime(b, ns=(t, t))
        if a.stat().st_ctime_ns == b.stat().st_ctime_ns:
            return
    raise AssertionError(f"no two writes within one tick: {a}, {b}")


def _swapped(tmp_path: Path) -> Workspace:
    """Archived on both targets (kept in the card: recent), each copy with
    the ctime of the other target's, then the two disks' mount points
    swapped and the configuration following them."""
    ws = make_workspace(tmp_path / "ws")
    for i in range(3):
        make_camera_jpeg(ws.incoming / f"IMG_{i}.JPG", size=(160 + 16 * i, 120))
    r = ws.run("apply", "--yes", now=T0)
    assert r.code == 0, r.out + r.err
    assert len(files_under(ws.incoming)) == 3
    for rel in files_under(ws.target("nas")):
        _one_tick(ws.target("nas") / rel, ws.target("usb") / rel)
    r = ws.run("plan", now=T0)  # their rows read again, with those ctimes
    assert r.code == 0, r.out + r.err
    nas_disk = ws.target("nas").rename(ws.root / "swap")
    ws.target("usb").rename(ws.root / "nas")
    nas_disk.rename(ws.root / "usb")
    _repoint(ws, nas="usb", usb="nas")
    r = ws.run("apply", "--yes", now=T0)
    assert r.code == 0, r.out + r.err
    return ws


def test_targets_swapped_then_one_moved_still_hold_two_copies(tmp_path: Path) -> None:
    ws = _swapped(tmp_path)
    # Later the NAS's disk is mounted at another path (configuration edited).
    (ws.root / "usb").rename(ws.root / "media-nas")
    _repoint(ws, nas="media-nas", usb="nas")
    p = ws.run("plan", now=LATER)
    assert "hard links" not in p.out, p.out  # no file was ever linked
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}, r.out
    status = ws.run("status", now=LATER).out
    assert "every item is archived" in status, status


def test_the_cache_holds_the_inode_each_walk_found(tmp_path: Path) -> None:
    ws = _swapped(tmp_path)
    with sqlite3.connect(ws.root / "state" / "state.db") as conn:
        rows = conn.execute("select path, inode from hash_cache").fetchall()
    stale = [(p, i) for p, i in rows if os.path.exists(p) and os.stat(p).st_ino != i]
    assert stale == []


def test_a_link_recorded_is_checked_before_it_counts(tmp_path: Path) -> None:
    """A cache whose rows name one inode for two targets' copies (as an
    older version left them after the swap) claims no link the files deny."""
    ws = _swapped(tmp_path)
    db_path = ws.root / "state" / "state.db"
    with sqlite3.connect(db_path) as conn:
        nas, usb = (str(ws.root / t) + "/" for t in ("usb", "nas"))  # nas is at "usb" now
        for path, sha in conn.execute(
            "select path, sha256 from hash_cache where path >= ? and path < ?",
            (usb, usb[:-1] + "0"),
        ).fetchall():
            conn.execute(
                "update hash_cache set inode = (select inode from hash_cache "
                "where path >= ? and path < ? and sha256 = ?) where path = ?",
                (nas, nas[:-1] + "0", sha, path),
            )
    roots = {"nas": nas, "usb": usb}
    db = StateDB(db_path)
    try:
        assert one_file_twice(db, roots, {"nas", "usb"}) == {}
        # A real link is still found: the usb's copy of one photo made the nas's file.
        (one, *_) = sorted(files_under(Path(usb)))
        (Path(usb) / one).unlink()
        os.link(Path(nas) / one, Path(usb) / one)
        twice = one_file_twice(db, roots, {"nas", "usb"})
    finally:
        db.close()
    assert list(twice) == ["usb"] and len(twice["usb"]) == 1, twice
