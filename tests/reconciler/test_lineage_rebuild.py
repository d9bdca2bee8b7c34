"""A lost state DB: the library's rows are learned again from the files, in
one statement, one row per file, with what the file itself says (its
capture time), never the first guess made before reading it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.hashing import sha256_file
from reconciler.state import LineageRow, StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

OLD = datetime(2023, 5, 17, 8, 30, tzinfo=UTC)


def test_a_lost_state_db_relearns_each_library_file_once_with_its_capture_time(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    for i in range(5):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD + timedelta(hours=i), seed=i)
    assert ws.run("apply", "--yes").code == 0
    state = tmp_path / "state"
    for name in os.listdir(state):
        if name.startswith("state.db"):
            os.unlink(state / name)

    assert ws.run("plan").code == 0
    db = StateDB.in_dir(state)
    try:
        rows = db.lineage()
    finally:
        db.close()
    library = sorted(p for p in ws.library.rglob("*.JPG"))
    assert sorted(rows) == sorted(str(p.relative_to(ws.library)) for p in library)
    for p in library:
        row = rows[str(p.relative_to(ws.library))]
        assert row.sha256 == row.original_sha256 == sha256_file(p)
        i = int(p.stem.rpartition("_")[2])
        assert row.captured_at == (OLD + timedelta(hours=i)).timestamp()


def test_many_rows_for_one_path_keep_the_last(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path / "state")
    try:
        first = LineageRow("2023/05/17/a.jpg", "o" * 64, "s" * 64, "original", 3, 7)
        db.record_lineages([first, first._replace(captured_at=1.5), first._replace(size=4)])
        assert db.lineage() == {first.path: first._replace(size=4)}
    finally:
        db.close()
