"""An item the tool off-loaded that its source holds again is counted by
what the source holds now: in iCloud (taken back from Recently Deleted), or
in its folder (the same bytes copied back), never as "removed from their
source", its bytes never as off-loaded. The whole tool, the real pyicloud
and the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from providers.icloud.emulator import Account
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "1.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def _census(ws: Workspace) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ws.run("status", "--json", now=NOW).out)["census"]
    return doc


def test_an_asset_taken_back_from_recently_deleted_is_counted_in_icloud(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    (asset,) = account.deleted_assets()
    size = (tmp_path / "1.jpg").stat().st_size
    # The listing the apply read before it off-loaded the asset still holds
    # it: no sign it came back. Removed, as the apply's census counts it.
    gone = _census(ws)
    assert gone["items"]["removed"] == 1
    assert (gone["bytes"]["icloud"], gone["bytes"]["offloaded"]) == (0, size)
    account.update_asset(asset, {"isDeleted": 0})  # the person takes it back
    again = ws.run("apply", "--yes", now=NOW)
    assert again.code == 0, again.out + again.err
    assert account.deleted_assets() == []  # left alone, by design: it is in iCloud
    back = _census(ws)
    assert back["items"]["removed"] == 0 and back["items"]["archived_2plus"] == 1, back
    assert (back["bytes"]["icloud"], back["bytes"]["offloaded"]) == (size, 0), back


def test_the_same_bytes_back_in_their_folder_are_in_their_source(tmp_path: Path) -> None:
    """A folder path is no identity, bytes are: a photo off-loaded from a
    folder and copied back into it (a phone's upload sending it again) is
    in its source again."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    data = photo.read_bytes()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert not photo.exists()
    assert _census(ws)["items"]["removed"] == 1
    photo.write_bytes(data)
    assert ws.run("plan", now=NOW).code in (0, 2)
    census = _census(ws)
    assert census["items"]["removed"] == 0 and census["items"]["archived_2plus"] == 1, census
    assert census["bytes"]["offloaded"] == 0, census
