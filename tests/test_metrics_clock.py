"""The metrics textfile's census after runs recorded while the clock was
wrong: the newest is told by the state, never by the times recorded."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Workspace, make_jpeg, make_workspace


def _archived(ws: Workspace) -> float:
    """reconcile_items{state="archived_2plus"} in the textfile."""
    text = (ws.root / "state" / "reconcile.prom").read_text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "reconcile_items" and s.labels == {"state": "archived_2plus"}:
                return s.value
    raise AssertionError(f"no reconcile_items sample:\n{text}")


def _stamp_all_runs(ws: Workspace, at: datetime) -> None:
    db = sqlite3.connect(ws.root / "state" / "state.db")
    with db:
        db.execute("update runs set started_at = ?, finished_at = ?", (at.isoformat(),) * 2)
    db.close()


def test_the_census_follows_the_newest_run_after_the_clock_went_back(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_jpeg(ws.incoming / "IMG_0001.JPG", datetime(2024, 6, 1, 12), seed=1)
    assert ws.run("apply", "--yes").code == 0
    assert _archived(ws) == 1
    # That run was made while the clock was a day ahead (NTP then set it
    # right): its record carries tomorrow's time.
    _stamp_all_runs(ws, datetime.now(UTC) + timedelta(days=1))
    make_jpeg(ws.incoming / "IMG_0002.JPG", datetime(2024, 6, 2, 12), seed=2)
    make_jpeg(ws.incoming / "IMG_0003.JPG", datetime(2024, 6, 3, 12), seed=3)
    assert ws.run("apply", "--yes").code == 0
    assert json.loads(ws.run("status", "--json").out)["census"]["items"]["archived_2plus"] == 3
    assert _archived(ws) == 3
    # and a plan since, recorded with the clock right, changes nothing of it
    assert ws.run("plan").code == 0
    assert _archived(ws) == 3
