"""Incremental iCloud observation through the CLI: a run after the first
reads CloudKit's change feed, and removal stays gated exactly as before,
even when the remembered listing is wrong."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    for n in range(3):
        jpeg = make_jpeg(tmp_path / "src" / f"{n}.jpg", OLD, seed=n).read_bytes()
        account.add_asset(jpeg, f"IMG_000{n}.JPG", asset_date=OLD)
    return account


def _log(ws: Workspace) -> str:
    return (ws.root / "state" / "reconcile.log").read_text()


def test_runs_after_the_first_read_changes_and_converge(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert "icloud: full listing: no listing remembered yet" in _log(ws)
    added = account.add_asset(b"\xff\xd8new" * 500, "IMG_0100.JPG", asset_date=OLD)
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "icloud: read 2 changed records since the last listing" in _log(ws)
    # Everything archived, the new one too, went to Recently Deleted.
    assert account.live_assets() == [] and added.deleted
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out
    # An expired token means a full listing, and says so (at -v too); so
    # does a week since the last full listing.
    emu.server.expire_sync_tokens()
    assert ws.run("-v", "plan", now=NOW + timedelta(days=1)).code == 0
    assert "refused the sync token of PrimarySync (CHANGE_TOKEN_EXPIRED)" in _log(ws)
    assert ws.run("plan", now=NOW + timedelta(days=9)).code == 0
    assert "the last full listing was 8.0 days ago (full_listing_every_days = 7)" in _log(ws)


def test_a_wrong_remembered_listing_never_leads_to_a_removal(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """An edit the change feed 'lost' (the token moved past it by hand):
    the plan believes the item archived, but the removal re-reads the asset
    and refuses, and a full listing then archives the edit."""
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    edited = account.live_assets()[0]
    account.edit_asset(edited, make_jpeg(tmp_path / "edit.jpg", OLD, seed=9).read_bytes())
    # Move the remembered token past the edit: this run will not see it.
    zones = emu.server._zones("private")["zones"]
    state = sqlite3.connect(ws.root / "state" / "state.db")
    state.execute("update icloud_cursor set token = ?", [zones[0]["syncToken"]])
    state.commit()
    state.close()
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert "edited, sidecar changed since it was archived; not removed" in r.out
    assert not edited.deleted
    assert len(account.deleted_assets()) == 2
    # The next full listing sees the edit: archived first, then removed.
    r = ws.run("apply", "--yes", now=NOW + timedelta(days=8))
    assert r.code == 0, r.out + r.err
    assert edited.deleted
    assert any(p.name.endswith("-edited.JPG") for p in ws.target("nas").rglob("*"))


def test_the_gate_still_counts_copies_after_an_incremental_observation(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    # One backup lost between runs: the incremental plan must copy, not remove.
    victim = next(ws.target("usb").rglob("IMG_0001.JPG"))
    victim.unlink()
    ws.removal(on=True)
    p = ws.run("plan", now=NOW)
    assert "+ copy-to-target[usb] icloud:IMG_0001.JPG" in p.out
    assert "remove-from-source icloud:IMG_0001.JPG" not in p.out
    assert "icloud: read 0 changed records" in _log(ws)
