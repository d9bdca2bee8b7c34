"""Hidden iCloud assets' albums: album listings leave hidden assets out, so
their memberships are looked up by relation name (``<asset>-IN-<album>``).
A failed lookup keeps only those assets in iCloud for the run (a note, the
rest of the library archived and removed as usual), and a run by changes
looks up only what may have changed. The whole tool, the real pyicloud and
the emulator; lookups counted at the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb", "library")
UNREAD = "hidden, and its albums could not be read (from its album relations); read again next run"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """One shown asset in "Trip", three hidden ones (the first in "Private
    trip"), and two more albums."""
    account = Account()
    src = tmp_path / "src"
    assets = [
        account.add_asset(
            make_jpeg(src / f"{n}.jpg", OLD, seed=n).read_bytes(),
            f"IMG_000{n}.JPG",
            asset_date=OLD,
        )
        for n in range(1, 5)
    ]
    account.add_album("Trip", [assets[0]])
    account.add_album("Private trip", [assets[1]])
    account.add_album("Cats", [])
    account.add_album("Dogs", [])
    for hidden in assets[1:]:
        account.update_asset(hidden, {"isHidden": 1})
    return account


def _asset(account: Account, name: str) -> EmulatedAsset:
    zone = account.zones["PrimarySync"]
    return next(a for a in zone.assets.values() if a.master.filename == name)


def _relations(emu: RunningEmulator) -> list[str]:
    """The relation names looked up since the last call."""
    names = [n for n in emu.server.looked_up if "-IN-" in n]
    emu.server.looked_up.clear()
    return names


@pytest.mark.parametrize("listing", ["full", "changes"])
def test_hidden_albums_unread_keep_those_assets_only(
    ws: Workspace, account: Account, emu: RunningEmulator, listing: str
) -> None:
    if listing == "changes":
        # A first run remembers the listing; the next reads by changes.
        ws.removal(on=False)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        ws.removal(on=True)
        # Album memberships are read again (a new album): the lookups fail.
        account.add_album("Later", [])
    shown = _asset(account, "IMG_0001.JPG")
    hidden = _asset(account, "IMG_0002.JPG")
    # Throttled: every lookup of a relation record, for the listing only
    # (a removal reads its own albums again, and must then succeed).
    fault = emu.server.inject("lookup", status=503, body_contains="-IN-", times=1)
    r = ws.run("apply", "--yes", "--detail", now=NOW)
    assert fault.hits == 1
    assert r.code == 0, r.out + r.err
    # The rest of the library went on: archived and removed.
    assert shown.deleted
    assert f"skipped icloud:IMG_0002.JPG: {UNREAD}; kept in the source" in r.out, r.out
    assert not hidden.deleted
    # Its files are archived all the same; its albums are not lost from it.
    for store, text in ws.sidecars("IMG_0002.JPG", STORES).items():
        assert "<reconcile:Hidden>True</reconcile:Hidden>" in text, store
        if listing == "changes":
            assert "Albums|Private trip" in text, store
    # The next run (by changes) reads them again, and the asset leaves.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert hidden.deleted
    assert account.live_assets() == []
    for store, text in ws.sidecars("IMG_0002.JPG", STORES).items():
        assert "Albums|Private trip" in text, store
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_run_by_changes_looks_up_only_what_changed(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    ws.removal(on=False)
    hidden = [_asset(account, f"IMG_000{n}.JPG") for n in (2, 3, 4)]
    assert ws.run("apply", "--yes", now=NOW).code == 0
    # The full listing: every hidden asset against every user album.
    assert len(_relations(emu)) == 3 * 4
    # A new (shown) photo: memberships are read again, but no hidden asset's
    # relations can have changed.
    account.add_asset(
        make_jpeg(tmp_path / "5.jpg", OLD, seed=5).read_bytes(), "IMG_0005.JPG", asset_date=OLD
    )
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _relations(emu) == []
    # A hidden asset joins an album: that relation alone.
    cats = next(a for a in account.zones["PrimarySync"].albums.values() if a.name == "Cats")
    account.add_to_album(cats, hidden[1].asset_id)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _relations(emu) == [f"{hidden[1].asset_id}-IN-{cats.album_id}"]
    assert all("Albums|Cats" in t for t in ws.sidecars("IMG_0003.JPG", STORES).values())
    # A new album: every hidden asset against it, no other album.
    wedding = account.add_album("Wedding", [hidden[2]])
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert sorted(_relations(emu)) == sorted(f"{h.asset_id}-IN-{wedding.album_id}" for h in hidden)
    # A newly hidden asset: it, against every album.
    shown = _asset(account, "IMG_0001.JPG")
    account.update_asset(shown, {"isHidden": 1})
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(_relations(emu)) == 5
    # A hidden asset leaves an album: that relation alone, and the sidecar follows.
    account.remove_from_album(cats, hidden[1].asset_id)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _relations(emu) == [f"{hidden[1].asset_id}-IN-{cats.album_id}"]
    assert not any("Albums|Cats" in t for t in ws.sidecars("IMG_0003.JPG", STORES).values())
    # Every sidecar as a full listing reads them.
    for name, albums in [
        ("IMG_0001.JPG", ["Albums|Trip"]),
        ("IMG_0002.JPG", ["Albums|Private trip"]),
        ("IMG_0004.JPG", ["Albums|Wedding"]),
    ]:
        for store, text in ws.sidecars(name, STORES).items():
            assert all(a in text for a in albums), (name, store)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    # And removal (which re-reads each asset's albums) then finds nothing changed.
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []
