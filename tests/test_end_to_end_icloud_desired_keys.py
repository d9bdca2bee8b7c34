"""CloudKit sends only the record fields a request names (``desiredKeys``;
none named: every field). pyicloud names its own list on some requests
(``PHOTO_DESIRED_KEYS``: its raw listing, its lookup after an upload), and
that list lacks fields this provider reads: keywords, the description, an
edit's inline recipe. A listing that asked for it would read them as absent
(nothing in the sidecars) while the re-read before a removal, which names no
fields, sees them: every such asset refused at every removal, for good.

The emulator answers ``desiredKeys`` as CloudKit does, so what the tool asks
for is what it gets; the real pyicloud reads it. pyicloud 2026.10.1 names no
fields on the requests the tool makes; the tests also run as it would if its
listing named its own list (``asks``), which ``assets.ask_for_fields_read``
makes name every field the provider reads (``assets.FIELDS_READ``)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyicloud.common.cloudkit import CKQueryObject, CKRecord, CKZoneIDReq
from pyicloud.common.cloudkit.models import CKFields, CKZoneChangesZoneReq, CKZoneID
from pyicloud.services.photos_cloudkit import service as pyicloud_service
from pyicloud.services.photos_cloudkit.client import PhotosCloudKitClient

from providers.icloud.assets import FIELDS_READ
from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from providers.icloud.source import ICloudSource
from reconciler.model import SourceItem
from reconciler.state import StateDB
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
STORES = ("nas", "usb", "library")
#: How pyicloud's listing asks: as 2026.10.1 does (for no fields: every
#: one), or naming its own list, as its raw listing does.
ASKS = ("no fields", "its own list")
#: Fields pyicloud reads of records that are not assets or masters (albums,
#: the indexing state): the only ones a run may read outside ``FIELDS_READ``.
NOT_ASSET_FIELDS = frozenset(
    {"albumNameEnc", "albumType", "parentId", "recordModificationDate", "sortAscending", "state"}
)
PRIMARY = {"zoneName": "PrimarySync"}
#: The queries of pages of assets (an album's, the library's, hidden ones).
ASSET_PAGES = ("CPLAssetAndMaster", "CPLContainerRelationLive")


def _recipe() -> bytes:
    """A small edit's recipe as Photos writes it: raw-deflated JSON."""
    recipe = {
        "adjustments": [{"identifier": "SmartTone", "settings": {"inputLight": 0.3}}],
        "metadata": {"orientation": 1, "masterWidth": 4032, "masterHeight": 3024},
        "formatIdentifier": "com.apple.photo",
        "formatVersion": 1,
    }
    deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return deflate.compress(json.dumps(recipe).encode()) + deflate.flush()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """A photo with everything a person can set on it in Photos, and an
    inline edit; a hidden one in an album, with a resource edit."""
    account = Account()
    src = tmp_path / "src"
    photo = account.add_asset(
        make_jpeg(src / "1.jpg", OLD, seed=1).read_bytes(),
        "IMG_0001.JPG",
        asset_date=OLD,
        favorite=True,
        caption="Sunset",
        description="The last evening at the lake",
        keywords=("lake", "family"),
        location=(46.5197, 6.6323, 372.0),
        time_zone_offset=7200,
    )
    account.edit_asset(
        photo,
        make_jpeg(src / "1e.jpg", OLD, seed=11).read_bytes(),
        adjustments=_recipe(),
        inline=True,
    )
    hidden = account.add_asset(
        make_jpeg(src / "2.jpg", OLD, seed=2).read_bytes(),
        "IMG_0002.JPG",
        asset_date=OLD,
        hidden=True,
        description="Not for the slideshow",
        keywords=("private",),
    )
    account.edit_asset(hidden, make_jpeg(src / "2e.jpg", OLD, seed=12).read_bytes())
    account.add_album("Trip", [photo, hidden])
    return account


