"""A record CloudKit cannot serve now is unknown, never absent.

CloudKit answers ``records/lookup`` record by record, in an HTTP 200: in
place of a record it may send an error item (``serverErrorCode``
INTERNAL_ERROR, TRY_AGAIN_LATER…), which pyicloud passes on. Only NOT_FOUND
says a record is not there. Taken for "gone", an asset iCloud could not read
would be reported removed (its tombstone written, so no later run removes
it); an album relation, for "in no album" (a hidden asset would leave with
its album in no sidecar)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import relation_name
from tests.helpers import Workspace, during_icloud_removal, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb")


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def _photo(account: Account) -> EmulatedAsset:
    (asset,) = account.zones["PrimarySync"].assets.values()
    return asset


def _archived(ws: Workspace) -> None:
    """Archived with removal off: the next run plans just the removal."""
    ws.removal(on=False)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    ws.removal(on=True)


# ---------------------------------------------------------------- the asset


@pytest.mark.parametrize("code", ["INTERNAL_ERROR", "TRY_AGAIN_LATER", "ZONE_BUSY"])
def test_an_asset_iCloud_could_not_serve_is_not_reported_removed_and_leaves_next_run(
    ws: Workspace, account: Account, emu: RunningEmulator, code: str
) -> None:
    photo = _photo(account)
    _archived(ws)
    emu.server.inject_record_errors(code, (photo.asset_id,), times=None)

    r1 = ws.run("apply", "--yes", now=NOW)

    assert not photo.deleted
    assert "removed from icloud" not in r1.out, r1.out
    assert f"iCloud is busy or throttling ({code})" in r1.out, r1.out

    # iCloud serves it again: the next run removes it, as it would have.
    emu.server.clear_faults()
    r2 = ws.run("apply", "--yes", now=NOW)
    assert "removed from icloud" in r2.out, r2.out + r2.err
    assert photo.deleted


def test_after_a_conflict_an_asset_iCloud_could_not_serve_is_not_taken_for_gone(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """The CONFLICT path of ``remove`` re-reads the asset too."""
    photo = _photo(account)
    _archived(ws)
    # The first re-read is served; the delete meets a CONFLICT; every
    # re-read after it meets an error item.
    emu.server.inject("lookup", body_contains=photo.asset_id, times=1)
    emu.server.inject_conflict(times=1)
    emu.server.inject_record_errors("INTERNAL_ERROR", (photo.asset_id,), times=None)

    r = ws.run("apply", "--yes", now=NOW)

    assert not photo.deleted
    assert "removed from icloud" not in r.out, r.out
    emu.server.clear_faults()
    assert "removed from icloud" in ws.run("apply", "--yes", now=NOW).out
    assert photo.deleted


# ---------------------------------------------------------------- album relations


@pytest.fixture
def hidden_in_album(account: Account) -> EmulatedAsset:
    photo = _photo(account)
    account.add_album("Private trip", [photo])
    account.update_asset(photo, {"isHidden": 1})
    return photo


def test_a_hidden_asset_whose_album_relation_iCloud_could_not_serve_stays(
    ws: Workspace, account: Account, emu: RunningEmulator, hidden_in_album: EmulatedAsset
) -> None:
    """Album listings leave hidden assets out: their memberships are read
    from the relation records. One answered with an error item is unknown:
    the asset stays this run (``ALBUMS_UNREAD``), as when the lookup fails."""
    photo = hidden_in_album
    (album,) = account.albums_named("Private trip")
    relation = relation_name(photo.asset_id, album.album_id)
    emu.server.inject_record_errors("INTERNAL_ERROR", (relation,), times=None)

    r1 = ws.run("apply", "--yes", now=NOW)

    assert not photo.deleted, r1.out
    assert "its albums could not be read" in r1.out, r1.out

    emu.server.clear_faults()
    r2 = ws.run("apply", "--yes", now=NOW)
    assert photo.deleted, r2.out + r2.err
    for store, text in ws.sidecars("IMG_0001.JPG", STORES).items():
        assert "Private trip" in text, (store, text)


def test_at_removal_an_album_relation_iCloud_could_not_serve_keeps_the_asset(
    ws: Workspace, account: Account, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``remove`` reads the hidden asset's albums afresh (one joined since
    the listing must not leave with it unrecorded): a relation answered
    with an error item there fails the removal, never reads as "in none"."""
    photo = _photo(account)
    account.update_asset(photo, {"isHidden": 1})
    _archived(ws)

    def join_album() -> None:
        album = account.add_album("Private trip", [photo])
        relation = relation_name(photo.asset_id, album.album_id)
        emu.server.inject_record_errors("INTERNAL_ERROR", (relation,), times=None)

    during_icloud_removal(monkeypatch, join_album)
    r1 = ws.run("apply", "--yes", now=NOW)

    assert not photo.deleted, r1.out
    assert "reading its albums failed" in r1.out, r1.out

    emu.server.clear_faults()
    r2 = ws.run("apply", "--yes", now=NOW)
    assert photo.deleted, r2.out + r2.err
    for store, text in ws.sidecars("IMG_0001.JPG", STORES).items():
        assert "Private trip" in text, (store, text)


# ---------------------------------------------------------------- change listing


def test_a_changed_asset_iCloud_could_not_serve_is_not_dropped_from_the_listing(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """A change listing looks up each changed asset: one answered with an
    error item fails the listing (as a failed request does), never leaves
    the remembered listing without it. Here a new asset keeps iCloud's count
    equal to the listing's, so nothing else would notice."""
    photo = _photo(account)
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    account.update_asset(photo, {"isFavorite": 1})
    data = make_jpeg(tmp_path / "b.jpg", OLD, seed=2).read_bytes()
    account.add_asset(data, "IMG_0002.JPG", asset_date=OLD)
    emu.server.inject_record_errors("TRY_AGAIN_LATER", (photo.asset_id,), times=None)

    r1 = ws.run("plan", now=NOW)

    # The source could not be read this run: no plan is made as if it had
    # been (one without the asset, IMG_0002 alone to archive).
    assert r1.code == 1, r1.out + r1.err
    assert "listing: iCloud is busy or throttling (TRY_AGAIN_LATER)" in r1.out, r1.out
    assert "download icloud:IMG_0002.JPG" not in r1.out, r1.out

    emu.server.clear_faults()
    ws.removal(on=True)
    r2 = ws.run("apply", "--yes", now=NOW)
    assert photo.deleted, r2.out + r2.err
