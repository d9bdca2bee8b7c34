"""An asset the tool off-loaded and the person took back from Recently
Deleted. Its tombstone hides only the very content removed with it: a new
edit, new adjustment data or new metadata (favourite) made after the
restore is archived; the same asset unchanged is left alone. The whole
tool, the real pyicloud and the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from reconciler.render import NO_CHANGES
from tests.helpers import Workspace, files_under, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def _offloaded_then_restored(ws: Workspace, account: Account) -> EmulatedAsset:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    (asset,) = account.deleted_assets()
    account.update_asset(asset, {"isDeleted": 0})
    return asset


def _sidecars(ws: Workspace, store: str) -> list[bytes]:
    return [v for k, v in files_under(ws.target(store)).items() if k.endswith(".xmp")]


def test_an_edit_made_after_a_restore_is_archived(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    asset = _offloaded_then_restored(ws, account)
    edit = make_jpeg(tmp_path / "e.jpg", OLD, seed=7, size=80).read_bytes()
    aae = b"<plist>made after the restore</plist>"
    account.edit_asset(asset, edit, adjustments=aae)
    account.update_asset(asset, {"isFavorite": 1})
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in TARGETS:
        held = set(media_under(ws.target(store)).values())
        assert edit in held, (store, r.out)
        assert aae in held, (store, r.out)
        (xmp,) = _sidecars(ws, store)
        assert b"<xmp:Rating>5</xmp:Rating>" in xmp, (store, xmp)
    # Archived whole, it is an old item like any other: it leaves again, and
    # the next run has nothing to do.
    assert account.deleted_assets() == [asset]
    assert ws.run("plan", now=NOW).out == NO_CHANGES + "\n"


def test_a_favourite_made_after_a_restore_reaches_the_sidecars(
    ws: Workspace, account: Account
) -> None:
    asset = _offloaded_then_restored(ws, account)
    for store in TARGETS:
        (xmp,) = _sidecars(ws, store)
        assert b"<xmp:Rating>0</xmp:Rating>" in xmp
    account.update_asset(asset, {"isFavorite": 1})
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in TARGETS:
        (xmp,) = _sidecars(ws, store)
        assert b"<xmp:Rating>5</xmp:Rating>" in xmp, (store, r.out)


def test_a_restored_asset_left_unchanged_is_left_alone(ws: Workspace, account: Account) -> None:
    _offloaded_then_restored(ws, account)
    before = {store: files_under(ws.target(store)) for store in TARGETS}
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert r.out == NO_CHANGES + "\n"
    assert account.deleted_assets() == []  # the person's restore stands
    assert {store: files_under(ws.target(store)) for store in TARGETS} == before
