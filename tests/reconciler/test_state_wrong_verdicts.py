"""Encodes that earlier versions settled as bad input for a fault of their
own are tried once more after an upgrade (schema 14): a clip called
truncated by the length of its subtitle track, or fetched under a name
without its extension. Other verdicts stay."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.schema import MIGRATIONS, _migrate_retry_wrong_verdicts
from reconciler.state import StateDB

CUT = "a" * 64
NAMELESS = "b" * 64
KEPT = "c" * 64
NOT_WORTH = "d" * 64


def test_an_upgrade_forgets_only_the_verdicts_of_the_old_checks(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = StateDB(path)
    db.record_settled(
        CUT, "older", "cannot encode: x.MOV: truncated or corrupt: decoded 2.0 s of 8.0 s"
    )
    db.record_settled(
        NAMELESS, "older", "cannot encode: icloud:original: unsupported video extension ''"
    )
    db.record_settled(KEPT, "older", "kept as it is: a Live Photo's video")
    db.record_settled(NOT_WORTH, "older", "output not smaller than current file")
    db.close()
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_retry_wrong_verdicts) - 1
    conn = sqlite3.connect(path)
    conn.execute("update meta set value = ? where key = 'schema_version'", [str(before)])
    conn.commit()
    conn.close()

    db = StateDB(path)
    try:
        assert set(db.settled()) == {(KEPT, "older"), (NOT_WORTH, "older")}
    finally:
        db.close()
