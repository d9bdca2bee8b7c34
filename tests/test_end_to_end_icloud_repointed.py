"""An asset whose ``masterRef`` points at another original since the listing
is never removed: ``remove`` re-reads the asset and pairs it with the master
its record names now, not the one in the item's key, so "the asset now
points at another original" is seen, whether the old master still exists
(a duplicate keeps it) or is gone with the change."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from tests.helpers import Workspace, during_icloud_removal, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["duplicate keeps the old master", "old master gone"])
def account(request: pytest.FixtureRequest, tmp_path: Path) -> Account:
    account = Account()
    photo = account.add_asset(
        make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes(), "IMG_0001.JPG", asset_date=OLD
    )
    if request.param == "duplicate keeps the old master":
        account.add_duplicate(photo)
    return account


def _first(account: Account) -> EmulatedAsset:
    assets = account.zones["PrimarySync"].assets.values()
    return min(assets, key=lambda a: a.added_date_ms)


def test_an_asset_pointing_at_another_original_since_the_listing_is_not_removed(
    ws: Workspace, account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    photo = _first(account)
    new_bytes = make_jpeg(tmp_path / "b.jpg", OLD, seed=7).read_bytes()
    during_icloud_removal(monkeypatch, lambda: account.repoint(photo, new_bytes))

    r = ws.run("apply", "--yes", now=NOW)

    assert not photo.deleted, r.out + r.err
    assert "points at another original; not removed" in r.out + r.err
    new_sha = hashlib.sha256(new_bytes).hexdigest()
    for store in ("nas", "usb"):
        shas = {hashlib.sha256(d).hexdigest() for d in media_under(ws.target(store)).values()}
        assert new_sha not in shas  # never archived: it had to stay


def test_a_repointed_asset_is_archived_afresh_then_leaves(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """The next runs list the asset with its new original, archive it and
    remove it: the refusal costs a run, nothing more."""
    photo = _first(account)
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    new_bytes = make_jpeg(tmp_path / "b.jpg", OLD, seed=7).read_bytes()
    account.repoint(photo, new_bytes)
    ws.removal(on=True)

    r = ws.run("apply", "--yes", now=NOW)

    assert r.code == 0, r.out + r.err
    assert photo.deleted
    new_sha = hashlib.sha256(new_bytes).hexdigest()
    for store in ("nas", "usb"):
        shas = {hashlib.sha256(d).hexdigest() for d in media_under(ws.target(store)).values()}
        assert new_sha in shas, store
