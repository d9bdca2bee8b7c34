"""The iCloud Photos source: list, fetch and soft-delete through pyicloud.

Safety-relevant choices:

- Items are keyed ``<asset id>:<master id>``, never by filename.
- Every library read is listed whole: its "All Photos" and its Hidden
  album (a Shared Library's too, which pyicloud does not offer). A page
  that fails fails the listing: never a library listed in part, which the
  plan would take for all of it.
- A full listing is made of many requests, and is no snapshot: an asset
  hidden between the read of "All Photos" and of the Hidden album is in
  both, one shown then in neither. Each asset is listed once, as the later
  read has it; the change feed since the sync token read first names what
  changed meanwhile, each looked up again as it is now (with its albums,
  from its relation records); a change that moved assets between pages,
  leaving one read in no page, makes iCloud's counts disagree, and the
  listing is made again.
- An item is every file that cannot be re-derived (original, RAW
  alternative, Live Photo video, rendered edit, adjustment data; see
  ``assets``) plus its Photos metadata, which goes into its XMP sidecar.
- A download is streamed to the caller's file, resumed with ``Range`` after
  a short read of an answer that showed it is the file (``download``: a 200
  of the whole size, a 206 of the range asked), and only accepted when its
  byte count equals the resource's size (pyicloud's own ``download()``
  returns truncated bodies as success) and it is no page in a photo's
  place. Any other answer (an error page in an HTTP 200) is discarded
  whole: bytes of two answers are never joined without that proof.
- An expired download URL is refreshed by re-reading the asset record.
- ``remove`` is Photos' soft delete (to Recently Deleted) with the record's
  change tag; a CONFLICT re-reads the record and retries once, after checking
  it is still the same master (the same original bytes that were archived),
  with the same files (no edit made since) and the same metadata. Its
  albums are read afresh too (the album list, then its relation records):
  joining an album leaves the asset's record and change tag as they were,
  so they are read once more after the removal gate (which may take
  minutes), right before the delete: the change tag guards the rest.
- A delete whose answer never came (a 503 after the commit, a dropped
  connection) may have happened: it is noted in the state DB before it is
  sent, and the next listing settles it by reading the asset (in Recently
  Deleted or gone: its tombstone is written, as had the answer come; still
  there: the note goes). Until then the shrink guard counts it as the
  tool's own removal.
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
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import requests
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import PRIMARY_ZONE

from providers.base import Hasher
from providers.icloud.access import is_deleted, split_key
from providers.icloud.albums import LOG, relation_name
from providers.icloud.assets import (
    INLINE_RECIPE,
    files_of,
    inline_recipe,
    metadata_of,
    recipe_fingerprint,
    resource_of,
)
from providers.icloud.changes import NOTE, Located, Memberships, fresh_token
from providers.icloud.download import HEAD_BYTES, answer_problem, content_problem, kind_mismatch
from providers.icloud.errors import http_status, release, server_error_codes
from providers.icloud.listing import ALBUMS_UNREAD, encode
from providers.icloud.removal import Remover, captured_at, unstageable
from reconciler.errors import ProviderError
from reconciler.interrupt import check_abandoned
from reconciler.model import MediaFile, SourceItem
from reconciler.state import ListingRow, StateDB

__all__ = ["ICloudSource", "relation_name"]


# Small enough that a dropped connection loses little: urllib3 discards the
# partial chunk it was reading when the body ends short.
CHUNK = 1 << 16


#: Full listings a run makes before it keeps one iCloud's counts disagree
#: with (the library changing meanwhile); the next run's counts check again.
LISTING_ATTEMPTS = 2

#: Statuses a stale download URL answers with; refreshed once by a re-read.
EXPIRED_URL_STATUSES = frozenset({403, 410})


def _is_hidden(item: SourceItem | None) -> bool:
    return bool(item is not None and item.metadata is not None and item.metadata.hidden)


def _is_listed_recipe(data: bytes | None, file: MediaFile) -> bool:
    """Whether ``data`` is the inline adjustment data ``file`` was listed with."""
    return (
        data is not None and len(data) == file.size and recipe_fingerprint(data) == file.fingerprint
    )


class _Stream:
    """The file being downloaded: its bytes so far, hashed as they are
    written (a video is read once), and its first bytes (to tell a page
    from a photo)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written = 0
        self.digest = hashlib.sha256()
        self.head = b""

    def write(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.out.write(chunk)
        self.digest.update(chunk)
        self.written += len(chunk)

    def restart(self) -> None:
        """Nothing kept: the next answer is read from byte 0."""
        self.out.seek(0)
        self.out.truncate()
        self.written = 0
        self.digest = hashlib.sha256()
        self.head = b""


class ICloudSource(Remover):
    """``providers.base.Source`` for an iCloud Photos library.

    Its parts: ``access`` (the session, zones, an asset read again),
    ``albums``, ``removal``; here the listing and the downloads.
    """

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
            self._settle_unheard()  # before the listing: it may explain its shrinking
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
        why = unstageable(self.staging_album)
        return item._replace(metadata=attrs.evolve(item.metadata, unremovable=why))

    def _list_all(self) -> Iterator[SourceItem]:
        memory = self._memory
        tokens, found, listed = self._snapshot()
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
        for asset_id, located in listed.items():
            asset, zone_id = located.asset, located.zone_id
            item = self._to_item(asset, albums)
            if item is not None and item.metadata is not None and asset_id in unread:
                meta = attrs.evolve(item.metadata, unremovable=ALBUMS_UNREAD)
                item = item._replace(metadata=meta)
            if memory is not None:
                ids = album_ids.get(asset_id, ()) if _is_hidden(item) else ()
                text = encode(item, ids) if item is not None else None
                row = (asset_id, asset.master_id, zone_id["zoneName"], len(rows), text)
                rows.append(ListingRow(*row))
            if item is None:
                continue
            self._seen[item.key] = located
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

    def _snapshot(self) -> tuple[dict[str, str], Memberships, dict[str, Located]]:
        """Every library's sync token (read first), album memberships and
        assets (asset id -> the asset), as at one moment. A listing of many
        requests is no snapshot: what changed while it ran is read through
        (``_read_through``), and an asset changed meanwhile has its albums
        looked up by relation (one hidden or shown while the album listings
        ran may have been left out of some). A change that moved assets
        between pages may have left one unread: iCloud's counts then
        disagree, and the listing is made again (once; a run by changes
        checks the counts again)."""
        libraries = self._libraries()
        primary = PRIMARY_ZONE["zoneName"]
        for attempt in range(LISTING_ATTEMPTS):
            # Read before anything is listed: a change made while the listing
            # runs is then read through now, and read again next time.
            tokens = {zone: fresh_token(lib) for zone, lib in libraries.items()}
            found = self._memberships()
            listed = self._read_zones()
            changed = self._read_through(libraries, tokens, listed)
            found = self._regrouped(
                found,
                [
                    i
                    for i in sorted(changed)
                    if i in listed and listed[i].zone_id["zoneName"] == primary
                ],
            )
            if not changed:
                break
            mismatch = self._count_mismatch(a.zone_id["zoneName"] for a in listed.values())
            if not mismatch:
                break
            again = attempt + 1 < LISTING_ATTEMPTS
            NOTE.info(
                "%s: the library changed while it was listed: %s%s",
                self.id,
                mismatch,
                "; listing it again" if again else "; kept, the next run checks the counts again",
            )
        return tokens, found, listed

    def _read_zones(self) -> dict[str, Located]:
        """Asset id -> the asset, from each library's "All Photos" and Hidden
        album. Read one after the other, they are no snapshot: an asset
        hidden between the two reads is in both, and is listed once, as the
        later read has it (as it is now)."""
        listed: dict[str, Located] = {}
        for album, zone_id in self._zones():
            for asset in self._assets_of(album, zone_id):
                listed[asset.id] = Located(asset, zone_id)
        return listed

    def _assets_of(self, album: Any, zone_id: dict[str, str]) -> Iterator[Any]:
        """The album's assets. A page that fails fails the listing (never a
        library listed in part), naming the album and the library."""
        try:
            yield from album
        except (PyiCloudException, requests.RequestException) as e:
            raise self._error(e, f"listing {album.name!r} of {zone_id['zoneName']}") from e

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
            captured_at=captured_at(asset.asset_date),
            version=asset.asset_record.recordChangeTag or "",
            metadata=metadata_of(asset, albums.get(asset.id, ())),
        )

    def fetch(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        """Stream ``file`` of ``item`` into ``dest``; resumes short reads of
        an answer that showed it is the file (``download``), refreshes an
        expired URL once, accepts exactly ``file.size`` bytes that are no
        page in a photo's place. Safe to call from many threads at once:
        each call is one stream."""
        subject = f"fetch {item.key} ({file.name})"
        if file.ref == INLINE_RECIPE:
            return self._write_recipe(item, file, dest)
        url = self._download_url(item, file, fresh=False)
        with open(dest, "wb") as out:
            stream = _Stream(out)
            refreshed = False
            attempts = 0
            why = ""
            while True:
                start = stream.written
                headers = {"Range": f"bytes={start}-"} if start else {}
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
                    why = self._take(response, stream, file, subject)
                if stream.written == file.size:
                    why = content_problem(file.name, stream.head)
                    if not why:
                        break
                    stream.restart()
                if why:
                    LOG.info("%s: %s: %s; discarded, downloading again", self.id, subject, why)
                attempts += 1
                if attempts > self.max_resumes:
                    last = f" (last answer: {why})" if why else ""
                    raise ProviderError(
                        f"{subject}: download stopped at {stream.written} of {file.size} bytes "
                        f"after {attempts} attempts{last}",
                        provider=self.id,
                        transient=True,
                    )
            out.flush()
            os.fsync(out.fileno())
        mismatch = kind_mismatch(file.name, stream.head)
        if mismatch:
            LOG.warning(
                "%s: %s: its bytes are %s, not what its name says; archived as iCloud holds them",
                self.id,
                subject,
                mismatch,
            )
        return stream.digest.hexdigest()

    def _take(
        self, response: requests.Response, stream: _Stream, file: MediaFile, subject: str
    ) -> str:
        """Add what ``response`` holds of the file to ``stream``; why it was
        not the file ("" if it was). An answer that showed it is (part of)
        the file and ended short is kept to resume from; any other is
        discarded whole, and the download starts again from byte 0."""
        start = stream.written
        why, resumable = answer_problem(
            response.status_code, response.headers, name=file.name, size=file.size, start=start
        )
        if why:
            stream.restart()
            return why
        if start and response.status_code != 206:
            # The server ignored Range: start over rather than append a
            # second copy of the first bytes.
            stream.restart()
        try:
            for chunk in response.iter_content(CHUNK):
                check_abandoned()  # a second signal: stop mid-download
                if stream.written + len(chunk) > file.size:
                    raise ProviderError(
                        f"{subject}: more bytes than the {file.size} expected",
                        provider=self.id,
                    )
                stream.write(chunk)
        except requests.RequestException as e:
            LOG.info("%s: %s: short read at %d bytes (%s)", self.id, subject, stream.written, e)
        if stream.written != file.size and not resumable:
            # Ended short with nothing to say it was the file: bytes of
            # another answer are never joined to it.
            stream.restart()
        return ""

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
        if located is None or is_deleted(located.asset):
            raise ProviderError(f"fetch {item.key}: no longer in the library", provider=self.id)
        if located.asset.master_id != split_key(item.key)[1]:
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
