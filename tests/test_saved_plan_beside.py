"""A plan saved (``plan --out``) while an apply is under way, applied once
that apply has done its actions: README's ``apply PLANFILE`` says actions
"an apply since it was made already did (an apply of this plan, or any
other, such as cron's) are reported `ok` (already done)". Done since is
when the work was done, not when the run that did it started."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.commands.saved_plan import done_since
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, paused_apply

OLD = datetime(2021, 1, 1, tzinfo=UTC)


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD.replace(day=1 + i), seed=i, size=256)
    return ws


def test_a_plan_saved_beside_an_apply_is_done_by_it_not_stale(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    saved = tmp_path / "p.json"
    with paused_apply(ws, tmp_path / "release"):
        # cron's plan --out (or a person's) while the apply is under way: it
        # saves the copies to targets and the removals the apply is yet to do
        made = ws.run("plan", "--out", str(saved))
        assert made.code == 0 and "remove-from-source" in made.out, made.out
    # ... and the apply, started before the plan was made, did every one after
    r = ws.run("apply", "--yes", str(saved))
    assert r.code == 0, r.out + r.err
    assert "stale" not in r.out, r.out
    assert "already done by an apply since this plan was made" in r.out, r.out


def test_done_since_is_when_the_work_was_done(tmp_path: Path) -> None:
    """An apply started before the plan was made: what it journaled after
    counts, what before does not (the plan was made from a world that had
    it); one started after counts whole."""
    db = StateDB(tmp_path / "state.db")
    try:
        under_way = db.start_run("apply")
        db.journal(under_way, "copy:before", "copy-to-target", "changed")
        db.journal(under_way, "copy:after", "copy-to-target", "changed")
        db.journal(under_way, "remove:failed", "remove-from-source", "failed")
        db.finish_run(under_way, "ok", {})
        later = db.start_run("apply")
        db.journal(later, "remove:later", "remove-from-source", "changed")
        db.finish_run(later, "ok", {})
        ids = {"copy:before", "copy:after", "remove:failed", "remove:later"}
        rows = db.journal_rows()
    finally:
        db.close()
    plan_made = datetime.fromisoformat(rows[1]["at"]) - timedelta(microseconds=1)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        # the first row an hour before the plan; the under-way run started then
        hour_before = (plan_made - timedelta(hours=1)).isoformat()
        conn.execute("update journal set at = ? where id = ?", (hour_before, rows[0]["id"]))
        conn.execute("update runs set started_at = ? where id = ?", (hour_before, under_way))
        conn.execute(
            "update runs set started_at = ? where id = ?",
            ((plan_made + timedelta(seconds=1)).isoformat(), later),
        )
    conn.close()
    db = StateDB(tmp_path / "state.db")
    try:
        assert done_since(db, plan_made, ids) == {"copy:after", "remove:later"}
    finally:
        db.close()
