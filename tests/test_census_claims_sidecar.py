"""An item's XMP sidecar is part of it (DESIGN: "every file of the item
(..., XMP sidecar) exists on at least ``copies`` targets"), as the removal
gate and the planner hold it: status, the report and the metrics (the
census) count an item whose sidecar a target lost by the copies left of it,
never as archived on that target. The whole tool, the real pyicloud and the
emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
HEADLINE = "every item is archived (2 copies required) or off-loaded"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "1.jpg", OLD, seed=1).read_bytes()
    asset = account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    account.update_asset(asset, {"isFavorite": 1})  # metadata its sidecar alone keeps
    return account


def _items(ws: Workspace) -> dict[str, int]:
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    return {k: v for k, v in doc["census"]["items"].items() if v}


def _lose_sidecar_on_nas(ws: Workspace) -> None:
    (xmp,) = ws.target("nas").rglob("*.xmp")
    xmp.unlink()
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "write-sidecar nas:IMG_0001.JPG.xmp" in p.out, p.out + p.err


def test_an_offloaded_item_whose_sidecar_one_target_lost_is_not_archived(
    ws: Workspace, account: Account
) -> None:
    """Off-loaded from iCloud, then its sidecar deleted on the NAS: the plan
    writes it again (changes pending); the census counts the item by the one
    target holding all of it, and status no longer says it is archived."""
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.deleted_assets(), r.out
    assert _items(ws) == {"removed": 1}
    assert HEADLINE in ws.run("status", now=NOW).out
    _lose_sidecar_on_nas(ws)
    assert _items(ws) == {"archived_1": 1}
    text = ws.run("status", now=NOW).out
    assert HEADLINE not in text, text
    assert "oldest not yet archived: 2021/06/01/IMG_0001.JPG" in text, text
    # Written again, the item is whole on both targets: off-loaded, archived.
    again = ws.run("apply", "--yes", now=NOW)
    assert again.code == 0, again.out + again.err
    assert _items(ws) == {"removed": 1}
    assert HEADLINE in ws.run("status", now=NOW).out


def test_an_item_in_icloud_whose_sidecar_one_target_lost_is_on_one_target(
    ws: Workspace, account: Account
) -> None:
    """The same for an item still in iCloud (removal off): on two targets
    only while both hold its sidecar too."""
    ws.removal(False)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _items(ws) == {"archived_2plus": 1}
    _lose_sidecar_on_nas(ws)
    assert _items(ws) == {"archived_1": 1}
    assert HEADLINE not in ws.run("status", now=NOW).out
