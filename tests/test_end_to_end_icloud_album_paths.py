"""Albums are kept apart by their records, not their names: an album whose
own name holds a "/" ("Ski 2019/20") is one album in the sidecar, not an
album "20" in a folder "Ski 2019"; and two albums of one name (Photos allows
it) are two albums to a run by changes, so a hidden asset in one keeps it
when the other changes. The whole tool, the real pyicloud and the emulator;
sidecars read back with exiftool."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb", "library")


@pytest.fixture
def account() -> Account:
    return Account()  # each test adds its own assets and albums


def _hierarchy(ws: Workspace, name: str) -> dict[str, list[str]]:
    """``lr:hierarchicalSubject`` of ``name``'s sidecar on every store, read by exiftool."""
    out = {}
    for store in STORES:
        (xmp,) = ws.target(store).rglob(f"{name}.xmp")
        read = subprocess.run(
            ["exiftool", "-j", "-XMP-lr:HierarchicalSubject", str(xmp)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(read.stdout)[0].get("HierarchicalSubject", [])
        out[store] = sorted([found] if isinstance(found, str) else found)
    return out


def _photo(account: Account, tmp_path: Path, seed: int) -> EmulatedAsset:
    data = make_jpeg(tmp_path / f"{seed}.jpg", OLD, seed=seed).read_bytes()
    return account.add_asset(data, f"IMG_000{seed}.JPG", asset_date=OLD)


def test_a_slash_in_an_album_or_folder_name_is_not_a_folder_level(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    shown = _photo(account, tmp_path, 1)
    hidden = _photo(account, tmp_path, 2)
    for asset in (shown, hidden):
        account.add_album("Ski 2019/20", [asset])
        account.add_album("AC|DC live", [asset])
        folder = account.create_album("Trips 2019/20", album_type=3)
        inner = account.create_album("Chile", parent_id=folder.album_id)
        account.add_to_album(inner, asset.asset_id)
    account.update_asset(hidden, {"isHidden": 1})
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    wanted = ["Albums|AC/DC live", "Albums|Ski 2019/20", "Albums|Trips 2019/20|Chile"]
    for name in ("IMG_0001.JPG", "IMG_0002.JPG"):
        assert _hierarchy(ws, name) == dict.fromkeys(STORES, wanted), name
        # The exact names, with a "/" of a name escaped, in our own field.
        for text in ws.sidecars(name, STORES).values():
            assert "<rdf:li>Ski 2019\\/20</rdf:li>" in text
            assert "<rdf:li>Trips 2019\\/20/Chile</rdf:li>" in text
    assert account.deleted_assets(), "the removal re-read the same albums"
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_same_named_album_changing_keeps_a_hidden_assets_album(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    first_photo = _photo(account, tmp_path, 1)
    account.add_album("Trip", [first_photo])
    account.add_album("Trip", [_photo(account, tmp_path, 2)])
    account.update_asset(first_photo, {"isHidden": 1})
    ws.removal(False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    zone = account.zones["PrimarySync"]
    hidden = next(a for a in zone.assets.values() if a.hidden)
    first, second = account.albums_named("Trip")
    assert hidden.asset_id in first.asset_ids
    # The second "Trip" is re-sorted on the phone: its CPLAlbum record changes.
    with account.lock:
        second.sort_type = 1
        second.change_tag = account.next_change_tag()
        account.record_change(zone, second.album_id)
    ws.removal(True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert hidden.deleted
    assert all("Albums|Trip" in t for t in ws.sidecars("IMG_0001.JPG", STORES).values())


def test_a_hidden_asset_moved_between_same_named_albums_is_followed(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    photo = _photo(account, tmp_path, 1)
    account.add_album("Trip", [photo])
    account.add_album("Trip", [_photo(account, tmp_path, 2)])
    account.update_asset(photo, {"isHidden": 1})
    ws.removal(False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    first, second = account.albums_named("Trip")
    asset_id = photo.asset_id
    # Moved from one "Trip" to the other: the name stays, the album does not.
    account.remove_from_album(first, asset_id)
    account.add_to_album(second, asset_id)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert all("Albums|Trip" in t for t in ws.sidecars("IMG_0001.JPG", STORES).values())
    # Then out of the second one too: no "Trip" holds it any more.
    account.remove_from_album(second, asset_id)
    ws.removal(True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    assert not any("Albums|Trip" in t for t in ws.sidecars("IMG_0001.JPG", STORES).values())
