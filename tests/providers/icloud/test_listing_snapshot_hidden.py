"""A listing made of several requests is no snapshot: an asset hidden or
shown between two of them (a phone in the person's hand while cron runs)
must still be listed once, as it is, with its albums. The person acts at
the emulator (``before_query``) between two requests of the real pyicloud."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler.model import SourceItem
from reconciler.state import StateDB
from tests.providers.icloud.conftest import Library

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
#: The queries of a full listing: "All Photos" (read first), the Hidden album.
ALL_PHOTOS = "CPLAssetAndMasterByAssetDate"
HIDDEN = "CPLAssetAndMasterHiddenByAssetDate"
#: An album's listing.
ALBUM = "CPLContainerRelation"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(tmp_path / "state.db")
    yield state
    state.close()


def _source(emulator: RunningEmulator, session_dir: Path) -> ICloudSource:
    return ICloudSource(
        "icloud", username=emulator.username, session_dir=session_dir, endpoint=emulator.url
    )


def listed(
    emulator: RunningEmulator, session_dir: Path, db: StateDB | None, now: datetime = NOW
) -> tuple[list[SourceItem], str]:
    """One run's listing, every item as listed (twice, if listed twice)."""
    with _source(emulator, session_dir) as source:
        if db is not None:
            source.remember_listing(db, now)
        return list(source.list_items(None)), source.last_listing  # type: ignore[arg-type]


def by_key(items: list[SourceItem]) -> dict[str, SourceItem]:
    keys = [i.key for i in items]
    assert len(keys) == len(set(keys)), keys
    return {i.key: i for i in items}


def key_of(asset: EmulatedAsset) -> str:
    return f"{asset.asset_id}:{asset.master_id}"


@pytest.mark.parametrize("remembered", [True, False], ids=["state-db", "no-state-db"])
def test_hidden_between_all_photos_and_the_hidden_album_is_listed_once_hidden(
    library: Library,
    emulator: RunningEmulator,
    session_dir: Path,
    db: StateDB,
    remembered: bool,
) -> None:
    account = library.account
    emulator.server.before_query(
        HIDDEN, lambda: account.update_asset(library.jpeg, {"isHidden": 1})
    )
    items, how = listed(emulator, session_dir, db if remembered else None)
    assert how == "full"
    found = by_key(items)
    assert len(found) == 6
    # The later read says what it is now.
    meta = found[key_of(library.jpeg)].metadata
    assert meta is not None and meta.hidden
    if remembered:
        assert len(db.icloud_listing("icloud")) == 6
        # The next run, by changes, says what a full listing says.
        again, how = listed(emulator, session_dir, db)
        assert how == "changes"
        assert by_key(again) == by_key(listed(emulator, session_dir, None)[0])


