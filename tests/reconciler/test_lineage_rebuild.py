"""A lost state DB: the library's rows are learned again from the files, in
one statement, one row per file, with what the file itself says (its
capture time), never the first guess made before reading it."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.hashing import sha256_file
from reconciler.schema import MIGRATIONS, _migrate_library_clustered
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


def test_the_library_table_migrates_to_a_path_ordered_table_keeping_rows_index_and_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    # An older database: the library as the rowid table sqlite-utils made.
    conn = sqlite3.connect(path)
    conn.execute("drop table library")
    conn.execute(
        'create table "library" ("path" TEXT PRIMARY KEY, "original_sha256" TEXT, '
        '"sha256" TEXT, "tier" TEXT, "size" INTEGER, "mtime_ns" INTEGER, captured_at real)'
    )
    conn.execute('create index "idx_library_original_sha256" on "library" ("original_sha256")')
    rows = [
        ("2024/b.jpg", "o1", "s1", "recent", 1, 2, 3.5),
        ("2023/é.jpg", "o2", "s2", "original", 4, 5, None),
        ("2023/a.jpg", "o3", "s3", "older", 6, 7, 8.0),
        ("2023/Z.jpg", "o4", "s4", "archive", 9, 10, 11.0),
    ]
    conn.executemany("insert into library values (?, ?, ?, ?, ?, ?, ?)", rows)
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_library_clustered) - 1
    conn.execute("update meta set value = ? where key = 'schema_version'", (str(before),))
    conn.commit()
    conn.close()

    db = StateDB(path)
    try:
        sql = db.db.execute("select sql from sqlite_master where name = 'library'").fetchone()
        assert "without rowid" in sql[0].lower()
        # every row, in the order Python sorts the paths (the merge's order)
        assert list(db.lineage_in_order()) == [LineageRow(*r) for r in sorted(rows)]
        plan = db.db.execute(
            "explain query plan select path from library where original_sha256 = 'o3'"
        ).fetchall()
        assert any("idx_library_original_sha256" in str(step) for step in plan)
        counted = db.changes()
        db.record_lineages([LineageRow("2025/new.jpg", "o5", "s5", "recent", 1, 1, None)])
        assert db.changes() == counted + 1  # the census still sees library writes
    finally:
        db.close()


def test_each_library_file_finds_its_own_row_so_a_converged_plan_learns_nothing_again(
    tmp_path: Path,
) -> None:
    """The library's rows are merged with its files in path order: a row
    missed (the merge out of step) is learned again from the file, which a
    converged run would show as library rows written on every plan."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    for i, name in enumerate(["b.JPG", "A.JPG", "é.JPG", "a.JPG", "Z.JPG"]):
        make_jpeg(ws.incoming / name, OLD + timedelta(days=40 * i), seed=i)
    assert ws.run("apply", "--yes").code == 0
    db = StateDB.in_dir(tmp_path / "state")
    try:
        # Rows of files no longer there, before, between and after the others.
        gone = [f"{p}/gone.JPG" for p in ("0000", "2023/05/30", "9999")]
        db.record_lineages([LineageRow(p, "o" * 64, "s" * 64, "original", 1, 1, 1.0) for p in gone])
        # (no target holds their content, one original: said lost once, exit 1)
        first = ws.run("plan")
        assert (first.code, first.out.count("x lost library:")) == (1, 1), first.out
        before = db.changes()
        assert ws.run("plan").code == 1
        assert db.changes() == before
        # set aside as gone (their content is nowhere in the library), not lost
        assert set(gone) <= {r.path for r in db.gone_lineage()}
        assert not set(gone) & set(db.lineage())
    finally:
        db.close()
