"""The iCloud Photos source: list, fetch and soft-delete through pyicloud.

Safety-relevant choices:

- Items are keyed ``<asset id>:<master id>``, never by filename.
- Every library read is listed whole: its "All Photos" and its Hidden
  album (a Shared Library's too, which pyicloud does not offer). A page
  that fails fails the listing: never a library listed in part, which the
  plan would take for all of it.
- An item is every file that cannot be re-derived (original, RAW
  alternative, Live Photo video, rendered edit, adjustment data; see
  ``assets``) plus its Photos metadata, which goes into its XMP sidecar.
- A download is streamed to the caller's file, resumed with ``Range`` after
  a short read, and only accepted when its byte count equals the resource's
  size (pyicloud's own ``download()`` returns truncated bodies as success).
- An expired download URL is refreshed by re-reading the asset record.
- ``remove`` is Photos' soft delete (to Recently Deleted) with the record's
  change tag; a CONFLICT re-reads the record and retries once, after checking
  it is still the same master (the same original bytes that were archived),
  with the same files (no edit made since) and the same metadata. Its
  albums are read afresh too (the album list, then its relation records):
  joining an album leaves the asset's record and change tag as they were.
- Records are looked up through ``changes.look_up``: CloudKit may answer a
  record it cannot serve now with an error item in an HTTP 200; only
  NOT_FOUND means "not there", any other fails the lookup like a failed
  request (an asset is never taken for removed, nor a membership for
  absent, on iCloud's "try later"). ``remove`` pairs the asset with the
  master its record points at now, so a re-pointed asset is seen.
- Album listings leave hidden assets out: their memberships are read from
  their relation records (``<asset id>-IN-<album id>``); by changes, only
  where something changed. A lookup that fails leaves those hidden assets
  ``unremovable`` this run (a note in the plan), not the library unlisted.
- With a staging album, a Shared Library item is marked ``unremovable`` in
  its metadata: the plan notes it instead of planning a removal that fails.
- With a staging album (``staging_album``, e.g. "DeletePending") ``remove``
  first adds the asset to that album, and deletes nothing it could not add:
  what the tool removed stays findable by name after it is restored from
  Recently Deleted.
- Unattended runs never prompt: a person being needed is LoginRequiredError.
- Given the state DB (``remember_listing``), a run reads only what changed
  since the last one (CloudKit's change feed, from a sync token read *before*
  the listing it follows) and applies it to the remembered listing. A full
  listing runs on the first run, every ``full_listing_every_days``, when the
  token is refused or expired, when it is of another Apple ID, and when
  iCloud's counts disagree with the listing. Removal never trusts the
  remembered listing: ``remove`` re-reads the asset and compares it whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import requests
from pyicloud.common.cloudkit import CKRecord
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import (
    PRIMARY_ZONE,
    PhotoAlbum,
    PhotoAlbumFolder,
    PhotoAsset,
    PhotoLibrary,
    SmartPhotoAlbum,
)
from pyicloud.services.photos_cloudkit.constants import SmartAlbumEnum

from providers.base import Closing, Hasher
from providers.icloud import session as icloud_session
from providers.icloud.assets import (
    DELETED,
    INLINE_RECIPE,
    ask_for_fields_read,
    files_of,
    inline_recipe,
    metadata_of,
    recipe_fingerprint,
    resource_of,
)
from providers.icloud.changes import (
    LOOKUP_BATCH,
    ChangeFeed,
    HiddenKnown,
    Located,
    Memberships,
    fresh_token,
    look_up,
    master_of,
    shared_libraries,
)
from providers.icloud.errors import classify, http_status, release, server_error_codes
from providers.icloud.listing import ALBUMS_UNREAD, decode_row, encode
from reconciler.errors import ConfigError, LoginRequiredError, ProviderError, ReconcileError
from reconciler.interrupt import check_abandoned
from reconciler.media.metadata import is_placeholder_date
from reconciler.model import ItemMetadata, MediaFile, SourceItem
from reconciler.sidecar import album_path
from reconciler.state import ListingRow, StateDB

LOG = logging.getLogger(__name__)
# Small enough that a dropped connection loses little: urllib3 discards the
# partial chunk it was reading when the body ends short.
CHUNK = 1 << 16
#: Statuses a stale download URL answers with; refreshed once by a re-read.
EXPIRED_URL_STATUSES = frozenset({403, 410})
#: What CloudKit may answer a create of a relation that already exists.
ALREADY_THERE_CODES = frozenset({"EXISTS", "CONFLICT"})


class ICloudSource(ChangeFeed, Closing):
    """``providers.base.Source`` for an iCloud Photos library."""

    kind = "icloud"
    remote = True
    remarks: tuple[tuple[str, str], ...] = ()  # every asset listed is an item

    def __init__(
        self,
        source_id: str,
        *,
        username: str,
        password: str | None = None,
        session_dir: Path | str,
        endpoint: str | None = None,
        include_shared: bool = False,
        timeouts: tuple[float, float] = icloud_session.DEFAULT_TIMEOUTS,
        max_resumes: int = 3,
        staging_album: str | None = None,
        full_listing_every_days: float = 7.0,
    ) -> None:
        if staging_album is not None and not staging_album.strip():
            raise ConfigError([f"{source_id}: the staging album needs a name"])
        self.id = source_id
        self.username = username
        self._password = password
        self.session_dir = Path(session_dir)
        self.endpoint = endpoint
        self.include_shared = include_shared
        self.timeouts = timeouts
        self.max_resumes = max_resumes
        self.staging_album = staging_album
        self.full_listing_every_days = full_listing_every_days
        #: Where the last listing is remembered (None: a full listing every run).
        self._memory: StateDB | None = None
        self._now = datetime.now(UTC)
        #: Zone of every item of a remembered listing (not re-read this run).
        self._zone_of: dict[str, dict[str, str]] = {}
        #: "full" or "changes": how the last ``list_items`` listed (tests, figures).
        self.last_listing = ""
        self._api: Any = None
        self._photos: Any = None
        self._seen: dict[str, Located] = {}
        #: The staging album, once found or created (once per run).
        self._album: Any = None
        #: A create of the album failed after it may have reached iCloud: the
        #: next lookup re-lists albums rather than trust pyicloud's cached list
        #: (which would miss it, and a second album of that name would follow).
        self._album_uncertain = False
        #: Asset ids this run added to the staging album.
        self._staged: set[str] = set()
        self._lock = threading.RLock()

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.session.close()
            self._api = None
            self._photos = None
            self._seen.clear()
            self._zone_of.clear()
            self._album = None
            self._album_uncertain = False
            self._staged.clear()

    def _error(self, exc: BaseException, subject: str) -> ProviderError:
        return classify(exc, provider=self.id, subject=subject, username=self.username)

    def _service(self) -> Any:
        """pyicloud's Photos service, signed in; read once per run because
        ``api.photos`` sends a request on every access."""
        with self._lock:
            if self._photos is None:
                # Before pyicloud's first request: whichever sends its field
                # list asks for every field read here (``assets.FIELDS_READ``).
                ask_for_fields_read()
                if self._api is None:
                    self._api = icloud_session.connect(
                        self.id,
                        self.username,
                        self._password,
                        self.session_dir,
                        endpoint=self.endpoint,
                        timeouts=self.timeouts,
                    )
                try:
                    self._photos = self._api.photos
                except (PyiCloudException, requests.RequestException) as e:
                    raise self._error(e, "opening the Photos library") from e
            return self._photos

    def _zones(self) -> list[tuple[Any, dict[str, str]]]:
        """(album, zone id) of the albums that together hold every asset of
        every library read: each library's "All Photos" and its Hidden album
        ("All Photos" leaves hidden assets out; they are the person's too,
        in a Shared Library as in the personal one)."""
        photos = self._service()
        hidden = photos.albums.find(SmartAlbumEnum.HIDDEN.value)
        if hidden is None:
            # Never listed in part: a library without its hidden assets
            # would look complete, and the plan would say it matches.
            raise ProviderError(
                "listing: pyicloud offers no Hidden album of the personal library, "
                "so its hidden assets cannot be listed",
                provider=self.id,
            )
        zones: list[tuple[Any, dict[str, str]]] = [
            (photos.all, dict(PRIMARY_ZONE)),
            (hidden, dict(PRIMARY_ZONE)),
        ]
        if self.include_shared:
            for library in shared_libraries(photos):
                zone_id = dict(library.zone_id)
                zones += [(library.all, zone_id), (hidden_album(library), zone_id)]
        return zones

    def _zone_ids(self) -> list[dict[str, str]]:
        """The zone id of every library read, once each."""
        out: list[dict[str, str]] = []
        for _, zone_id in self._zones():
            if zone_id not in out:
                out.append(zone_id)
        return out

    # ------------------------------------------------------------ listing

    def remember_listing(self, db: StateDB, now: datetime) -> None:
        """Keep the listing in ``db`` between runs, and list by changes while
        it is recent enough (``now``: this observation's time)."""
        with self._lock:
            self._memory = db
            self._now = now
            self._photos = None  # a fresh view of the library for this observation

    def list_items(self, hasher: Hasher) -> Iterator[SourceItem]:
        """Every asset of the library, hidden ones included (and of each
        Shared Library, if asked, hidden ones too), each with all its files
        and its metadata (albums from one pass over the user albums). A part
        that cannot be read fails the listing: never a library listed in
        part. ``hasher`` is unused: remote hashes are known only after a
        download."""
        del hasher
        try:
            changed = self._list_changes() if self._memory is not None else None
            if changed is not None:
                self.last_listing = "changes"
                yield from map(self._limited, changed)
                return
            self.last_listing = "full"
            yield from map(self._limited, self._list_all())
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, "listing") from e

    def _limited(self, item: SourceItem) -> SourceItem:
        """The item, saying why it can never be removed if it cannot: with a
        staging album, an item outside the personal library (which alone has
        albums) could never be staged, so ``remove`` would refuse it on every
        run. Set here, not kept in the remembered listing: it follows the
        configuration, not the asset."""
        if self.staging_album is None:
            return item
        located = self._seen.get(item.key)
        zone_id = located.zone_id if located is not None else self._zone_of.get(item.key)
        if (
            item.metadata is None
            or zone_id is None
            or zone_id.get("zoneName") == PRIMARY_ZONE["zoneName"]
        ):
            return item
        why = _unstageable(self.staging_album)
        return item._replace(metadata=attrs.evolve(item.metadata, unremovable=why))

    def _list_all(self) -> Iterator[SourceItem]:
        memory = self._memory
        # The tokens are read before anything is listed: a change made while
        # the listing runs is then read again next time, never missed.
        tokens = (
            {zone: fresh_token(lib) for zone, lib in self._libraries().items()}
            if memory is not None
            else {}
        )
        found = self._memberships()
        albums = {asset_id: found.albums(asset_id) for asset_id in found.of_asset}
        album_ids = {asset_id: found.ids(asset_id) for asset_id in found.of_asset}
        unread = found.unread
        if unread and memory is not None:
            # Not read this run: the albums the last listing knew stand (a
            # sidecar is not rewritten without them), the item unremovable.
            remembered = self._remembered_albums(memory, unread)
            albums.update({k: names for k, (names, _) in remembered.items()})
            album_ids.update({k: ids for k, (_, ids) in remembered.items()})
        rows: list[ListingRow] = []
        for album, zone_id in self._zones():
            for asset in self._assets_of(album, zone_id):
                item = self._to_item(asset, albums)
                if item is not None and item.metadata is not None and asset.id in unread:
                    meta = attrs.evolve(item.metadata, unremovable=ALBUMS_UNREAD)
                    item = item._replace(metadata=meta)
                if memory is not None:
                    ids = album_ids.get(asset.id, ()) if _is_hidden(item) else ()
                    text = encode(item, ids) if item is not None else None
                    row = (asset.id, asset.master_id, zone_id["zoneName"], len(rows), text)
                    rows.append(ListingRow(*row))
                if item is None:
                    continue
                self._seen[item.key] = Located(asset, zone_id)
                yield item
        if memory is not None:
            memory.save_icloud_listing(
                self.id,
                account=self.username,
                tokens=tokens,
                full_at=self._now,
                rows=rows,
                replace=True,
            )

    def _assets_of(self, album: Any, zone_id: dict[str, str]) -> Iterator[Any]:
        """The album's assets. A page that fails fails the listing (never a
        library listed in part), naming the album and the library."""
        try:
            yield from album
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, f"listing {album.name!r} of {zone_id['zoneName']}") from e

    def _remembered_albums(
        self, memory: StateDB, ids: set[str]
    ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """The albums (paths, record ids) the remembered listing gives each
        of ``ids`` (if it can)."""
        out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for row in memory.icloud_listing(self.id):
            if row.asset_id not in ids or not row.item:
                continue
            try:
                item, album_ids = decode_row(self.id, row.item)
            except (ValueError, TypeError):
                continue
            if item.metadata is not None:
                out[row.asset_id] = (item.metadata.albums, album_ids or ())
        return out

    def _to_item(self, asset: Any, albums: Mapping[str, tuple[str, ...]]) -> SourceItem | None:
        key = f"{asset.id}:{asset.master_id}"
        files = files_of(asset)
        if not files or files[0].ref != "original":
            LOG.warning("%s: %s has no original resource; skipped", self.id, key)
            return None
        return SourceItem(
            source_id=self.id,
            key=key,
            files=tuple(files),
            captured_at=_captured_at(asset.asset_date),
            version=asset.asset_record.recordChangeTag or "",
            metadata=metadata_of(asset, albums.get(asset.id, ())),
        )

    def _memberships(self, hidden: HiddenKnown | None = None) -> Memberships:
        """Asset id -> the user albums holding it, by record id (never the
        staging album: being staged for removal is not something the person
        chose), and the hidden assets whose albums could not be read (they
        keep what ``hidden`` remembers, and are not removable this run).

        Album listings leave hidden assets out, but their relation records
        remain: a hidden asset's memberships are read from those, by the
        name Photos gives them (``<asset id>-IN-<album id>``): every hidden
        asset (the Hidden album read) against every album, or, given what a
        change listing knows (``hidden``), only the pairs that may have
        changed, the rest as remembered. Kept by record id, never by name:
        two albums may share one."""
        photos = self._service()
        listed = photos.albums
        albums = self._user_albums(listed)
        by_id = {album.id: album for album in albums}
        found: dict[str, set[str]] = {}
        for album in albums:
            for asset in album:
                found.setdefault(asset.id, set()).add(album.id)
        pairs: list[tuple[str, str]] = []
        if hidden is None or self._hidden_regrouped(hidden, listed, albums):
            if hidden is None:
                hidden_album = listed.find(SmartAlbumEnum.HIDDEN.value)
                ids = [a.id for a in hidden_album] if hidden_album is not None and albums else []
            else:
                ids = sorted(hidden.albums)
            pairs = [(asset_id, album_id) for asset_id in ids for album_id in by_id]
        else:
            changed = {i for i in hidden.album_ids if i in by_id}
            for asset_id, remembered in sorted(hidden.albums.items()):
                if remembered is None:
                    pairs.extend((asset_id, album_id) for album_id in by_id)
                    continue
                redo = changed | {
                    album_id
                    for a, album_id in hidden.relations
                    if a == asset_id and album_id in by_id
                }
                # Kept: a remembered album still there and not looked up again
                # (a deleted album is gone from the list).
                kept = {i for i in remembered if i in by_id and i not in redo}
                if kept:
                    found.setdefault(asset_id, set()).update(kept)
                pairs.extend((asset_id, album_id) for album_id in sorted(redo))
        relations, unread = self._relations(pairs, "reading the albums of hidden assets")
        for asset_id, ids_of in relations.items():
            found.setdefault(asset_id, set()).update(ids_of)
        for asset_id in unread:
            remembered = hidden.albums.get(asset_id) if hidden is not None else None
            found[asset_id] = set(remembered or ())
        return Memberships(
            of_asset={k: frozenset(v) for k, v in found.items()},
            paths=_album_paths(listed, albums),
            unread=unread,
        )

    def _hidden_regrouped(self, hidden: HiddenKnown, listed: Any, albums: list[Any]) -> bool:
        """Whether a changed album record is one that may rename user albums
        without being one (a folder): every hidden asset is looked up again.
        The staging album's changes are not the person's."""
        ids = {album.id for album in albums}
        staging = _find_album(listed, self.staging_album) if self.staging_album else None
        ignored = {staging.id} if staging is not None else set()
        return any(i not in ids and i not in ignored for i in hidden.album_ids)

    def _user_albums(self, albums: Any) -> list[Any]:
        """The user albums (in folders too) that make an item's ``albums``:
        not smart albums, folders, or the staging album."""
        return [
            album
            for album in albums
            if isinstance(album, PhotoAlbum)
            and not isinstance(album, SmartPhotoAlbum | PhotoAlbumFolder)
            and album.fullname != self.staging_album
        ]

    def _relations(
        self, pairs: list[tuple[str, str]], subject: str, *, strict: bool = False
    ) -> tuple[dict[str, list[str]], set[str]]:
        """Asset id -> the record ids of the albums holding it, of the
        (asset id, album id) ``pairs``, read from the relation records
        themselves (a lookup by name, hidden or not): CloudKit answers a name
        that does not exist with NOT_FOUND. Also the asset ids a failed
        lookup left unread; ``strict``: raise instead (but a person being
        needed to sign in is always raised)."""
        by_name = {
            relation_name(asset_id, album_id): (asset_id, album_id) for asset_id, album_id in pairs
        }
        names = list(by_name)
        found: dict[str, list[str]] = {}
        unread: set[str] = set()
        client = self._service().private_client
        for i in range(0, len(names), LOOKUP_BATCH):
            batch = names[i : i + LOOKUP_BATCH]
            try:
                # A relation iCloud could not serve fails the batch: unknown
                # is not "in no album" (``look_up``).
                records = look_up(client, batch, PRIMARY_ZONE)
            except (PyiCloudException, requests.RequestException) as e:
                error = self._error(e, subject)
                if strict or isinstance(error, LoginRequiredError):
                    raise error from e
                release(e)
                LOG.warning("%s", error)
                unread.update(by_name[n][0] for n in batch)
                continue
            for name, record in records.items():
                if _live_relation(record) and name in by_name:
                    asset_id, album_id = by_name[name]
                    found.setdefault(asset_id, []).append(album_id)
        # An asset some of whose relations were not read: none of its are known.
        return {k: v for k, v in found.items() if k not in unread}, unread

    def _albums_now(self, item: SourceItem, asset_id: str) -> tuple[str, ...]:
        """The user albums holding the asset, read now: the album list
        afresh (one made since the listing counts) and each membership from
        its relation record. Callers hold ``self._lock``."""
        subject = f"remove {item.key}: not removed, reading its albums failed"
        try:
            listed = self._service().libraries["root"].refresh_albums()
            albums = self._user_albums(listed)
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, subject) from e
        found, _ = self._relations([(asset_id, a.id) for a in albums], subject, strict=True)
        paths = _album_paths(listed, albums)
        return tuple(sorted({paths[i] for i in found.get(asset_id, [])}))

    # ------------------------------------------------------------ re-reading

    def _reread(self, item: SourceItem) -> Located | None:
        """The asset as it is now (None: gone). A deleted asset comes back
        with ``isDeleted`` set; callers check."""
        with self._lock:
            return self._reread_locked(item)

    def _reread_locked(self, item: SourceItem) -> Located | None:
        asset_id, master_id = _split_key(item.key)
        photos = self._service()
        known = self._seen.get(item.key)
        remembered = self._zone_of.get(item.key)
        if known is not None:
            zone_ids = [known.zone_id]
        elif remembered is not None:
            zone_ids = [remembered]
        else:
            zone_ids = self._zone_ids()
        subject = f"re-reading {item.key}"
        for zone_id in zone_ids:
            try:
                found = look_up(photos.private_client, [asset_id, master_id], zone_id)
                asset_record = found.get(asset_id)
                if asset_record is None:
                    continue  # not in this library (or expunged)
                # Paired with the master its record points at now, never
                # with the one the key names: an asset re-pointed since the
                # listing is then seen to be another original (``_delete``).
                points_at = master_of(asset_record) or master_id
                if points_at not in found:
                    found.update(look_up(photos.private_client, [points_at], zone_id))
            except (PyiCloudException, requests.RequestException) as e:
                raise self._error(e, subject) from e
            master_record = found.get(points_at)
            if master_record is None:
                if asset_record.fields.get_value(DELETED):
                    return None  # in Recently Deleted, its original gone with it
                # The asset is there: "gone" would be a false claim.
                raise ProviderError(
                    f"{subject}: the asset is there but iCloud has no record of its "
                    f"original ({points_at})",
                    provider=self.id,
                )
            located = Located(PhotoAsset(photos, master_record, asset_record), zone_id)
            self._seen[item.key] = located
            return located
        return None

    def _current(self, item: SourceItem) -> Located:
        located = self._seen.get(item.key) or self._reread(item)
        if located is None or _is_deleted(located.asset):
            raise ProviderError(f"{item.key} is no longer in the library", provider=self.id)
        return located

    # ------------------------------------------------------------ fetch

    def local_path(self, item: SourceItem, file: MediaFile) -> Path | None:
        return None  # remote: fetch() downloads it

    def fetch(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        """Stream ``file`` of ``item`` into ``dest``; resumes short reads,
        refreshes an expired URL once, accepts exactly ``file.size`` bytes.
        Safe to call from many threads at once: each call is one stream."""
        subject = f"fetch {item.key} ({file.name})"
        if file.ref == INLINE_RECIPE:
            return self._write_recipe(item, file, dest)
        url = self._download_url(item, file, fresh=False)
        refreshed = False
        written = 0
        attempts = 0
        digest = hashlib.sha256()  # hashed while writing: a video is read once
        with open(dest, "wb") as out:
            while True:
                headers = {"Range": f"bytes={written}-"} if written else {}
                try:
                    response = self._get(url, headers)
                except requests.HTTPError as e:
                    if (
                        http_status(e) in EXPIRED_URL_STATUSES
                        and not refreshed
                        and "ACCESS_DENIED" not in server_error_codes(e)
                    ):
                        release(e)
                        refreshed = True
                        url = self._download_url(item, file, fresh=True)
                        continue
                    attempts += 1
                    error = self._error(e, subject)
                    if not error.transient or attempts > self.max_resumes or error.retry_after:
                        raise error from e
                    continue
                except requests.RequestException as e:
                    raise self._error(e, subject) from e
                with response:
                    if written and response.status_code != 206:
                        # The server ignored Range: start over rather than
                        # append a second copy of the first bytes.
                        out.seek(0)
                        out.truncate()
                        written = 0
                        digest = hashlib.sha256()
                    try:
                        for chunk in response.iter_content(CHUNK):
                            check_abandoned()  # a second signal: stop mid-download
                            written += len(chunk)
                            if written > file.size:
                                raise ProviderError(
                                    f"{subject}: more bytes than the {file.size} expected",
                                    provider=self.id,
                                )
                            out.write(chunk)
                            digest.update(chunk)
                    except requests.RequestException as e:
                        LOG.info(
                            "%s: %s: short read at %d bytes (%s)", self.id, subject, written, e
                        )
                if written == file.size:
                    break
                attempts += 1
                if attempts > self.max_resumes:
                    raise ProviderError(
                        f"{subject}: download stopped at {written} of {file.size} bytes "
                        f"after {attempts} attempts",
                        provider=self.id,
                        transient=True,
                    )
            out.flush()
            os.fsync(out.fileno())
        return digest.hexdigest()

    def _write_recipe(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        """Write the edit's adjustment data held in the asset record
        (``assets.inline_recipe``) into ``dest``: from the record as listed,
        or, when that no longer gives the listed bytes, as it is now."""
        data = inline_recipe(self._current(item).asset)
        if not _is_listed_recipe(data, file):
            located = self._reread(item)
            data = inline_recipe(located.asset) if located is not None else None
        if data is None or not _is_listed_recipe(data, file):
            raise ProviderError(
                f"fetch {item.key} ({file.name}): its edit's adjustment data changed "
                "since it was listed; plan again",
                provider=self.id,
            )
        with open(dest, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return hashlib.sha256(data).hexdigest()

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """GET a download URL on pyicloud's session (its cookies, headers and
        connection pool) but past pyicloud's own ``request``: that rewrites
        the session and cookie files after every request, so downloads had
        to start one at a time under the lock, and with Apple's round trip
        that, not the bandwidth, was the download rate. A download answer
        carries no session data to save. Raises HTTPError for 4xx and 5xx."""
        response = requests.Session.request(
            self._api.session, "GET", url, stream=True, timeout=self.timeouts, headers=headers
        )
        if response.status_code >= 400:
            raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
        return response

    def _download_url(self, item: SourceItem, file: MediaFile, *, fresh: bool) -> str:
        located = self._reread(item) if fresh else self._current(item)
        if located is None or _is_deleted(located.asset):
            raise ProviderError(f"fetch {item.key}: no longer in the library", provider=self.id)
        if located.asset.master_id != _split_key(item.key)[1]:
            raise ProviderError(
                f"fetch {item.key}: the asset now points at another original; plan again",
                provider=self.id,
            )
        url, size = resource_of(located.asset, file.ref)
        if not url:
            raise ProviderError(
                f"fetch {item.key}: it has no {file.ref!r} resource", provider=self.id
            )
        if size != file.size:
            raise ProviderError(
                f"fetch {item.key} ({file.name}): its size changed from {file.size} to "
                f"{size} since it was listed; plan again",
                provider=self.id,
            )
        return url

    # ------------------------------------------------------------ remove

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        """Soft delete: the asset moves to Recently Deleted. Idempotent.
        The asset is read again first, never taken from the listing: what
        it is now is compared with what was archived; ``proven`` (the
        removal gate) is asked last, just before the delete, each time."""
        located = self._reread(item)
        if located is None or _is_deleted(located.asset):
            return
        try:
            self._delete(item, located, proven)
        except (PyiCloudException, requests.RequestException) as e:
            codes = server_error_codes(e)
            if "CONFLICT" not in codes and "NOT_FOUND" not in codes:
                raise self._error(e, f"remove {item.key}") from e
            # Changed elsewhere since we read it: re-read, and retry once
            # with the fresh change tag if it is still there.
            LOG.info("%s: remove %s: %s; re-reading", self.id, item.key, ", ".join(sorted(codes)))
            fresh = self._reread(item)
            if fresh is None or _is_deleted(fresh.asset):
                return
            try:
                self._delete(item, fresh, proven)
            except (PyiCloudException, requests.RequestException) as e2:
                raise self._error(e2, f"remove {item.key}") from e2
        self._seen.pop(item.key, None)

    def _delete(self, item: SourceItem, located: Located, proven: Callable[[], object]) -> None:
        asset = located.asset
        _, master_id = _split_key(item.key)
        if asset.master_id != master_id:
            raise ProviderError(
                f"remove {item.key}: the asset now points at another original; not removed",
                provider=self.id,
            )
        # Every field of every file the sidecar lists (its name too), not the
        # SHA-256: that one is ours, known once a download is verified.
        now = {_as_archived(f) for f in files_of(asset)}
        archived = {_as_archived(f) for f in item.files}
        if now != archived:
            # An edit made (or undone) since the listing: its files are not
            # all archived. The next run archives them, then removes.
            changed = sorted({ref for ref, *_ in now ^ archived})
            raise ProviderError(
                f"remove {item.key}: {', '.join(changed)} changed since it was archived; "
                "not removed",
                provider=self.id,
            )
        if item.metadata is not None:
            # Everything else the sidecar records, read now, albums too:
            # adding an asset to an album leaves its record (and change tag)
            # as it was, so a membership made after the listing would
            # otherwise leave with the asset, in no sidecar. The capture date
            # too ("Adjust Date & Time"): the sidecar is where it survives;
            # its zone (``utc_offset``) is a field, compared with the rest.
            with self._lock:
                albums = self._albums_now(item, asset.id)
            meta = metadata_of(asset, albums)
            in_sidecar = attrs.evolve(item.metadata, unremovable="")
            changed = [
                f.name
                for f in attrs.fields(ItemMetadata)
                if getattr(meta, f.name) != getattr(in_sidecar, f.name)
            ]
            if _captured_at(asset.asset_date) != item.captured_at:
                changed.append("capture date")
            if changed:
                raise ProviderError(
                    f"remove {item.key}: its metadata changed since it was archived "
                    f"({', '.join(sorted(changed))}; the sidecar would miss it); not removed: "
                    "the next run rewrites the sidecar, then removes it",
                    provider=self.id,
                )
        # Staged only once the checks passed: the album lists what was removed.
        # Its failures are ProviderErrors already, so ``remove`` never takes a
        # CONFLICT of the album step for one of the delete.
        self._stage(item, located)
        proven()  # the copies read now: nothing slow comes between them and the delete
        with self._lock:
            asset.delete()

    # ------------------------------------------------------------ staging album

    def _stage(self, item: SourceItem, located: Located) -> None:
        """Add the asset to the staging album (if one is configured); raises
        when it is not there afterwards, so the caller deletes nothing."""
        name = self.staging_album
        asset = located.asset
        if name is None or asset.id in self._staged:
            return
        if located.zone_id.get("zoneName") != PRIMARY_ZONE["zoneName"]:
            # Albums live in the personal library; pyicloud offers none for a
            # Shared Library zone. Deleting unstaged would break the promise.
            raise ProviderError(
                f"remove {item.key}: {_unstageable(name)}; not removed", provider=self.id
            )
        subject = f"remove {item.key}: not removed, adding it to the album {name!r} failed"
        with self._lock:
            album = self._staging_album(name, f"remove {item.key}: not removed")
            try:
                album.add_photo(asset)
            except (PyiCloudException, requests.RequestException) as e:
                # Added before (an earlier run, or a retry whose answer was
                # lost): CloudKit refuses the create. Accept that only once
                # the relation is seen to exist.
                if not server_error_codes(e) & ALREADY_THERE_CODES:
                    raise self._error(e, subject) from e
                if not self._in_album(album, asset, subject):
                    raise self._error(e, subject) from e
                release(e)
                LOG.debug("%s: %s was already in the album %r", self.id, item.key, name)
            self._staged.add(asset.id)

    def _staging_album(self, name: str, why: str) -> Any:
        """The user album called ``name`` in the personal library, created if
        there is none; looked up once per run. Callers hold ``self._lock``."""
        if self._album is not None:
            return self._album
        photos = self._service()
        try:
            if self._album_uncertain:
                albums = photos.libraries["root"].refresh_albums()
            else:
                albums = photos.albums
            album = _find_album(albums, name)
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, f"{why}, looking for the album {name!r} failed") from e
        if album is None:
            LOG.info("%s: creating the album %r for items before removal", self.id, name)
            self._album_uncertain = True
            try:
                album = photos.create_album(name)
            except (PyiCloudException, requests.RequestException) as e:
                raise self._error(e, f"{why}, creating the album {name!r} failed") from e
            if album is None:
                raise ProviderError(
                    f"{why}, creating the album {name!r} failed: iCloud answered without it",
                    provider=self.id,
                )
        self._album = album
        self._album_uncertain = False
        return album

    def _in_album(self, album: Any, asset: Any, subject: str) -> bool:
        """Whether the relation pyicloud's ``add_photo`` would have created
        exists (it names it ``<asset id>-IN-<album id>``)."""
        relation = relation_name(asset.id, album.id)
        try:
            found = look_up(self._service().private_client, [relation], PRIMARY_ZONE)
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, subject) from e
        return _live_relation(found.get(relation))


def _find_album(albums: Any, name: str) -> Any:
    """The first user album whose full name is ``name``: never a smart album
    ("Favorites", "Recently Deleted"…), a folder, or an album in a folder
    that merely shares the last part of the name."""
    for album in albums:
        if (
            isinstance(album, PhotoAlbum)
            and not isinstance(album, SmartPhotoAlbum | PhotoAlbumFolder)
            and album.fullname == name
        ):
            return album
    return None


def hidden_album(library: Any) -> Any:
    """The Hidden album of a Shared Library zone (the assets this Apple ID
    hid there). pyicloud offers only "All Photos" and "Favorites" there, but
    Photos and iCloud.com show a Shared Library's hidden assets too, and
    CloudKit answers the Hidden query in its zone as in the personal one.
    Built as pyicloud builds the personal library's (``SMART_ALBUMS``)."""
    spec = PhotoLibrary.SMART_ALBUMS[SmartAlbumEnum.HIDDEN]
    return SmartPhotoAlbum(
        library,
        name=SmartAlbumEnum.HIDDEN,
        obj_type=spec.obj_type,
        list_type=spec.list_type,
        direction=spec.direction,
        client=getattr(library, "_client", None),
        zone_id=dict(library.zone_id),
    )


def _album_paths(listed: Any, albums: list[Any]) -> dict[str, str]:
    """Album id -> its path (``reconciler.sidecar.album_path``): the names
    of its folders and its own, each from its record. Not pyicloud's
    ``fullname``, which joins them with "/" and so takes an album named
    "Ski 2019/20" for an album "20" in a folder "Ski 2019". pyicloud keeps
    the parent link it reads (``parentId``) only as ``_parent_id``; the
    version is pinned, and the tests read albums in folders through it."""
    paths: dict[str, str] = {}
    for album in albums:
        levels = [album.name]
        seen = {album.id}
        parent = listed.get(album._parent_id) if album._parent_id else None
        while parent is not None and parent.id not in seen:  # a cycle ends the path
            seen.add(parent.id)
            levels.append(parent.name)
            parent = listed.get(parent._parent_id) if parent._parent_id else None
        paths[album.id] = album_path(reversed(levels))
    return paths


def _is_hidden(item: SourceItem | None) -> bool:
    return bool(item is not None and item.metadata is not None and item.metadata.hidden)


def _unstageable(album: str) -> str:
    return (
        f"in a Shared Library, which the staging album {album!r} cannot hold "
        "(only the personal library has albums)"
    )


def relation_name(asset_id: str, album_id: str) -> str:
    """The record name Photos (and pyicloud's ``add_photo``) gives the
    CPLContainerRelation holding an asset in an album."""
    return f"{asset_id}-IN-{album_id}"


def _live_relation(record: Any) -> bool:
    """Whether a looked-up record is a relation that exists (not an error
    item for a name not found, not deleted)."""
    return (
        isinstance(record, CKRecord)
        and not record.deleted
        and not record.fields.get_value("isDeleted")
    )


def _is_listed_recipe(data: bytes | None, file: MediaFile) -> bool:
    """Whether ``data`` is the inline adjustment data ``file`` was listed with."""
    return (
        data is not None and len(data) == file.size and recipe_fingerprint(data) == file.fingerprint
    )


def _as_archived(file: MediaFile) -> tuple[str, str, str, int, str]:
    """What the sidecar records of a file, but for its SHA-256."""
    return (file.ref, file.role, file.name, file.size, file.fingerprint)


def _split_key(key: str) -> tuple[str, str]:
    asset_id, sep, master_id = key.partition(":")
    if not sep or not asset_id or not master_id:
        raise ReconcileError(f"not an iCloud item key: {key!r}")
    return asset_id, master_id


def _is_deleted(asset: Any) -> bool:
    return bool(asset.asset_record.fields.get_value(DELETED))


def _captured_at(value: datetime | None) -> datetime | None:
    """UTC, or None for Apple's "unknown" (epoch 0, shown by pyicloud as 1970) and
    any other placeholder date (``metadata.is_placeholder_date``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if is_placeholder_date(value):
        return None
    return value.astimezone(UTC)
