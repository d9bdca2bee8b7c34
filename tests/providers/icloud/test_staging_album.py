"""The staging album ("DeletePending"): pyicloud's album writes against the
emulator, and ICloudSource adding each asset to the album before it deletes it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pyicloud import PyiCloudService

from providers.icloud.emulator import Account
from providers.icloud.emulator.store import EmulatedAlbum, relation_name
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.icloud.source import ICloudSource
from providers.icloud.transport import mount
from reconciler.errors import ConfigError, ProviderError
from reconciler.model import SourceItem
from tests.providers.icloud.conftest import Library

STAGING = "DeletePending"


@contextmanager
def client(emu: RunningEmulator, directory: Path) -> Iterator[Any]:
    """The real pyicloud client, signed in with the seeded trusted session."""
    api = PyiCloudService(emu.username, None, cookie_directory=str(directory), authenticate=False)
    mount(api.session, endpoint=emu.url, timeout=(5.0, 5.0))
    try:
        api.authenticate()
        yield api
    finally:
        api.session.close()


@contextmanager
def staged_source(
    emu: RunningEmulator, session_dir: Path, *, include_shared: bool = False
) -> Iterator[ICloudSource]:
    with ICloudSource(
        "icloud",
        username=emu.username,
        session_dir=session_dir,
        endpoint=emu.url,
        timeouts=(2.0, 2.0),
        include_shared=include_shared,
        staging_album=STAGING,
    ) as src:
        yield src


@pytest.fixture
def staged(emulator: RunningEmulator, session_dir: Path) -> Iterator[ICloudSource]:
    with staged_source(emulator, session_dir) as src:
        yield src


class NoHasher:
    def hash_entries(
        self, entries: object, *, dates: bool = False, tree: str | None = None
    ) -> list[Any]:
        raise AssertionError("the iCloud source must not hash")


def _gate_passes() -> None:
    """The removal gate, passing: these tests are the source's own."""


def items(source: ICloudSource) -> dict[str, SourceItem]:
    """Items by asset id."""
    return {item.key.split(":")[0]: item for item in source.list_items(NoHasher())}


def only_album(account: Account) -> EmulatedAlbum:
    albums = account.albums_named(STAGING)
    assert len(albums) == 1, albums
    return albums[0]


# ------------------------------------------------------------ pyicloud itself


