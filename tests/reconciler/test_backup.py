"""State database backups: a consistent copy after an apply, at most once
per interval, kept ``backup_count`` deep."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import backup
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])
    finally:
        conn.close()


def test_an_apply_leaves_a_copy_that_opens_and_holds_its_rows(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "a.jpg", T0 - timedelta(days=400), seed=1)
    assert ws.run("plan").code == 0
    assert not (tmp_path / "state" / "backups").exists()  # a plan makes none
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("apply", "--yes").code == 0  # within the interval: no second copy
    [copy] = backup.backups(tmp_path / "state" / "backups")
    assert rows(copy, "runs") == 2  # the plan and the first apply (its own row)
    assert rows(copy, "hash_cache") == rows(tmp_path / "state" / "state.db", "hash_cache") > 0
    assert rows(copy, "journal") > 0


def test_copies_are_made_once_per_interval_and_kept_n_deep(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path / "state")
    folder = tmp_path / "state" / "backups"
    try:
        made = [
            backup.back_up(
                db.db.conn, folder, keep=3, interval_hours=24, now=T0 + timedelta(hours=h)
            )
            for h in (0, 1, 23, 24, 48, 72, 100)
        ]
        assert [m is not None for m in made] == [True, False, False, True, True, True, True]
        kept = backup.backups(folder)
        assert kept == [made[4], made[5], made[6]]
        assert [backup.made_at(p) for p in kept] == [T0 + timedelta(hours=h) for h in (48, 72, 100)]
        assert backup.back_up(db.db.conn, folder, keep=0, interval_hours=0, now=T0) is None
    finally:
        db.close()


def test_backups_are_configured_under_state(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    text = ws.config.read_text().replace(
        'dir = "state"', 'dir = "state"\nbackup_count = 2\nbackup_interval_hours = 0'
    )
    ws.config.write_text(text)
    for _ in range(3):
        assert ws.run("apply", "--yes").code == 0
    assert len(backup.backups(tmp_path / "state" / "backups")) == 2
    ws.config.write_text(text.replace("backup_count = 2", "backup_count = -1"))
    r = ws.run("validate")
    assert r.code == 1
    assert "state.backup_count: must not be negative (0: no backups)" in r.err + r.out
