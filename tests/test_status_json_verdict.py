"""``status --json`` "holds the same facts" as ``status`` (README): the
verdict "every item is archived (N copies required) or off-loaded" too."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import MARKER
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
HEADLINE = "every item is archived (2 copies required) or off-loaded"


def test_status_json_says_whether_every_item_is_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS, removal=False)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    assert ws.run("plan", now=NOW).code == 0
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert (doc["every_item_archived"], doc["copies_required"]) == (False, 2)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert HEADLINE in ws.run("status", now=NOW).out
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert (doc["every_item_archived"], doc["copies_required"]) == (True, 2)
    # a target unplugged: its copies are a record, not a proof
    (ws.target("usb") / MARKER).rename(ws.root / "marker")
    assert HEADLINE not in ws.run("status", now=NOW).out
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert doc["every_item_archived"] is False and "usb" in doc["not_proven_now"]
