"""A file whose mtime no 64-bit integer holds (year 2302; ext4 stores it):
SQLite cannot keep its hash-cache row, so it is read every run instead of
the run failing, and the library still converges and off-loads it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

FAR = 10_500_000_000 * 10**9  # ns: 2302, past int64's 2262


def test_a_file_dated_past_2262_is_archived_and_the_library_converges(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_2302.JPG", datetime(2023, 4, 5, tzinfo=UTC), seed=3)
    make_jpeg(ws.incoming / "IMG_0001.JPG", datetime(2023, 4, 6, tzinfo=UTC), seed=4)
    os.utime(photo, ns=(FAR, FAR))
    done = ws.run("apply", "--yes")
    assert done.code == 0, done.err
    again = ws.run("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # converged: nothing left to do
    db = StateDB.in_dir(tmp_path / "state")
    try:
        cached = {r[0] for r in db.db.conn.execute("select path from hash_cache")}
        assert any(p.endswith("IMG_0001.JPG") for p in cached)
    finally:
        db.close()
    copies = list(tmp_path.glob("*/**/IMG_2302.JPG"))
    stores = {p.relative_to(tmp_path).parts[0] for p in copies}
    assert "library" in stores and len(stores - {"incoming"}) >= 3  # library and 2 targets
    assert len({p.read_bytes() for p in copies}) == 1
    for p in copies:
        if p.stat().st_mtime_ns == FAR:
            assert str(p) not in cached  # no row it could hold: read every run
