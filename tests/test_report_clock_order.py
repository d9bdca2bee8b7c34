"""The report's plots after runs recorded while the clock went back: drawn
in the order of their times (the x axis), not of the rows, so no line or
area folds back over itself."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import report
from reconciler.state import StateDB
from tests.helpers import make_jpeg, make_workspace

T0 = datetime(2026, 1, 1, 3, tzinfo=UTC)


def _figures(page: str) -> list[str]:
    return re.findall(r"<figure>.*?</figure>", page, flags=re.S)


def test_plots_follow_the_runs_times_whatever_order_they_were_recorded_in(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", datetime(2025, 6, 1 + i, 12), seed=i)
        assert ws.run("apply", "--yes").code == 0
    # The second run was made while the clock was two days ahead.
    db = sqlite3.connect(ws.root / "state" / "state.db")
    with db:
        for run_id, at in ((1, T0), (2, T0 + timedelta(days=2)), (3, T0 + timedelta(days=1))):
            db.execute("update runs set finished_at = ? where id = ?", (at.isoformat(), run_id))
    db.close()
    state = StateDB.in_dir(ws.root / "state")
    try:
        history = state.census_history()
    finally:
        state.close()
    assert [at[:10] for at, _ in history] == ["2026-01-01", "2026-01-03", "2026-01-02"]
    as_recorded = report.page(history=history, runs=[], generated_at=T0, state_path="state.db")
    by_time = report.page(
        history=sorted(history, key=lambda point: point[0]),
        runs=[],
        generated_at=T0,
        state_path="state.db",
    )
    assert len(_figures(as_recorded)) == 4
    assert _figures(as_recorded) == _figures(by_time)
    # "Now" is still what the newest run left, whatever its time said
    assert "as the last run left it (2026-01-02 03:00:00)" in as_recorded
