"""A phone copy lost after its item left the source. The census (status,
metrics, report) counts a phone copy only while the phone, asked in the
last run that could ask it, held it: a confirmation recorded once does not
outlive the copy. README (What status says): an off-loaded item that lost
a copy "is counted by the copies it has". Real Syncthing on loopback."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from providers.syncthing.pair import SyncthingPair
from reconciler.state import StateDB
from tests.helpers import Workspace, files_under, make_jpeg, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
ON_PHONE = "2022/03/04/IMG_1.JPG"
EVERY_ITEM = "every item is archived"


def _items(ws: Workspace) -> dict[str, int]:
    census: dict[str, Any] = json.loads(ws.run("status", "--json").out)["census"]
    return {k: v for k, v in census["items"].items() if v}


def _offloaded(tmp_path: Path, pair: SyncthingPair) -> Workspace:
    """IMG_1.JPG archived on the NAS and the phone, and removed from its folder."""
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 10\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    deadline = time.monotonic() + 30
    while _items(ws) != {"removed": 1} and time.monotonic() < deadline:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        time.sleep(0.2)
    assert _items(ws) == {"removed": 1}
    assert files_under(ws.incoming) == {}
    assert EVERY_ITEM in ws.run("status").out
    return ws


def _confirmed_rows(ws: Workspace) -> list[str]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return [p for p, row in db.deliveries("phone").items() if row["confirmed_at"]]
    finally:
        db.close()


def test_a_copy_changed_on_the_phone_no_longer_counts(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _offloaded(tmp_path, pair)
    # The phone's copy is edited there (its receive-only folder: "locally changed").
    (pair.phone_folder / ON_PHONE).write_bytes(b"edited on the phone")
    pair.scan_phone(ON_PHONE)
    deadline = time.monotonic() + 30
    while True:
        with pair.target(id="phone") as t:
            if not t.confirm(ON_PHONE).held or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    plan = ws.run("plan", "--detail", now=NOW)
    assert plan.code == 0, plan.out + plan.err
    assert (
        f"library:{ON_PHONE}: phone has not confirmed its copy this run (still on its way, "
        "or changed or lost on the device); it does not count"
    ) in plan.out, plan.out
    # One verified backup (the NAS) of the two the removal needed, and the
    # phone's copy a delivery waiting on the phone again.
    assert _items(ws) == {"waiting_phone": 1}
    assert EVERY_ITEM not in ws.run("status").out
    assert _confirmed_rows(ws) == []


def test_a_staging_copy_deleted_here_no_longer_counts(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _offloaded(tmp_path, pair)
    # Someone deletes the staging copy here (not freed by the tool): the
    # send-only folder sends the deletion to the phone.
    (pair.local_folder / ON_PHONE).unlink()
    plan = ws.run("plan", now=NOW)
    assert f"+ copy-to-target[phone] library:{ON_PHONE}: no verified copy on phone" in plan.out
    assert _items(ws) == {"archived_1": 1}
    assert _confirmed_rows(ws) == []
    # Sent again, and confirmed again: counted as removed with its copies.
    deadline = time.monotonic() + 30
    while _items(ws) != {"removed": 1} and time.monotonic() < deadline:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        time.sleep(0.2)
    assert _items(ws) == {"removed": 1}
