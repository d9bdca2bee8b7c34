"""Incremental observation: the real pyicloud reads the emulator's change
feed, and what it makes of it is exactly what a full listing would say."""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler.errors import ProviderError
from reconciler.model import SourceItem
from reconciler.schema import MIGRATIONS, _migrate_icloud_incremental
from reconciler.state import StateDB
from tests.providers.icloud.conftest import Library

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(tmp_path / "state.db")
    yield state
    state.close()


def _source(emulator: RunningEmulator, session_dir: Path, **kwargs: object) -> ICloudSource:
    return ICloudSource(
        "icloud",
        username=emulator.username,
        session_dir=session_dir,
        endpoint=emulator.url,
        **kwargs,  # type: ignore[arg-type]
    )


def observe(
    emulator: RunningEmulator, session_dir: Path, db: StateDB, now: datetime = NOW, **kw: object
) -> tuple[dict[str, SourceItem], str]:
    """One run's listing (a new source each time, as a new process has)."""
    with _source(emulator, session_dir, **kw) as source:
        source.remember_listing(db, now)
        items = list(source.list_items(None))  # type: ignore[arg-type]
        return {i.key: i for i in items}, source.last_listing


def full_listing(emulator: RunningEmulator, session_dir: Path) -> dict[str, SourceItem]:
    """What a full listing says now (no state DB: nothing remembered)."""
    with _source(emulator, session_dir) as source:
        return {i.key: i for i in source.list_items(None)}  # type: ignore[arg-type]


