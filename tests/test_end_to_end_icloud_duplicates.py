"""Two iCloud assets with one original (the same file imported twice, or a
duplicate re-dated in Photos): each store keeps the original once, and each
item keeps its own sidecar beside it on every store, for ever, also once
either has left iCloud. Read back with exiftool, an outside reader.

(Only iCloud items have sidecars: a folder source's item is its file, so two
items of a folder source never share one.)"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg
from tests.test_end_to_end_icloud_items import _exiftool

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
FIRST = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
SECOND = datetime(2019, 12, 31, 23, 59, tzinfo=UTC)
RECENT = NOW - timedelta(days=5)  # within keep_recent_days: stays in iCloud
STORES = ("library", "nas", "usb")


@pytest.fixture
def photo(tmp_path: Path) -> bytes:
    return make_jpeg(tmp_path / "a.jpg", FIRST, seed=1).read_bytes()


@pytest.fixture
def account(photo: bytes) -> Account:
    account = Account()
    first = account.add_asset(
        photo, "IMG_0001.JPG", asset_date=FIRST, favorite=True, caption="Mine"
    )
    account.add_album("Trip", [first])
    return account


def _assets(account: Account) -> list[EmulatedAsset]:
    return list(account.zones["PrimarySync"].assets.values())


def _sidecars(ws: Workspace, store: str) -> dict[str, tuple[Path, bytes]]:
    """The store's sidecars by the iCloud asset they describe."""
    out: dict[str, tuple[Path, bytes]] = {}
    for path in ws.target(store).rglob("*.xmp"):
        tags = _exiftool(path)
        asset = tags["XMP-reconcile:AssetId"]
        assert asset not in out, f"{store}: two sidecars of {asset}: {out[asset][0]}, {path}"
        out[asset] = (path, path.read_bytes())
    return out


def _check(ws: Workspace, account: Account) -> dict[str, dict[str, tuple[Path, bytes]]]:
    """Every asset's own sidecar, with its own metadata, on every store."""
    found = {}
    for store in STORES:
        held = _sidecars(ws, store)
        names = {asset: path.name for asset, (path, _) in held.items()}
        assert set(held) == {a.asset_id for a in _assets(account)}, (store, names)
        for asset in _assets(account):
            tags = _exiftool(held[asset.asset_id][0])
            assert tags["XMP-xmp:Rating"] == (5 if asset.favorite else 0), (store, tags)
            assert tags.get("XMP-dc:Title") == (asset.caption or None), (store, tags)
            albums = tags.get("XMP-lr:HierarchicalSubject")
            assert albums == ("Albums|Trip" if asset.favorite else None), (store, tags)
            when = datetime.fromtimestamp(asset.asset_date_ms / 1000, UTC)
            assert tags["XMP-xmp:CreateDate"] == f"{when:%Y:%m:%d %H:%M:%S}+00:00"
        found[store] = held
    return found


def _tag(asset: EmulatedAsset) -> str:
    key = f"{asset.asset_id}:{asset.master.master_id}"
    return hashlib.sha256(f"icloud:{key}".encode()).hexdigest()[:8]


@pytest.mark.parametrize("dup", ["imported_twice", "duplicate_redated"])
def test_two_assets_of_one_original_keep_a_sidecar_each_on_every_store(
    ws: Workspace, account: Account, photo: bytes, dup: str
) -> None:
    (first,) = _assets(account)
    if dup == "imported_twice":
        account.add_asset(photo, "IMG_0001.JPG", asset_date=SECOND)
    else:
        twin = account.add_duplicate(first)
        with account.lock:
            twin.asset_date_ms = int(SECOND.timestamp() * 1000)
            twin.favorite, twin.caption = False, None
            account.zones["PrimarySync"].invalidate()
            account.touch(twin)
    ws.removal(on=False)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    before = _check(ws, account)
    for store in STORES:
        # one keeps the plain name, the other has its own, beside the original
        names = {a.asset_id: before[store][a.asset_id][0].name for a in _assets(account)}
        assert "IMG_0001.JPG.xmp" in names.values(), names
        for a in _assets(account):
            assert names[a.asset_id] in ("IMG_0001.JPG.xmp", f"IMG_0001.JPG.{_tag(a)}.xmp")
        assert len({p.parent for p, _ in before[store].values()}) == 1
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0  # no tug of war
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []
    assert len(account.deleted_assets()) == 2
    for _ in range(2):  # later runs replace neither
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
        assert _check(ws, account) == before


def test_a_removed_assets_sidecar_is_never_replaced_by_its_twins(
    ws: Workspace, account: Account, photo: bytes, emu: RunningEmulator
) -> None:
    """The first asset leaves iCloud; the same file imported again later,
    and its metadata changed after that, write its own sidecar beside the
    removed one's, never over it; a lost state DB finds both by content."""
    (first,) = _assets(account)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []
    removed = _check(ws, account)
    for store in STORES:
        assert removed[store][first.asset_id][0].name == "IMG_0001.JPG.xmp"

    again = account.add_asset(photo, "IMG_0001.JPG", asset_date=RECENT, caption="Theirs")
    plan = ws.run("plan", "--detail", now=NOW).out
    assert plan.count("write-sidecar") == 3, plan
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    after = _check(ws, account)
    for store in STORES:
        assert after[store][first.asset_id] == removed[store][first.asset_id]
        path, _ = after[store][again.asset_id]
        assert path.name == f"IMG_0001.JPG.{_tag(again)}.xmp"
        assert path.parent == removed[store][first.asset_id][0].parent  # beside the original
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0

    account.update_asset(again, {"isFavorite": 1})
    account.add_album("Trip", [again])
    plan = ws.run("plan", "--detail", now=NOW).out
    assert plan.count("write-sidecar") == 3, plan
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    rewritten = _check(ws, account)
    for store in STORES:
        assert rewritten[store][first.asset_id] == removed[store][first.asset_id]
        assert rewritten[store][again.asset_id][0] == after[store][again.asset_id][0]
        assert rewritten[store][again.asset_id][1] != after[store][again.asset_id][1]
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0

    for db in (ws.root / "state").glob("*.db*"):
        db.unlink()
    emu.server.inject("download", status=500, times=None)  # nothing may be downloaded
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _check(ws, account) == rewritten
