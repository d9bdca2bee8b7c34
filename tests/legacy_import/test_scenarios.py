"""Scenarios around import-legacy's seed files (two rows naming one file,
a removal budget, duplicates sharing an original, a seed copy on a target
only): each ends with every asset's own bytes archived on both targets
before it leaves iCloud, and converges."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, make_jpeg
from tests.legacy_import.common import NOW, OLD, _archived, flipped, seed_media_db


def _row(asset, name: str, local: Path | None, size: int) -> dict[str, object]:
    return {
        "filename": name,
        "icloud_id": asset.master_id,  # pyicloud's id: the master record name
        "local_path": str(local) if local else None,
        "status": "synced",
        "initial_size": size,
        "current_size": size,
    }


def _converge(ws: Workspace, runs: int = 4) -> list[tuple[int, str]]:
    out = []
    for _ in range(runs):
        r = ws.run("apply", "--yes", now=NOW)
        out.append((r.code, r.out + r.err))
    return out


def _stores(ws: Workspace, data: bytes) -> list[str]:
    return sorted({p.split("/")[0] for p in _archived(ws, data)})


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """Two assets named IMG_0001.JPG of one size (a camera counter reset)."""
    account = Account()
    photo = make_jpeg(tmp_path / "src" / "IMG_0001.JPG", OLD, seed=1).read_bytes()
    account.add_asset(photo, "IMG_0001.JPG", asset_date=OLD)
    account.add_asset(flipped(photo), "IMG_0001.JPG", asset_date=OLD)
    return account


def test_two_rows_pointing_at_one_file_one_right_one_wrong(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    a, b = account.live_assets()
    da, db_ = a.master.original.data or b"", b.master.original.data or b""
    local = ws.library / "Photos" / "IMG_0001.JPG"
    local.parent.mkdir(parents=True)
    local.write_bytes(da)
    media = seed_media_db(
        tmp_path / "media.db",
        [_row(a, "IMG_0001.JPG", local, len(da)), _row(b, "IMG_0001.JPG", local, len(db_))],
    )
    assert ws.run("import-legacy", str(media)).code == 0
    runs = _converge(ws)
    assert runs[-1][0] == 0, runs
    assert account.live_assets() == [], runs
    assert _stores(ws, da) == ["library", "nas", "usb"]
    assert _stores(ws, db_) == ["library", "nas", "usb"]


def test_two_rows_pointing_at_one_file_budget_one_per_run(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    ws.config.write_text(
        ws.config.read_text().replace("pace_seconds = 0", "pace_seconds = 0\nmax_items_per_run = 1")
    )
    a, b = account.live_assets()
    da, db_ = a.master.original.data or b"", b.master.original.data or b""
    local = ws.library / "Photos" / "IMG_0001.JPG"
    local.parent.mkdir(parents=True)
    local.write_bytes(db_)  # the seed's file is the second one's
    media = seed_media_db(
        tmp_path / "media.db",
        [_row(a, "IMG_0001.JPG", local, len(da)), _row(b, "IMG_0001.JPG", local, len(db_))],
    )
    assert ws.run("import-legacy", str(media)).code == 0
    runs = _converge(ws, 6)
    assert runs[-1][0] == 0, runs
    assert account.live_assets() == [], runs
    assert _stores(ws, da) == ["library", "nas", "usb"]
    assert _stores(ws, db_) == ["library", "nas", "usb"]


def test_a_duplicate_sharing_the_master_with_a_seed_file_of_other_bytes(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    a, b = account.live_assets()
    account.delete(b)
    account.expunge(b)
    account.add_duplicate(a)
    da = a.master.original.data or b""
    local = ws.library / "Photos" / "IMG_0001.JPG"
    local.parent.mkdir(parents=True)
    local.write_bytes(flipped(da, 0x33))
    media = seed_media_db(tmp_path / "media.db", [_row(a, "IMG_0001.JPG", local, len(da))])
    assert ws.run("import-legacy", str(media)).code == 0
    runs = _converge(ws)
    assert runs[-1][0] == 0, runs
    assert account.live_assets() == [], runs
    assert _stores(ws, da) == ["library", "nas", "usb"]


def test_a_seed_copy_of_other_bytes_only_on_a_target(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    a, _ = account.live_assets()
    da = a.master.original.data or b""
    nas = ws.target("nas") / "backup" / "IMG_0001.JPG"
    nas.parent.mkdir(parents=True)
    nas.write_bytes(flipped(da, 0x21))
    media = seed_media_db(tmp_path / "media.db", [_row(a, "IMG_0001.JPG", nas, len(da))])
    assert ws.run("import-legacy", str(media)).code == 0
    runs = _converge(ws)
    assert runs[-1][0] == 0, runs
    assert account.live_assets() == [], runs
    assert _stores(ws, da) == ["library", "nas", "usb"]
    # the seed's photo is kept where it was
    assert nas.read_bytes() == flipped(da, 0x21)