@pytest.fixture(params=ASKS)
def asks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How pyicloud's asset pages ask for fields (``ASKS``)."""
    how: str = request.param
    if how == "its own list":
        real = PhotosCloudKitClient.query

        def query(self: PhotosCloudKitClient, *, query: CKQueryObject, **kw: Any) -> Any:
            # The module's list, read at each request as pyicloud reads it.
            if kw.get("desired_keys") is None and query.recordType.startswith(ASSET_PAGES):
                kw["desired_keys"] = pyicloud_service.PHOTO_DESIRED_KEYS
            return real(self, query=query, **kw)

        monkeypatch.setattr(PhotosCloudKitClient, "query", query)
    return how


@pytest.fixture
def session_dir(tmp_path: Path, emu: RunningEmulator) -> Path:
    directory = tmp_path / "icloud-session"
    seed_trusted_session(emu, directory)
    return directory


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(tmp_path / "state.db")
    yield state
    state.close()


def _source(emu: RunningEmulator, session_dir: Path) -> ICloudSource:
    return ICloudSource("icloud", username=emu.username, session_dir=session_dir, endpoint=emu.url)


def _observe(
    emu: RunningEmulator, session_dir: Path, db: StateDB
) -> tuple[dict[str, SourceItem], str]:
    """One run's listing, remembered (a new source each time, as a new process has)."""
    with _source(emu, session_dir) as source:
        source.remember_listing(db, NOW)
        items = {i.key: i for i in source.list_items(None)}  # type: ignore[arg-type]
        return items, source.last_listing


def _gate_passes() -> None:
    """The applier's removal gate, passing: these tests are the source's."""


def _asset(account: Account, name: str) -> EmulatedAsset:
    zone = account.zones["PrimarySync"]
    return next(a for a in zone.assets.values() if a.master.filename == name)


def _key(asset: EmulatedAsset) -> str:
    return f"{asset.asset_id}:{asset.master_id}"


def _check_everything_read(items: dict[str, SourceItem], account: Account) -> None:
    photo = items[_key(_asset(account, "IMG_0001.JPG"))]
    meta = photo.metadata
    assert meta is not None
    assert (meta.title, meta.description, meta.keywords) == (
        "Sunset",
        "The last evening at the lake",
        ("lake", "family"),
    )
    assert (meta.favorite, meta.hidden, meta.utc_offset) == (True, False, 7200)
    assert (meta.latitude, meta.longitude, meta.altitude) == (46.5197, 6.6323, 372.0)
    assert meta.albums == ("Trip",)
    assert [(f.name, f.ref) for f in photo.files] == [
        ("IMG_0001.JPG", "original"),
        ("IMG_0001-edited.JPG", "edited"),
        ("IMG_0001.AAE", "adjustments"),  # the inline recipe
    ]
    hidden = items[_key(_asset(account, "IMG_0002.JPG"))]
    assert hidden.metadata is not None
    assert (hidden.metadata.hidden, hidden.metadata.keywords) == (True, ("private",))
    assert hidden.metadata.description == "Not for the slideshow"
    assert [f.ref for f in hidden.files] == ["original", "edited", "sidecar"]


def test_the_listing_a_run_by_changes_and_the_re_read_see_every_field(
    account: Account, emu: RunningEmulator, session_dir: Path, db: StateDB, asks: str
) -> None:
    full, how = _observe(emu, session_dir, db)
    assert how == "full"
    _check_everything_read(full, account)
    # Both re-read by the change feed (a new change tag each).
    for name in ("IMG_0001.JPG", "IMG_0002.JPG"):
        account.touch(_asset(account, name))
    changed, how = _observe(emu, session_dir, db)
    assert how == "changes"
    _check_everything_read(changed, account)
    for key, item in changed.items():
        assert (item.files, item.metadata) == (full[key].files, full[key].metadata), key
    # The re-read before a removal finds what the listing saw: removed.
    with _source(emu, session_dir) as source:
        for item in full.values():
            source.remove(item, _gate_passes)
    assert account.live_assets() == []


