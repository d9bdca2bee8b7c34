"""What a download of a remote file left in the state DB, and when its hash
still counts: only while the source lists that file with the size and
fingerprint it had when downloaded (rows from before the fingerprint was
kept compare by size)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.schema import MIGRATIONS, _migrate_source_fingerprint
from reconciler.state import DownloadedFile, StateDB

SHA = "a" * 64


def test_a_downloaded_file_counts_while_its_size_and_fingerprint_are_the_same() -> None:
    row = DownloadedFile(SHA, 100, "fp1")
    assert row.still(100, "fp1")
    assert not row.still(100, "fp2")  # edited again, as many bytes
    assert not row.still(101, "fp1")
    assert not row.still(100, "")  # the source no longer says: not proven the same
    older = DownloadedFile(SHA, 100, "")
    assert older.still(100, "fp2")
    assert not older.still(101, "fp2")


def test_rows_are_read_and_written_with_their_fingerprint(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        before = db.changes()
        db.record_source_file("icloud", "A:M", "edited", SHA, 100, "fp1")
        assert db.changes() == before + 1  # the census still sees the writes
        assert db.source_files() == {("icloud", "A:M", "edited"): DownloadedFile(SHA, 100, "fp1")}
        db.record_source_file("icloud", "A:M", "edited", "b" * 64, 120, "fp2")
        assert db.source_files() == {
            ("icloud", "A:M", "edited"): DownloadedFile("b" * 64, 120, "fp2")
        }
        assert db.known_sha256() == {("icloud", "A:M", "edited"): "b" * 64}
    finally:
        db.close()


def test_the_fingerprint_column_is_added_to_an_older_database_keeping_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    # An older database: source_files as the first migration made it.
    conn = sqlite3.connect(path)
    conn.execute("drop table source_files")
    conn.execute(
        'create table "source_files" ("source_id" TEXT, "item_key" TEXT, "ref" TEXT, '
        '"sha256" TEXT, "size" INTEGER, PRIMARY KEY ("source_id", "item_key", "ref"))'
    )
    conn.execute("insert into source_files values ('icloud', 'A:M', 'original', ?, 7)", [SHA])
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_source_fingerprint) - 1
    conn.execute("update meta set value = ? where key = 'schema_version'", [str(before)])
    conn.commit()
    conn.close()

    db = StateDB(path)
    try:
        (row,) = db.source_files().values()
        assert row == DownloadedFile(SHA, 7, "")
        assert row.still(7, "whatever iCloud says now")
        _migrate_source_fingerprint(db.db)  # safe to run again
        db.record_source_file("icloud", "A:M", "edited", SHA, 9, "fp")
        assert db.source_files()[("icloud", "A:M", "edited")] == DownloadedFile(SHA, 9, "fp")
    finally:
        db.close()
