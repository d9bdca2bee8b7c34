"""The whole tool while the person hides a photo as a run lists iCloud (a
phone in their hand while cron runs): a listing of many requests is no
snapshot, and the plan must neither count the photo twice nor write its
sidecar without its albums. The person acts at the emulator between two
requests of the real pyicloud (``before_query``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
STORES = ("library", "nas", "usb")


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    for n in range(3):
        jpeg = make_jpeg(tmp_path / "src" / f"{n}.jpg", OLD, seed=n).read_bytes()
        account.add_asset(jpeg, f"IMG_000{n}.JPG", asset_date=OLD)
    return account


def sidecars(ws: Workspace, name: str) -> dict[str, str]:
    out = {}
    for store in STORES:
        (xmp,) = ws.target(store).rglob(f"{name}.xmp")
        out[store] = xmp.read_text()
    return out


def test_hidden_while_the_weekly_full_listing_runs_is_removed_once(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """ "All Photos" is read, then the Hidden album: hidden in between, the
    photo is in both reads, and was planned, removed, counted and
    budgeted twice."""
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    victim = account.live_assets()[0]
    emu.server.before_query(
        "CPLAssetAndMasterHiddenByAssetDate",
        lambda: account.update_asset(victim, {"isHidden": 1}),
    )
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW + timedelta(days=8))  # a full listing is due
    assert r.code == 0, r.out + r.err
    assert all(a.deleted for a in account.zones["PrimarySync"].assets.values())
    assert "remove-from-source (3," in r.out, r.out
    assert r.out.count(f"{victim.master.filename}: removed from icloud") == 1, r.out
    # The later read won: the sidecar says hidden, as the removal found it.
    assert "<reconcile:Hidden>True<" in sidecars(ws, victim.master.filename)["nas"]


def test_hidden_while_a_run_by_changes_reads_albums_keeps_them_in_every_sidecar(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """Album listings leave hidden assets out, and a run by changes takes
    the photo as remembered (shown): hidden as the albums are read, it was
    in none, and every store's sidecar was rewritten without its album."""
    ws.removal(on=False)
    photo, other = account.live_assets()[:2]
    account.add_album("Trips", [photo])
    assert ws.run("apply", "--yes", now=NOW).code == 0
    name = photo.master.filename
    assert all("Albums|Trips" in text for text in sidecars(ws, name).values())
    account.add_album("Kids", [other])  # so this run reads the albums
    emu.server.before_query(
        "CPLContainerRelation", lambda: account.update_asset(photo, {"isHidden": 1})
    )
    r = ws.run("apply", "--yes", now=NOW + timedelta(hours=1))
    assert r.code == 0, r.out + r.err
    for store, text in sidecars(ws, name).items():
        assert "Albums|Trips" in text, (store, r.out)


def test_hidden_while_the_albums_are_read_leaves_icloud_with_its_album(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """With removal on: the removal, which reads the photo again, refuses
    it while its sidecar says it is shown (its album kept meanwhile); the
    next run reads the hide, rewrites the sidecar, and removes it."""
    ws.removal(on=False)
    photo, other = account.live_assets()[:2]
    account.add_album("Trips", [photo])
    assert ws.run("apply", "--yes", now=NOW).code == 0
    ws.removal(on=True)
    account.add_album("Kids", [other])
    emu.server.before_query(
        "CPLContainerRelation", lambda: account.update_asset(photo, {"isHidden": 1})
    )
    name = photo.master.filename
    r = ws.run("apply", "--yes", now=NOW + timedelta(hours=1))
    assert r.code == 1, r.out + r.err
    assert f"{name}: icloud: remove" in r.out
    assert "its metadata changed since it was archived (hidden;" in r.out, r.out
    assert not photo.deleted
    assert all("Albums|Trips" in text for text in sidecars(ws, name).values()), r.out
    r = ws.run("apply", "--yes", now=NOW + timedelta(hours=2))
    assert r.code == 0, r.out + r.err
    assert f"{name}: removed from icloud" in r.out
    assert photo.deleted
    for store, text in sidecars(ws, name).items():
        assert "Albums|Trips" in text and "<reconcile:Hidden>True<" in text, (store, text)
