"""iCloud: a removal's tombstone hides only the very asset that was deleted.

A new asset that reuses an off-loaded asset's file name (a second iPhone, a
counter reset, an imported file) has other record ids: it is archived, and
off-loaded in its turn, like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def account() -> Account:
    return Account()


def test_a_new_asset_reusing_an_offloaded_name_is_archived(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    first = make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(first, "IMG_0001.JPG", asset_date=OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []  # off-loaded

    # The same name, the same size and date, other bytes: another photo.
    second = bytearray(first)
    second[len(second) // 2] ^= 0x33
    account.add_asset(bytes(second), "IMG_0001.JPG", asset_date=OLD)

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2
    assert "+ download icloud:IMG_0001.JPG: not downloaded yet" in p.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for target in ("nas", "usb"):
        assert sorted(media_under(ws.target(target)).values()) == sorted([first, bytes(second)])
    assert account.live_assets() == []  # the second one was archived, then off-loaded too
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