def test_shown_between_all_photos_and_the_hidden_album_is_listed(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """Read in neither: "All Photos" read while it was hidden, the Hidden
    album once it was not."""
    account = library.account
    account.update_asset(library.live, {"isHidden": 1})
    emulator.server.before_query(
        HIDDEN, lambda: account.update_asset(library.live, {"isHidden": 0})
    )
    items, _ = listed(emulator, session_dir, db)
    found = by_key(items)
    assert len(found) == 6
    meta = found[key_of(library.live)].metadata
    assert meta is not None and not meta.hidden
    assert len(db.icloud_listing("icloud")) == 6


def test_a_photo_taken_while_all_photos_is_read_page_by_page_misses_no_other(
    emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """ "All Photos" is read a page at a time by rank, oldest first; rank 0
    is the newest photo. One taken (or shown) after the first page moves
    every other a rank up, and the oldest of the second page would be read
    in no page; the change feed names the new photo, not that one. iCloud's
    counts then disagree with the listing: it is read again."""
    account = emulator.server.account
    start = datetime(2023, 1, 1, tzinfo=UTC)
    for n in range(150):
        account.add_asset(
            f"photo {n}".encode() * 40, f"P{n:04d}.JPG", asset_date=start + timedelta(hours=n)
        )
    pages = 0

    def on_page() -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            account.add_asset(b"taken now" * 40, "IMG_9999.JPG", asset_date=NOW)
        else:
            emulator.server.before_query(ALL_PHOTOS, on_page)

    emulator.server.before_query(ALL_PHOTOS, on_page)
    items, _ = listed(emulator, session_dir, db)
    assert pages >= 2
    assert len(items) == 157
    assert by_key(items) == by_key(listed(emulator, session_dir, None)[0])
    assert len(db.icloud_listing("icloud")) == 157


def test_shown_while_the_albums_are_read_keeps_its_albums(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """A full listing reads the album listings, then the Hidden album (for
    the hidden assets' relations): an asset shown in between is in neither."""
    account = library.account
    account.add_album("Trips", [library.video])
    account.update_asset(library.video, {"isHidden": 1})
    emulator.server.before_query(
        HIDDEN, lambda: account.update_asset(library.video, {"isHidden": 0})
    )
    items, _ = listed(emulator, session_dir, db)
    meta = by_key(items)[key_of(library.video)].metadata
    assert meta is not None and meta.albums == ("Trips",) and not meta.hidden


def test_hidden_while_a_run_by_changes_reads_the_albums_keeps_its_albums(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """A run by changes takes the assets it did not re-read as remembered
    (shown), and album listings leave hidden assets out: the albums one
    hidden as they are read leaves are looked up by relation."""
    account = library.account
    account.add_album("Trips", [library.jpeg])
    listed(emulator, session_dir, db)
    account.add_album("Kids", [library.live])  # so this run reads the albums
    emulator.server.before_query(ALBUM, lambda: account.update_asset(library.jpeg, {"isHidden": 1}))
    items, how = listed(emulator, session_dir, db, NOW + timedelta(hours=1))
    assert how == "changes"
    meta = by_key(items)[key_of(library.jpeg)].metadata
    assert meta is not None and meta.albums == ("Trips",)
    # The next run reads the hide, and says what a full listing says.
    again, how = listed(emulator, session_dir, db, NOW + timedelta(hours=2))
    assert how == "changes"
    assert by_key(again) == by_key(listed(emulator, session_dir, None)[0])


def test_taken_out_of_an_album_is_out_of_it_in_a_run_by_changes(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """An album a shown asset left is looked up by relation too: found
    absent, so left (not kept as remembered)."""
    account = library.account
    trips = account.add_album("Trips", [library.jpeg, library.live])
    listed(emulator, session_dir, db)
    account.remove_from_album(trips, library.jpeg.asset_id)
    items, how = listed(emulator, session_dir, db, NOW + timedelta(hours=1))
    assert how == "changes"
    found = by_key(items)
    assert found[key_of(library.jpeg)].metadata.albums == ()  # type: ignore[union-attr]
    assert found[key_of(library.live)].metadata.albums == ("Trips",)  # type: ignore[union-attr]
    assert found == by_key(listed(emulator, session_dir, None)[0])


def test_a_failed_lookup_of_an_album_left_keeps_the_albums_remembered(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    account = library.account
    trips = account.add_album("Trips", [library.jpeg])
    listed(emulator, session_dir, db)
    account.add_album("Kids", [library.live])
    emulator.server.before_query(ALBUM, lambda: account.update_asset(library.jpeg, {"isHidden": 1}))
    relation = f"{library.jpeg.asset_id}-IN-{trips.album_id}"
    emulator.server.inject_record_errors("TRY_AGAIN_LATER", (relation,))
    items, _ = listed(emulator, session_dir, db, NOW + timedelta(hours=1))
    meta = by_key(items)[key_of(library.jpeg)].metadata
    assert meta is not None and meta.albums == ("Trips",) and meta.unremovable
