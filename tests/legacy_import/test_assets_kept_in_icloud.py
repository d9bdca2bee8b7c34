"""An asset that is not removed (removal disabled, or younger than
keep_recent_days) still has its own bytes archived, whatever the seed's
file of its name and size holds. Found by a bug hunt: when the seed's word
was taken as a claim checked only at removal, the archive held the seed's
file (another photo) and plan said the library matched."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg
from tests.legacy_import.common import NOW, OLD, _archived, _seed_one, flipped

RECENT = NOW - timedelta(days=5)


def _stores(ws: Workspace, data: bytes) -> list[str]:
    return sorted({p.split("/")[0] for p in _archived(ws, data)})


def _named(account: Account, name: str):
    (asset,) = [a for a in account.live_assets() if a.master.filename == name]
    return asset


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    for n, when in ((1, OLD), (2, RECENT)):
        photo = make_jpeg(tmp_path / "src" / f"IMG_000{n}.JPG", when, seed=n)
        account.add_asset(photo.read_bytes(), photo.name, asset_date=when)
    return account


def test_with_removal_off_an_assets_own_bytes_are_archived_not_the_seeds_other_photo(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    first = _named(account, "IMG_0001.JPG")
    data = first.master.original.data or b""
    ws.removal(on=False)
    _seed_one(ws, account, tmp_path, flipped(data), first)
    for _ in range(3):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    # Converged, says the tool...
    assert "No changes" in ws.run("plan", now=NOW).out
    # ...so the asset's own original must be on both backup targets.
    assert _stores(ws, data) == ["library", "nas", "usb"]


def test_a_recent_asset_kept_in_icloud_has_its_own_bytes_archived(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    # keep_recent_days: the second asset (5 days old) stays in iCloud; the
    # seed's file of its name and size is another photo.
    second = _named(account, "IMG_0002.JPG")
    data = second.master.original.data or b""
    _seed_one(ws, account, tmp_path, flipped(data), second)
    for _ in range(3):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    assert second.asset_id in [a.asset_id for a in account.live_assets()]
    assert _stores(ws, data) == ["library", "nas", "usb"]
