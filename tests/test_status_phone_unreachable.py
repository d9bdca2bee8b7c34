"""``status`` calls every item archived while the phone is not proven alive:
after Syncthing stopped answering (here: the local Syncthing is stopped, as
after a reboot where it did not start) the last plan found the phone target
unavailable and counted none of its copies, yet ``status`` prints "every
item is archived (2 copies required) or off-loaded" and ``--json`` has an
empty ``not_proven_now``: ``_unproven`` only looks at the liveness row,
which still holds the canary of an earlier run that succeeded.

README (What ``status`` says): the line is printed "only when ... no target
holding copies is unproven now: ... a phone whose last canary failed is
named instead"; a phone that could not even be asked was not proven alive
in the last run either."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from tests.helpers import Workspace, make_jpeg, phone_workspace

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
HEADLINE = "every item is archived (2 copies required) or off-loaded"


def _items(ws: Workspace) -> dict[str, int]:
    r = ws.run("status", "--json", now=NOW)
    assert r.code == 0, r.err
    items: dict[str, int] = json.loads(r.out)["census"]["items"]
    return {state: n for state, n in items.items() if n}


@pytest.mark.parametrize("clock_behind", [False, True])
def test_status_does_not_call_items_archived_while_syncthing_is_down(
    tmp_path: Path, pair: SyncthingPair, clock_behind: bool
) -> None:
    """``clock_behind``: that plan was recorded while the clock was behind (a
    machine booted with its RTC reset, before NTP set it; systemd's
    Persistent timer runs at boot): which run is the last is told by the
    runs' order, never by the times recorded."""
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 5\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    deadline = time.monotonic() + 60
    while _items(ws) != {"removed": 1} and time.monotonic() < deadline:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        time.sleep(0.2)
    assert _items(ws) == {"removed": 1}
    assert HEADLINE in ws.run("status", now=NOW).out
    pair.local.stop()  # Syncthing on this machine is down: the phone cannot be asked
    plan = ws.run("plan", now=NOW)
    assert plan.code == 1 and "unavailable target phone" in plan.out, plan.out + plan.err
    db = sqlite3.connect(ws.root / "state" / "state.db")
    with db:
        (last,) = db.execute("select max(id) from runs").fetchone()
        if clock_behind:
            db.execute(
                "update runs set started_at = ?, finished_at = ? where id = ?",
                ("2000-01-01T00:00:05+00:00", "2000-01-01T00:00:09+00:00", last),
            )
    db.close()
    st = ws.run("status", now=NOW)
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert HEADLINE not in st.out, st.out
    assert doc["not_proven_now"] == {
        "phone": f"was not reached in the last run (run {last}; Syncthing unreachable?): "
        "its last canary is older"
    }
    assert doc["every_item_archived"] is False
