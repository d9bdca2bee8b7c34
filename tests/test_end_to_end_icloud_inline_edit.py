"""An edit whose adjustment data the asset record holds itself.

Photos keeps an edit's recipe (what makes it revertible and re-editable)
either as a resource (``resSidecar``, archived as ``IMG_0001.AAE``) or, for a
small edit (a crop, a rotation, one slider), in the CPLAsset itself:
``adjustmentSimpleDataEnc``, raw-deflated JSON (pyicloud's
``build_xmp_metadata`` reads the orientation out of it). It cannot be
re-derived from the original or the rendered edit: before the asset leaves
iCloud it must be on every target, as an ``.AAE`` file made from the record."""

from __future__ import annotations

import json
import plistlib
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyicloud.common.cloudkit import CKRecord
from pyicloud.services.photos_cloudkit.materialize import build_xmp_metadata

from providers.icloud.emulator import Account, EmulatedAsset, records
from tests.helpers import Workspace, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb")


def _recipe(light: float) -> bytes:
    """A simple edit's recipe as Photos writes it: raw-deflated JSON."""
    recipe = {
        "adjustments": [
            {
                "identifier": "SmartTone",
                "settings": {"inputLight": light},
                "formatVersion": 1,
                "enabled": True,
            }
        ],
        "metadata": {"orientation": 6, "masterWidth": 4032, "masterHeight": 3024},
        "formatIdentifier": "com.apple.photo",
        "formatVersion": 1,
    }
    deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return deflate.compress(json.dumps(recipe).encode()) + deflate.flush()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    photo = account.add_asset(
        make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes(), "IMG_0001.JPG", asset_date=OLD
    )
    rendered = make_jpeg(tmp_path / "e.jpg", OLD, seed=9).read_bytes()
    account.edit_asset(photo, rendered, adjustments=_recipe(0.43), inline=True)
    return account


def _photo(account: Account) -> EmulatedAsset:
    (asset,) = account.zones["PrimarySync"].assets.values()
    return asset


def _archived_recipes(ws: Workspace, store: str) -> list[bytes]:
    """The adjustment data of every ``.AAE`` on the target (an earlier
    version of the edit keeps its own, under a name of its own)."""
    found = []
    for path, data in files_under(ws.target(store)).items():
        if path.endswith(".AAE"):
            envelope = plistlib.loads(data)
            assert envelope["adjustmentFormatIdentifier"] == "com.apple.photo"
            assert envelope["adjustmentEditorBundleID"] == "com.apple.mobileslideshow"
            found.append(envelope["adjustmentData"])
    return found


def test_an_inline_edit_recipe_is_archived_before_the_asset_leaves(
    ws: Workspace, account: Account
) -> None:
    r = ws.run("apply", "--yes", now=NOW)

    assert r.code == 0, r.out + r.err
    assert _photo(account).deleted  # it left iCloud…
    for store in STORES:  # …with its recipe, as Photos' envelope, on every target
        assert _archived_recipes(ws, store) == [_recipe(0.43)], store


def test_a_recipe_changed_since_the_listing_keeps_the_asset_until_archived(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """Edited again (one slider moved) after it was archived: the asset
    stays until the new recipe is on the targets."""
    photo = _photo(account)
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    rendered = make_jpeg(tmp_path / "e2.jpg", OLD, seed=9).read_bytes()  # same render
    account.edit_asset(photo, rendered, adjustments=_recipe(0.91), inline=True)
    ws.removal(on=True)

    for _ in range(2):  # the new recipe archived, then the asset removed
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        if photo.deleted:
            break
    assert photo.deleted
    for store in STORES:
        assert _recipe(0.91) in _archived_recipes(ws, store), store


def test_pyicloud_reads_the_emulated_recipe_as_it_reads_apples(account: Account) -> None:
    """The emulator sends the field as Apple does: pyicloud's own reader
    finds the orientation in it."""
    photo = _photo(account)
    raw = records.asset_record(account.zones[photo.zone], photo, 0)
    xmp = build_xmp_metadata(CKRecord.model_validate(raw))
    assert xmp is not None and xmp.orientation == 6