def test_items_leave_with_their_keywords_description_and_recipe_archived(
    ws: Workspace, account: Account, asks: str
) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "metadata changed" not in r.out, r.out
    assert account.live_assets() == []
    for name, wanted in (
        ("IMG_0001.JPG", ("lake", "family", "The last evening at the lake", "Sunset")),
        ("IMG_0002.JPG", ("private", "Not for the slideshow")),
    ):
        for store, text in ws.sidecars(name, STORES).items():
            assert all(w in text for w in wanted), (store, name, text)
    for store in STORES:
        assert len(list(ws.target(store).rglob("IMG_0001.AAE"))) == 1, store
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_every_field_a_run_reads_is_one_the_tool_asks_for(
    account: Account,
    emu: RunningEmulator,
    session_dir: Path,
    db: StateDB,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every record field read in a whole run (a listing, a run by changes,
    every file fetched, the re-read and removal), by the provider or by
    pyicloud for it, is in ``FIELDS_READ``: a field read but not listed
    fails here, before it can go missing from a listing."""
    read: set[str] = set()
    real_get = CKFields.get

    def get(self: CKFields, key: str, default: Any = None) -> Any:
        read.add(key)
        return real_get(self, key, default)

    monkeypatch.setattr(CKFields, "get", get)
    full, _ = _observe(emu, session_dir, db)
    account.touch(_asset(account, "IMG_0001.JPG"))
    _observe(emu, session_dir, db)
    with _source(emu, session_dir) as source:
        for item in full.values():
            for file in item.files:
                source.fetch(item, file, tmp_path / file.name)
            source.remove(item, _gate_passes)
    assert account.live_assets() == []
    assert {"keywordsEnc", "adjustmentSimpleDataEnc", "masterRef"} <= read  # it watched
    assert read - set(FIELDS_READ) <= NOT_ASSET_FIELDS


def test_every_request_asks_for_every_field_read_or_for_all(
    account: Account, emu: RunningEmulator, session_dir: Path, db: StateDB, asks: str
) -> None:
    _observe(emu, session_dir, db)
    account.touch(_asset(account, "IMG_0001.JPG"))
    items, _ = _observe(emu, session_dir, db)
    with _source(emu, session_dir) as source:
        for item in items.values():
            source.remove(item, _gate_passes)
    seen = emu.server.desired_keys
    assert {route for route, _ in seen} >= {"query", "lookup", "changes", "modify"}
    short = [(route, sorted(set(FIELDS_READ) - set(keys))) for route, keys in seen if keys]
    assert all(not missing for _, missing in short), short
    # pyicloud 2026.10.1 itself names none (every field comes): should a new
    # one name some, this says so, and the checks above keep holding.
    assert (asks == "its own list") == any(keys for _, keys in seen)


@pytest.mark.parametrize("route", ["query", "lookup", "changes"])
def test_the_emulator_answers_the_fields_asked_for_as_cloudkit_does(
    account: Account, emu: RunningEmulator, session_dir: Path, route: str
) -> None:
    photo = _asset(account, "IMG_0001.JPG")
    with _source(emu, session_dir) as source:
        client = source._service().private_client

        def records(keys: list[str] | None) -> dict[str, CKRecord]:
            if route == "lookup":
                got = client.lookup(
                    record_names=[photo.asset_id, photo.master_id],
                    zone_id=CKZoneIDReq(**PRIMARY),
                    desired_keys=keys,
                ).records
            elif route == "query":
                query = CKQueryObject(
                    recordType="CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted"
                )
                got = client.query(
                    query=query, zone_id=CKZoneIDReq(**PRIMARY), desired_keys=keys
                ).records
            else:
                req = CKZoneChangesZoneReq(zoneID=CKZoneID(**PRIMARY), desiredKeys=keys)
                got = [r for zone in client.iter_changes(zone_req=req) for r in zone.records]
            return {r.recordName: r for r in got if isinstance(r, CKRecord)}

        every = records(None)[photo.asset_id]
        assert {"keywordsEnc", "extendedDescEnc", "adjustmentSimpleDataEnc"} <= set(every.fields)
        some = records(["isFavorite", "keywordsEnc", "recordName"])
        asked = some[photo.asset_id]
        assert set(asked.fields) == {"isFavorite", "keywordsEnc"}
        # The envelope whole: name, type, change tag, zone.
        assert (asked.recordType, asked.recordChangeTag) == ("CPLAsset", photo.change_tag)
        assert asked.zoneID is not None and asked.zoneID.zoneName == "PrimarySync"
        master = some[photo.master_id]
        assert set(master.fields) == set()  # a master has neither field
        assert set(records([])[photo.asset_id].fields) == set()  # system fields only