def test_pyicloud_creates_an_album_and_adds_a_photo(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    jpeg_id = library.jpeg.asset_id
    with client(emulator, session_dir) as api:
        photos = api.photos
        cursor = photos.sync_cursor()
        album = photos.create_album("Pending ✓")
        assert album is not None and album.name == "Pending ✓"
        photo = next(p for p in photos.all if p.id == jpeg_id)
        assert album.add_photo(photo) is True
        # A second create of the same relation is refused as CloudKit does
        # (EXISTS), and changes nothing.
        with pytest.raises(Exception, match="EXISTS"):
            album.add_photo(photo)
        changed = {event.record_name for event in photos.iter_changes(since=cursor)}
    assert changed == {album.id, relation_name(jpeg_id, album.id)}
    stored = emulator.account.albums_named("Pending ✓")
    assert [(a.album_id, a.asset_ids) for a in stored] == [(album.id, [jpeg_id])]
    # A new client sees the album, with the photo in it.
    with client(emulator, session_dir) as api:
        listed = api.photos.albums["Pending ✓"]
        assert type(listed).__name__ == "PhotoAlbum"
        assert listed.id == album.id
        assert [p.id for p in listed] == [jpeg_id]
        assert len(listed) == 1


def test_relation_to_an_unknown_asset_is_refused(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    with client(emulator, session_dir) as api:
        photos = api.photos
        album = photos.create_album("Empty")
        photo = next(p for p in photos.all if p.id == library.video.asset_id)
        emulator.account.zones["PrimarySync"].assets.pop(library.video.asset_id)
        with pytest.raises(Exception, match="BAD_REQUEST"):
            album.add_photo(photo)
    assert emulator.account.albums_named("Empty")[0].asset_ids == []


# ------------------------------------------------------------ ICloudSource


def test_remove_stages_the_asset_then_soft_deletes_it(
    emulator: RunningEmulator, staged: ICloudSource, library: Library
) -> None:
    asset = library.live
    staged.remove(items(staged)[asset.asset_id], _gate_passes)
    assert asset.deleted
    assert emulator.account.deleted_assets() == [asset]
    album = only_album(emulator.account)
    assert album.asset_ids == [asset.asset_id]
    assert (
        relation_name(asset.asset_id, album.album_id)
        in emulator.account.zones["PrimarySync"].relations
    )


def test_album_is_created_once_across_two_removals(
    emulator: RunningEmulator, staged: ICloudSource, library: Library
) -> None:
    listed = items(staged)
    staged.remove(listed[library.twin_a.asset_id], _gate_passes)
    queries = emulator.server.hits["query"]
    staged.remove(listed[library.twin_b.asset_id], _gate_passes)
    # The album is remembered for the run: the two queries are the album
    # list, read afresh by every removal to compare the asset's albums now:
    # before the removal gate, and again after it (a membership is no field
    # of the asset's record, so its change tag does not guard it).
    assert emulator.server.hits["query"] == queries + 2
    # One album create, then a relation create and a delete per asset.
    assert emulator.server.hits["modify"] == 5
    album = only_album(emulator.account)
    assert album.asset_ids == [library.twin_a.asset_id, library.twin_b.asset_id]
    assert {a.asset_id for a in emulator.account.deleted_assets()} == set(album.asset_ids)


def test_an_existing_album_is_reused_and_smart_albums_are_not(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    existing = emulator.account.add_album(STAGING, [library.video])
    with ICloudSource(
        "icloud",
        username=emulator.username,
        session_dir=session_dir,
        endpoint=emulator.url,
        staging_album="Favorites",
    ) as favorites:
        favorites.remove(items(favorites)[library.jpeg.asset_id], _gate_passes)
    # "Favorites" is a smart album, never a staging album: a user album of
    # that name was made for it.
    assert [a.asset_ids for a in emulator.account.albums_named("Favorites")] == [
        [library.jpeg.asset_id]
    ]
    with staged_source(emulator, session_dir) as source:
        source.remove(items(source)[library.undated.asset_id], _gate_passes)
    assert only_album(emulator.account) is existing
    assert existing.asset_ids == [library.video.asset_id, library.undated.asset_id]
    assert library.undated.deleted


def test_an_asset_already_in_the_album_is_still_removed(
    emulator: RunningEmulator, staged: ICloudSource, library: Library
) -> None:
    # Added by an earlier run whose delete did not happen: the relation exists.
    album = emulator.account.add_album(STAGING, [library.jpeg])
    staged.remove(items(staged)[library.jpeg.asset_id], _gate_passes)
    assert library.jpeg.deleted
    assert only_album(emulator.account) is album
    assert album.asset_ids == [library.jpeg.asset_id]


@pytest.mark.parametrize("album_exists", [False, True], ids=["creating", "adding"])
def test_failed_album_step_deletes_nothing(
    emulator: RunningEmulator, staged: ICloudSource, library: Library, album_exists: bool
) -> None:
    if album_exists:
        emulator.account.add_album(STAGING, [])
    item = items(staged)[library.jpeg.asset_id]
    # The next modify is the album create, or (album found) the relation create.
    emulator.server.inject("modify", status=503, times=1)
    with pytest.raises(ProviderError, match="not removed") as caught:
        staged.remove(item, _gate_passes)
    assert caught.value.transient
    assert item.key in str(caught.value)
    assert not library.jpeg.deleted
    assert emulator.account.deleted_assets() == []
    assert [a.asset_ids for a in emulator.account.albums_named(STAGING)] == (
        [[]] if album_exists else []
    )
    # The next attempt goes through.
    staged.remove(item, _gate_passes)
    assert library.jpeg.deleted
    assert only_album(emulator.account).asset_ids == [library.jpeg.asset_id]


def test_album_created_despite_a_lost_answer_is_found_not_duplicated(
    emulator: RunningEmulator, staged: ICloudSource, library: Library
) -> None:
    item = items(staged)[library.jpeg.asset_id]
    # The album is created, but the client hears a 503.
    emulator.server.inject("modify", status=503, applied=True, times=1)
    with pytest.raises(ProviderError, match="creating the album") as caught:
        staged.remove(item, _gate_passes)
    assert caught.value.transient
    assert not library.jpeg.deleted
    created = only_album(emulator.account)
    assert created.asset_ids == []
    # The retry lists albums afresh and finds it: no second "DeletePending".
    staged.remove(item, _gate_passes)
    assert only_album(emulator.account) is created
    assert created.asset_ids == [library.jpeg.asset_id]
    assert library.jpeg.deleted


def test_relation_made_despite_a_lost_answer_counts_as_staged(
    emulator: RunningEmulator, staged: ICloudSource, library: Library
) -> None:
    album = emulator.account.add_album(STAGING, [])
    item = items(staged)[library.jpeg.asset_id]
    emulator.server.inject("modify", status=503, applied=True, times=1)
    with pytest.raises(ProviderError, match="adding it to the album"):
        staged.remove(item, _gate_passes)
    assert album.asset_ids == [library.jpeg.asset_id]
    assert not library.jpeg.deleted
    # The retry's create is refused (EXISTS); the relation is looked up, found,
    # and the delete goes ahead.
    staged.remove(item, _gate_passes)
    assert library.jpeg.deleted
    assert emulator.server.hits["modify"] == 3
    # The asset re-read by each removal, and the relation looked up once.
    assert emulator.server.hits["lookup"] == 3


def test_shared_library_assets_are_not_removed_unstaged(tmp_path: Path) -> None:
    account = Account()
    zone = account.add_shared_library()
    shared = account.add_asset(b"shared", "SHARED.JPG", asset_date=None, zone=zone)
    with running_emulator(account) as emu:
        seed_trusted_session(emu, tmp_path)
        with staged_source(emu, tmp_path, include_shared=True) as source:
            item = items(source)[shared.asset_id]
            with pytest.raises(ProviderError, match=r"Shared Library.*not removed"):
                source.remove(item, _gate_passes)
    assert not shared.deleted
    assert account.albums_named(STAGING) == []


def test_staging_album_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="staging album"):
        ICloudSource("icloud", username="u@example.com", session_dir=tmp_path, staging_album=" ")
