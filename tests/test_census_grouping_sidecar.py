"""With no source record of an item (the state DB lost: README "State":
the next run re-observes and converges), the census groups the library's
files as the item's sidecar in the library lists them, never by their
names: an iCloud asset with a rendered edit (``IMG_0002-edited.JPG``,
named unlike its still), off-loaded, is one item, not two."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from reconciler.census import STATES
from tests.helpers import Workspace, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)  # off-loaded from iCloud
AAE = b"<plist>v1: crop 4:3</plist>"


@pytest.fixture
def account() -> Account:
    return Account()


def _items(ws: Workspace) -> dict[str, int]:
    return dict(json.loads(ws.run("status", "--json", now=NOW).out)["census"]["items"])


def _counts(**counts: int) -> dict[str, int]:
    return {s: counts.get(s, 0) for s in STATES}


def _offloaded(ws: Workspace, account: Account, tmp: Path) -> None:
    """Two assets, the second with a rendered edit, archived and off-loaded."""
    jpeg = [make_jpeg(tmp / f"{i}.jpg", OLD, seed=i, size=256).read_bytes() for i in (1, 2, 3)]
    account.add_asset(jpeg[0], "IMG_0001.JPG", asset_date=OLD)
    edited = account.add_asset(jpeg[1], "IMG_0002.JPG", asset_date=OLD)
    account.edit_asset(edited, jpeg[2], adjustments=AAE)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(account.deleted_assets()) == 2
    assert _items(ws) == _counts(removed=2)
    assert any(n.endswith("IMG_0002-edited.JPG") for n in files_under(ws.library))


def _state_lost(ws: Workspace, emu: RunningEmulator) -> None:
    shutil.rmtree(ws.root / "state")
    seed_trusted_session(emu, ws.root / "state" / "icloud-session")


def test_an_edited_item_is_one_item_after_the_state_db_is_lost(
    ws: Workspace, emu: RunningEmulator, account: Account, tmp_path: Path
) -> None:
    _offloaded(ws, account, tmp_path)
    _state_lost(ws, emu)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    # No record says they were removed: two items on both targets, not three.
    assert _items(ws) == _counts(archived_2plus=2)


def test_an_edited_item_is_one_item_after_the_library_is_put_back_from_a_target(
    ws: Workspace, emu: RunningEmulator, account: Account, tmp_path: Path
) -> None:
    _offloaded(ws, account, tmp_path)
    # The library's disk and the state DB lost; the person copies a target back.
    for folder in [p for p in ws.library.iterdir() if p.is_dir()]:
        shutil.rmtree(folder)
    for folder in [p for p in ws.target("nas").iterdir() if p.is_dir()]:
        shutil.copytree(folder, ws.library / folder.name)
    _state_lost(ws, emu)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _items(ws) == _counts(archived_2plus=2)
