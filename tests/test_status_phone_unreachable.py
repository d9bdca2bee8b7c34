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
import time
from datetime import UTC, datetime
from pathlib import Path

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


def test_status_does_not_call_items_archived_while_syncthing_is_down(
    tmp_path: Path, pair: SyncthingPair
) -> None:
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
    st = ws.run("status", now=NOW)
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert HEADLINE not in st.out, st.out
    assert "phone" in doc["not_proven_now"], doc["not_proven_now"]
