"""A Shared Library is listed whole (``include_shared = true``): its hidden
assets are the person's too, archived like the rest, by a full listing and
by a run that reads changes only. The whole tool, the real pyicloud and the
emulator; what every store holds read back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")
SHARED = "SharedSync-6E1C3B2A-0D4F-4E55-9A1B-2C3D4E5F6A7B"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """One personal asset; in the Shared Library one shown, one hidden."""
    account = Account()
    src = tmp_path / "src"
    account.add_asset(
        make_jpeg(src / "1.jpg", OLD, seed=1).read_bytes(), "IMG_0001.JPG", asset_date=OLD
    )
    zone = account.add_shared_library(SHARED)
    for n, hidden in ((3, False), (4, True)):
        account.add_asset(
            make_jpeg(src / f"{n}.jpg", OLD, seed=n).read_bytes(),
            f"IMG_000{n}.JPG",
            asset_date=OLD,
            zone=zone,
            hidden=hidden,
        )
    return account


@pytest.fixture
def shared(ws: Workspace) -> Workspace:
    ws.config.write_text(
        ws.config.read_text().replace("timeout_s = 5\n", "timeout_s = 5\ninclude_shared = true\n")
    )
    return ws


def _held(ws: Workspace, target: str) -> dict[str, bytes]:
    return {Path(k).name: v for k, v in media_under(ws.target(target)).items()}


def _bytes_of(account: Account, name: str) -> bytes:
    for zone in account.zones.values():
        for asset in zone.assets.values():
            if asset.master.filename == name:
                return asset.master.original.data or b""
    raise AssertionError(name)


def test_a_hidden_shared_library_asset_is_archived_before_it_is_removed(
    shared: Workspace, account: Account
) -> None:
    want = {n: _bytes_of(account, n) for n in ("IMG_0001.JPG", "IMG_0003.JPG", "IMG_0004.JPG")}
    r = shared.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for t in TARGETS:
        assert _held(shared, t) == want
    for text in shared.sidecars("IMG_0004.JPG", TARGETS).values():
        assert "<reconcile:Hidden>True</reconcile:Hidden>" in text
    # Archived everywhere, so removed like the rest (the gate as usual).
    assert account.live_assets() == []
    p = shared.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out + p.err
    assert "The library matches" in p.out


def test_an_asset_hidden_in_the_shared_library_is_archived_by_a_run_reading_changes(
    shared: Workspace, account: Account, tmp_path: Path
) -> None:
    shared.removal(on=False)
    assert shared.run("apply", "--yes", now=NOW).code == 0
    # Added to the Shared Library hidden, after the listing was remembered.
    late = make_jpeg(tmp_path / "src" / "5.jpg", OLD, seed=5).read_bytes()
    account.add_asset(late, "IMG_0005.JPG", asset_date=OLD, zone=SHARED, hidden=True)
    p = shared.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out + p.err
    assert "icloud:IMG_0005.JPG" in p.out
    log = (shared.root / "state" / "reconcile.log").read_text()
    assert "icloud: read 2 changed records since the last listing: 1 assets re-read" in log
    r = shared.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for t in TARGETS:
        assert _held(shared, t)["IMG_0005.JPG"] == late
    assert shared.run("plan", "--detailed-exitcode", now=NOW).code == 0
