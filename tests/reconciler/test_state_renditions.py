"""The state DB remembers every file the tool made by encoding, by its own
SHA-256, after the library file it was is encoded again; a database from
before that learns the encodings its library rows name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.schema import MIGRATIONS, _migrate_renditions
from reconciler.state import LineageRow, StateDB

ORIGINAL, RECENT, OLDER = "a" * 64, "b" * 64, "c" * 64
PLAIN = "d" * 64  # a file kept as it is: its own original


def row(path: str, original: str, sha: str, tier: str) -> LineageRow:
    return LineageRow(
        path=path, original_sha256=original, sha256=sha, tier=tier, size=9, mtime_ns=1
    )


def test_an_encoding_is_remembered_after_its_library_file_is_encoded_again(
    tmp_path: Path,
) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        db.record_lineage(row("2021/IMG_1.JPG", ORIGINAL, ORIGINAL, "original"))
        db.record_lineage(row("2021/IMG_2.JPG", PLAIN, PLAIN, "original"))
        assert db.renditions() == {}  # an original is no rendition
        db.record_lineage(row("2021/IMG_1.JPG", ORIGINAL, RECENT, "recent"))
        db.record_lineages([row("2021/IMG_1.JPG", ORIGINAL, OLDER, "older")])
        assert db.lineage()["2021/IMG_1.JPG"].sha256 == OLDER  # the library row: now
        assert db.renditions() == {RECENT: ORIGINAL, OLDER: ORIGINAL}
        tiers = dict(db.db.conn.execute("select sha256, tier from renditions"))
        assert tiers == {RECENT: "recent", OLDER: "older"}
        # asked of some content only, as observation does
        assert db.renditions([OLDER, PLAIN, "e" * 64]) == {OLDER: ORIGINAL}
        assert db.renditions([]) == {}
        # restored to its original: the encodings stay remembered
        db.record_lineage(row("2021/IMG_1.JPG", ORIGINAL, ORIGINAL, "original"))
        assert db.renditions() == {RECENT: ORIGINAL, OLDER: ORIGINAL}
    finally:
        db.close()


def test_an_older_database_learns_the_encodings_its_library_rows_name(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = StateDB(path)
    db.record_lineages(
        [
            row("2021/IMG_1.JPG", ORIGINAL, RECENT, "recent"),
            row("2021/IMG_2.JPG", PLAIN, PLAIN, "original"),
        ]
    )
    db.close()
    # As the database was before the table: none, one version back.
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_renditions) - 1
    conn = sqlite3.connect(path)
    conn.execute("drop table renditions")
    conn.execute("update meta set value = ? where key = 'schema_version'", [str(before)])
    conn.commit()
    conn.close()

    db = StateDB(path)
    try:
        assert db.renditions() == {RECENT: ORIGINAL}
        _migrate_renditions(db.db)  # safe to run again
        assert db.renditions() == {RECENT: ORIGINAL}
    finally:
        db.close()
