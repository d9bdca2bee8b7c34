"""An iCloud item leaves only with all its metadata archived: albums joined
or left while a run is under way, albums of hidden assets, and Shared
Library items a staging album cannot hold. The whole tool, the real pyicloud
and the emulator; sidecars read back from every store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from tests.helpers import Workspace, during_icloud_removal, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb", "library")
SHARED = "SharedSync-6E1C3B2A-0D4F-4E55-9A1B-2C3D4E5F6A7B"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    src = tmp_path / "src"
    shown = account.add_asset(
        make_jpeg(src / "1.jpg", OLD, seed=1).read_bytes(), "IMG_0001.JPG", asset_date=OLD
    )
    hidden = account.add_asset(
        make_jpeg(src / "2.jpg", OLD, seed=2).read_bytes(), "IMG_0002.JPG", asset_date=OLD
    )
    account.add_album("Trip", [shown])
    account.add_album("Private trip", [hidden])
    account.update_asset(hidden, {"isHidden": 1})
    zone = account.add_shared_library(SHARED)
    account.add_asset(
        make_jpeg(src / "3.jpg", OLD, seed=3).read_bytes(),
        "IMG_0003.JPG",
        asset_date=OLD,
        zone=zone,
    )
    return account


def _asset(account: Account, name: str) -> EmulatedAsset:
    zone = account.zones["PrimarySync"]
    return next(a for a in zone.assets.values() if a.master.filename == name)


@pytest.mark.parametrize("how", ["a new album", "an existing album", "left its album"])
def test_an_album_change_during_the_run_waits_for_the_sidecar(
    ws: Workspace, account: Account, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    photo = _asset(account, "IMG_0001.JPG")
    trip = next(a for a in account.zones["PrimarySync"].albums.values() if a.name == "Trip")
    gone: list[str] = []
    if how == "a new album":
        wanted = ["Albums|Trip", "Albums|Wedding"]
        pending = during_icloud_removal(monkeypatch, lambda: account.add_album("Wedding", [photo]))
    elif how == "an existing album":
        other = account.add_album("Best of", [])
        wanted = ["Albums|Best of", "Albums|Trip"]
        pending = during_icloud_removal(
            monkeypatch, lambda: account.add_to_album(other, photo.asset_id)
        )
    else:
        wanted, gone = [], ["Albums|Trip"]
        pending = during_icloud_removal(
            monkeypatch, lambda: account.remove_from_album(trip, photo.asset_id)
        )
    r = ws.run("apply", "--yes", now=NOW)
    # A membership leaves the asset's record (and change tag) as it was:
    # only reading the albums at removal sees it.
    assert not photo.deleted, r.out
    assert "its metadata changed since it was archived (albums;" in r.out, r.out
    assert pending == [], "the change was not made"
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    for store, text in ws.sidecars("IMG_0001.JPG", STORES).items():
        assert all(w in text for w in wanted), (store, text)
        assert not any(g in text for g in gone), (store, text)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_hidden_asset_leaves_with_its_albums_in_the_sidecar(
    ws: Workspace, account: Account
) -> None:
    hidden = _asset(account, "IMG_0002.JPG")
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert hidden.deleted
    for store, text in ws.sidecars("IMG_0002.JPG", STORES).items():
        assert "Albums|Private trip" in text, store
        assert "<reconcile:Hidden>True</reconcile:Hidden>" in text, store
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_an_asset_hidden_after_archiving_keeps_its_albums(ws: Workspace, account: Account) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    photo = _asset(account, "IMG_0001.JPG")
    account.update_asset(photo, {"isHidden": 1})
    # Read through the change feed: the album memberships are read again,
    # and a hidden asset's are read from its relation records.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store, text in ws.sidecars("IMG_0001.JPG", STORES).items():
        assert "Albums|Trip" in text, store
        assert "<reconcile:Hidden>True</reconcile:Hidden>" in text, store
    ws.removal(on=True)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert photo.deleted
    assert all("Albums|Trip" in t for t in ws.sidecars("IMG_0001.JPG", STORES).values())


def test_a_shared_library_item_with_a_staging_album_is_a_note_not_a_failure(
    ws: Workspace, account: Account
) -> None:
    ws.config.write_text(
        ws.config.read_text().replace(
            "timeout_s = 5\n",
            'timeout_s = 5\ninclude_shared = true\nstaging_album = "DeletePending"\n',
        )
    )
    why = (
        "in a Shared Library, which the staging album 'DeletePending' cannot hold "
        "(only the personal library has albums); kept in the source"
    )
    plan = ws.run("plan", "--detail", now=NOW)
    assert "remove-from-source icloud:IMG_0003.JPG" not in plan.out, plan.out
    assert f"skipped icloud:IMG_0003.JPG: {why}" in plan.out, plan.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []  # the personal library's items left
    (shared,) = account.zones[SHARED].assets.values()
    assert not shared.deleted
    staging = next(
        a for a in account.zones["PrimarySync"].albums.values() if a.name == "DeletePending"
    )
    assert len(staging.asset_ids) == 2  # the two personal-library items
    for _ in range(2):  # converged: nothing to do, no failure, every run
        assert ws.run("apply", "--yes", now=NOW).code == 0
        p = ws.run("plan", "--detailed-exitcode", now=NOW)
        assert p.code == 0, p.out + p.err
        assert why in p.out
