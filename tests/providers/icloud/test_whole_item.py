"""Everything iCloud holds about an asset, read through the real pyicloud from
the emulator: edits, RAW+JPEG alternatives, the edit's adjustment data,
favourite, hidden, albums, caption, description, keywords and location."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.icloud.source import ICloudSource
from reconciler.errors import ProviderError
from reconciler.model import SourceItem

OLD = datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture
def account() -> Account:
    account = Account()
    photo = account.add_asset(
        b"\xff\xd8original" * 500,
        "IMG_0001.JPG",
        asset_date=OLD,
        favorite=True,
        caption="Beach at dawn",
        description="The first morning of the trip",
        keywords=("sea", "family"),
        location=(48.8584, 2.2945, 35.0),
    )
    account.edit_asset(photo, b"\xff\xd8rendered-edit" * 400)
    raw = account.add_asset(
        b"\xff\xd8jpeg-half" * 300,
        "IMG_0002.JPG",
        asset_date=datetime(2021, 1, 1, tzinfo=UTC),
        alternative=b"DNG raw half" * 900,
    )
    movie = account.add_asset(
        b"\x00\x00\x00\x18ftypqt" * 300, "IMG_0003.MOV", asset_date=datetime(2022, 1, 1, tzinfo=UTC)
    )
    account.edit_asset(movie, b"\x00\x00\x00\x18ftypqt-trimmed" * 200, adjustment_type="trim")
    account.add_asset(
        b"hidden bytes" * 100,
        "IMG_0004.JPG",
        asset_date=datetime(2023, 1, 1, tzinfo=UTC),
        hidden=True,
    )
    account.add_album("Trip 2023", [photo, raw])
    account.add_album("Best", [photo])
    return account


@pytest.fixture
def emulator(account: Account) -> Iterator[RunningEmulator]:
    with running_emulator(account) as emu:
        yield emu


@pytest.fixture
def source(emulator: RunningEmulator, tmp_path: Path) -> Iterator[ICloudSource]:
    seed_trusted_session(emulator, tmp_path / "session")
    with ICloudSource(
        "icloud",
        username=emulator.username,
        session_dir=tmp_path / "session",
        endpoint=emulator.url,
        timeouts=(2.0, 2.0),
    ) as src:
        yield src


def _by_name(items: list[SourceItem]) -> dict[str, SourceItem]:
    return {i.files[0].name: i for i in items}


class _NoHasher:
    def hash_entries(
        self, entries: object, *, dates: bool = False, tree: str | None = None
    ) -> list[object]:
        raise AssertionError("a remote source hashes nothing")


def test_every_resource_is_a_file_and_rank_0_is_the_newest(
    source: ICloudSource, account: Account, tmp_path: Path
) -> None:
    items = list(source.list_items(_NoHasher()))  # type: ignore[arg-type]
    # Hidden assets are listed too (from the Hidden album).
    assert sorted(i.files[0].name for i in items) == [
        "IMG_0001.JPG",
        "IMG_0002.JPG",
        "IMG_0003.MOV",
        "IMG_0004.JPG",
    ]
    # As on iCloud, rank 0 of the library's index is the newest photo.
    assert source._service().all.photo(0).filename == "IMG_0003.MOV"
    by = _by_name(items)
    assert [(f.name, f.role) for f in by["IMG_0001.JPG"].files] == [
        ("IMG_0001.JPG", "original"),
        ("IMG_0001-edited.JPG", "edited"),
        ("IMG_0001.AAE", "edit_sidecar"),
    ]
    assert [(f.name, f.role) for f in by["IMG_0002.JPG"].files] == [
        ("IMG_0002.JPG", "original"),
        ("IMG_0002.DNG", "alternative"),
    ]
    assert [(f.name, f.role) for f in by["IMG_0003.MOV"].files] == [
        ("IMG_0003.MOV", "original"),
        ("IMG_0003-edited.MOV", "edited"),
        ("IMG_0003.AAE", "edit_sidecar"),
    ]
    # Every file downloads as the bytes iCloud holds.
    photo = next(a for a in account.live_assets() if a.master.filename == "IMG_0001.JPG")
    assert photo.edit is not None and photo.master.sidecar is not None
    want = {
        "original": photo.master.original.data,
        "edited": photo.edit.data,
        "sidecar": photo.master.sidecar.data,
    }
    item = by["IMG_0001.JPG"]
    for f in item.files:
        dest = tmp_path / f.ref
        assert source.fetch(item, f, dest) == hashlib.sha256(want[f.ref] or b"").hexdigest()
        assert dest.read_bytes() == want[f.ref]


def test_what_the_person_set_in_photos_is_read(source: ICloudSource) -> None:
    by = _by_name(list(source.list_items(_NoHasher())))  # type: ignore[arg-type]
    meta = by["IMG_0001.JPG"].metadata
    assert meta is not None
    assert meta.title == "Beach at dawn"
    assert meta.description == "The first morning of the trip"
    assert meta.keywords == ("sea", "family")
    assert meta.albums == ("Best", "Trip 2023")
    assert meta.favorite and not meta.hidden
    assert (meta.latitude, meta.longitude, meta.altitude) == (48.8584, 2.2945, 35.0)
    asset_id, master_id = by["IMG_0001.JPG"].key.split(":")
    assert meta.record_ids == (("AssetId", asset_id), ("MasterId", master_id))
    hidden = by["IMG_0004.JPG"].metadata
    assert hidden is not None and hidden.hidden and not hidden.favorite
    assert by["IMG_0002.JPG"].metadata is not None
    assert by["IMG_0002.JPG"].metadata.albums == ("Trip 2023",)


def test_an_edit_made_after_listing_stops_the_removal(
    source: ICloudSource, account: Account
) -> None:
    by = _by_name(list(source.list_items(_NoHasher())))  # type: ignore[arg-type]
    raw = next(a for a in account.live_assets() if a.master.filename == "IMG_0002.JPG")
    account.edit_asset(raw, b"\xff\xd8late edit" * 100)
    with pytest.raises(ProviderError, match="changed since it was archived"):
        source.remove(by["IMG_0002.JPG"], lambda: None)
    assert not raw.deleted


def test_a_favourite_set_after_listing_stops_the_removal(
    source: ICloudSource, account: Account
) -> None:
    by = _by_name(list(source.list_items(_NoHasher())))  # type: ignore[arg-type]
    raw = next(a for a in account.live_assets() if a.master.filename == "IMG_0002.JPG")
    account.update_asset(raw, {"isFavorite": 1})
    with pytest.raises(ProviderError, match="metadata changed"):
        source.remove(by["IMG_0002.JPG"], lambda: None)
    assert not raw.deleted


@pytest.mark.parametrize(
    ("filename", "uti", "alternative_uti", "names"),
    [
        # A RAW type pyicloud's table lacks: named for it, not the JPEG.
        ("SAM_0001.JPG", None, "com.samsung.raw-image", ("SAM_0001.JPG", "SAM_0001.SRW")),
        # One its table gets wrong (".NRF"), as the alternative and as the original.
        ("DSC_0001.JPG", None, "com.nikon.nrw-raw-image", ("DSC_0001.JPG", "DSC_0001.NRW")),
        (
            "DSC_0002.NRW",
            "com.nikon.nrw-raw-image",
            "public.jpeg",
            ("DSC_0002.NRW", "DSC_0002.JPG"),
        ),
        # A type no table knows: an extension made from the type's name.
        ("X_0001.JPG", None, "com.example.xyz-raw-image", ("X_0001.JPG", "X_0001.XYZ")),
        ("X_0002.JPG", None, "com.example.raw-image", ("X_0002.JPG", "X_0002.RAW")),
        ("X_0003.JPG", None, "public.jpeg", ("X_0003.JPG", "X_0003-alternative.JPG")),
    ],
)
def test_each_file_is_named_for_its_own_type(
    tmp_path: Path, filename: str, uti: str | None, alternative_uti: str, names: tuple[str, str]
) -> None:
    account = Account()
    account.add_asset(
        b"\xff\xd8one half" * 100,
        filename,
        asset_date=OLD,
        uti=uti,
        alternative=b"II*\x00the other half" * 100,
        alternative_uti=alternative_uti,
    )
    with running_emulator(account) as emu:
        seed_trusted_session(emu, tmp_path / "session")
        with ICloudSource(
            "icloud", username=emu.username, session_dir=tmp_path / "session", endpoint=emu.url
        ) as source:
            (item,) = source.list_items(_NoHasher())  # type: ignore[arg-type]
    assert tuple(f.name for f in item.files) == names