def test_a_second_run_reads_changes_only_and_says_what_a_full_listing_says(
    emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    first, how = observe(emulator, session_dir, db)
    assert how == "full" and len(first) == 6
    queries = emulator.server.hits["query"]
    second, how = observe(emulator, session_dir, db)
    assert how == "changes"
    # No page of assets was read: the indexing check and the albums only.
    assert emulator.server.hits["query"] - queries == 2
    assert second == first == full_listing(emulator, session_dir)


def test_added_edited_described_favourited_hidden_deleted_and_expunged_assets(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    account = library.account
    observe(emulator, session_dir, db)
    album = account.add_album("Trips", [library.jpeg])
    new = account.add_asset(b"new photo" * 50, "IMG_0100.JPG", asset_date=NOW)
    account.edit_asset(library.live, b"rendered edit" * 30)
    account.describe(library.video, caption="Beach", keywords=("sea", "sand"))
    account.update_asset(library.twin_a, {"isFavorite": 1})
    account.update_asset(library.undated, {"isHidden": 1})
    account.delete(library.twin_b)
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes"
    assert seen == full_listing(emulator, session_dir)
    assert f"{new.asset_id}:{new.master_id}" in seen
    assert f"{library.twin_b.asset_id}:{library.twin_b.master_id}" not in seen
    jpeg = seen[f"{library.jpeg.asset_id}:{library.jpeg.master_id}"]
    assert jpeg.metadata is not None and jpeg.metadata.albums == ("Trips",)
    edited = seen[f"{library.live.asset_id}:{library.live.master_id}"]
    assert {f.role for f in edited.files} >= {"edited", "edit_sidecar"}
    # Restored from Recently Deleted, still in the album it was in before:
    # no relation changed, yet its albums are read again.
    account.add_to_album(album, library.twin_b.asset_id)
    observe(emulator, session_dir, db)
    account.update_asset(library.twin_b, {"isDeleted": 0})
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes" and seen == full_listing(emulator, session_dir)
    restored = seen[f"{library.twin_b.asset_id}:{library.twin_b.master_id}"]
    assert restored.metadata is not None and restored.metadata.albums == ("Trips",)
    # Hidden while in an album (album listings leave hidden assets out).
    account.update_asset(library.twin_b, {"isHidden": 1})
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes" and seen == full_listing(emulator, session_dir)
    # Out of an album, and expunged for good (tombstones).
    account.remove_from_album(album, library.jpeg.asset_id)
    account.expunge(library.twin_a)
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes"
    assert seen == full_listing(emulator, session_dir)
    assert f"{library.twin_a.asset_id}:{library.twin_a.master_id}" not in seen
    jpeg = seen[f"{library.jpeg.asset_id}:{library.jpeg.master_id}"]
    assert jpeg.metadata is not None and jpeg.metadata.albums == ()


def test_changes_arrive_in_pages(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    observe(emulator, session_dir, db)
    emulator.server.changes_page_size = 2
    for n in range(5):
        library.account.add_asset(bytes([n]) * 300, f"P{n}.JPG", asset_date=NOW)
    changes = emulator.server.hits["changes"]
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes"
    assert emulator.server.hits["changes"] - changes >= 5  # moreComing was followed
    assert seen == full_listing(emulator, session_dir)


def test_an_expired_token_falls_back_to_a_full_listing_and_says_so(
    library: Library,
    emulator: RunningEmulator,
    session_dir: Path,
    db: StateDB,
    caplog: pytest.LogCaptureFixture,
) -> None:
    observe(emulator, session_dir, db)
    library.account.update_asset(library.jpeg, {"isFavorite": 1})
    emulator.server.expire_sync_tokens()
    with caplog.at_level(logging.INFO, logger="reconcile.icloud"):
        seen, how = observe(emulator, session_dir, db)
    assert how == "full"
    assert "refused the sync token of PrimarySync (CHANGE_TOKEN_EXPIRED)" in caplog.text
    assert seen == full_listing(emulator, session_dir)
    # The full listing left a fresh token: the next run reads changes again.
    assert observe(emulator, session_dir, db)[1] == "changes"


def test_a_token_older_than_the_servers_horizon_is_refused(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    observe(emulator, session_dir, db)
    emulator.server.token_horizon = 3
    for n in range(3):
        library.account.update_asset(library.jpeg, {"isFavorite": n % 2})
    seen, how = observe(emulator, session_dir, db)
    assert how == "full"
    assert seen == full_listing(emulator, session_dir)


def test_a_full_listing_runs_every_n_days_and_always_with_zero(
    emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    assert observe(emulator, session_dir, db)[1] == "full"
    assert observe(emulator, session_dir, db, NOW + timedelta(days=6))[1] == "changes"
    assert observe(emulator, session_dir, db, NOW + timedelta(days=7))[1] == "full"
    assert observe(emulator, session_dir, db, NOW + timedelta(days=8))[1] == "changes"
    later = NOW + timedelta(days=8)
    assert observe(emulator, session_dir, db, later, full_listing_every_days=0)[1] == "full"


def test_counts_that_disagree_force_a_full_listing(
    library: Library,
    emulator: RunningEmulator,
    session_dir: Path,
    db: StateDB,
    caplog: pytest.LogCaptureFixture,
) -> None:
    observe(emulator, session_dir, db)
    # A change the feed never told us about: the remembered listing lost a row.
    lost = library.video.asset_id
    db.db.conn.execute("delete from icloud_listing where asset_id = ?", [lost])
    with caplog.at_level(logging.INFO, logger="reconcile.icloud"):
        seen, how = observe(emulator, session_dir, db)
    assert how == "full"
    assert "iCloud counts 6 assets in PrimarySync, the listing with its changes 5" in caplog.text
    assert f"{lost}:{library.video.master_id}" in seen
    assert seen == full_listing(emulator, session_dir)


def test_a_remembered_row_it_cannot_read_means_a_full_listing(
    emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    observe(emulator, session_dir, db)
    db.db.conn.execute('update icloud_listing set item = \'{"an older": "format"}\'')
    seen, how = observe(emulator, session_dir, db)
    assert how == "full" and seen == full_listing(emulator, session_dir)
    assert observe(emulator, session_dir, db) == (seen, "changes")


def _token(dsid: str, zone: str, serial: int) -> str:
    return "HwoE" + base64.urlsafe_b64encode(f"{dsid}|{zone}|0|{serial}".encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        _token("9999999999", "PrimarySync", 1),  # another account's
        _token("8012345678", "SharedSync-OTHER", 1),  # another zone's
        "not a token at all",
    ],
)
def test_a_token_of_another_account_or_zone_is_refused(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB, token: str
) -> None:
    observe(emulator, session_dir, db)
    library.account.delete(library.jpeg)
    db.db.conn.execute("update icloud_cursor set token = ?", [token])
    seen, how = observe(emulator, session_dir, db)
    assert how == "full"
    assert seen == full_listing(emulator, session_dir)
    assert f"{library.jpeg.asset_id}:{library.jpeg.master_id}" not in seen


def test_a_listing_remembered_for_another_apple_id_is_not_used(
    emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    observe(emulator, session_dir, db)
    db.db.conn.execute("update icloud_cursor set account = 'someone@else.example'")
    assert observe(emulator, session_dir, db)[1] == "full"
    assert db.icloud_cursor("icloud") is not None
    assert db.icloud_cursor("icloud").account == emulator.username  # type: ignore[union-attr]


def test_a_change_made_while_the_listing_runs_is_read_next_time(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """The token is read before the listing: a change to an asset already
    listed (on an earlier page) is still in the feed after it."""
    account = library.account
    with _source(emulator, session_dir) as source:
        source.remember_listing(db, NOW)
        listing = source.list_items(None)  # type: ignore[arg-type]
        first = next(listing)
        asset = account.find_asset(first.key.split(":")[0])
        assert asset is not None
        account.update_asset(asset, {"isFavorite": 1})  # after its page was read
        rest = list(listing)
    assert first.metadata is not None and not first.metadata.favorite
    assert len(rest) == 5
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes"
    favourite = seen[first.key].metadata
    assert favourite is not None and favourite.favorite
    assert seen == full_listing(emulator, session_dir)


def test_the_migration_is_self_contained(tmp_path: Path) -> None:
    """A database of the previous schema gains the two tables; a run then
    starts with a full listing (nothing remembered yet)."""
    path = tmp_path / "state.db"
    StateDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("drop table icloud_listing")
    conn.execute("drop table icloud_cursor")
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_icloud_incremental) - 1
    conn.execute("update meta set value = ? where key = 'schema_version'", [str(before)])
    conn.commit()
    conn.close()
    state = StateDB(path)
    try:
        assert state.icloud_cursor("icloud") is None
        assert state.icloud_listing("icloud") == []
    finally:
        state.close()


def test_an_empty_library_and_a_shared_library_zone(tmp_path: Path, db: StateDB) -> None:
    from providers.icloud.emulator.testing import running_emulator, seed_trusted_session

    account = Account()
    shared = account.add_shared_library()
    with running_emulator(account) as emu:
        sessions = tmp_path / "s"
        seed_trusted_session(emu, sessions)
        assert observe(emu, sessions, db, include_shared=True) == ({}, "full")
        account.add_asset(b"mine" * 100, "MINE.JPG", asset_date=NOW)
        theirs = account.add_asset(b"ours" * 100, "OURS.JPG", asset_date=NOW, zone=shared)
        seen, how = observe(emu, sessions, db, include_shared=True)
        assert how == "changes" and len(seen) == 2
        # Hidden in a Shared Library: still listed (its Hidden album is read
        # too), by changes as by a full listing.
        account.update_asset(theirs, {"isHidden": 1})
        seen, how = observe(emu, sessions, db, include_shared=True)
        assert how == "changes" and len(seen) == 2
        hidden = seen[f"{theirs.asset_id}:{theirs.master_id}"]
        assert hidden.metadata is not None and hidden.metadata.hidden
        with _source(emu, sessions, include_shared=True) as source:
            assert seen == {i.key: i for i in source.list_items(None)}  # type: ignore[arg-type]
        # A remembered listing without it (as an older version kept): iCloud's
        # count of the zone's hidden assets disagrees, so everything is read.
        db.db.conn.execute("delete from icloud_listing where asset_id = ?", [theirs.asset_id])
        seen, how = observe(emu, sessions, db, include_shared=True)
        assert how == "full" and f"{theirs.asset_id}:{theirs.master_id}" in seen
        # Asking for Shared Library zones later: their tokens are unknown.
        db.db.conn.execute("delete from icloud_cursor where zone != 'PrimarySync'")
        assert observe(emu, sessions, db, include_shared=True)[1] == "full"


def test_a_busy_change_feed_fails_the_listing_it_never_guesses(
    library: Library, emulator: RunningEmulator, session_dir: Path, db: StateDB
) -> None:
    """503 on changes/zone is iCloud being busy: the listing fails (the
    source is then untrusted this run), and the kept listing is untouched."""
    observe(emulator, session_dir, db)
    before = db.icloud_listing("icloud"), db.icloud_cursor("icloud")
    library.account.delete(library.jpeg)
    emulator.server.inject("changes", status=503, retry_after=0)
    with pytest.raises(ProviderError) as e:
        observe(emulator, session_dir, db)
    assert e.value.transient
    assert (db.icloud_listing("icloud"), db.icloud_cursor("icloud")) == before
    seen, how = observe(emulator, session_dir, db)
    assert how == "changes" and seen == full_listing(emulator, session_dir)
