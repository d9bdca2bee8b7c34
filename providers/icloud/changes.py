"""Listing an iCloud library by its change feed: the part of ``ICloudSource``
that applies what changed since the last run to the listing kept in the
state DB (``providers.icloud.listing`` says what each change means).

A mixin: ``ICloudSource`` provides the session, the zones, the albums and
turns assets into items; this reads ``changes/zone`` (pyicloud's
``iter_changes``), looks up the records it names, checks iCloud's counts,
and keeps the result. It answers None whenever a full listing must run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
import requests
from pyicloud.common.cloudkit import CKRecord, CKZoneIDReq
from pyicloud.common.cloudkit.client import CloudKitApiError
from pyicloud.common.cloudkit.models import CKErrorItem
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import PRIMARY_ZONE, PhotoAsset

from providers.icloud.assets import DELETED, EXPUNGED, MASTER_REF
from providers.icloud.errors import server_error_codes
from providers.icloud.listing import ALBUMS_UNREAD, Changes, decode_row, encode
from reconciler.errors import LoginRequiredError, ProviderError
from reconciler.logfile import LOGGER
from reconciler.model import SourceItem
from reconciler.state import Cursor, ListingRow, StateDB

#: Which kind of listing a run made, and why: in the log file even without -v.
NOTE = logging.getLogger(f"{LOGGER}.icloud")
#: Record names per lookup request.
LOOKUP_BATCH = 200
#: The one per-record answer of a lookup that says a record is not there.
ABSENT_CODES = frozenset({"NOT_FOUND"})


@attrs.frozen
class Located:
    """An asset as last read, with the library (zone) it lives in."""

    asset: Any
    zone_id: dict[str, str]


@attrs.frozen
class HiddenKnown:
    """What a change listing knows of its hidden assets' albums, so that
    only what may have changed is looked up (album listings leave hidden
    assets out; their relation records are read by name)."""

    #: Hidden asset id -> the record ids of its albums as remembered (None:
    #: look up every album). Ids, not names: two albums may share a name.
    albums: Mapping[str, tuple[str, ...] | None]
    #: Albums changed since the token: each looked up for every hidden asset.
    album_ids: frozenset[str]
    #: (asset id, album id) of the relations changed since the token.
    relations: frozenset[tuple[str, str]]
    #: Shown asset id -> the album paths remembered for it (only those in
    #: some album). One hidden while the albums are read drops out of their
    #: listings though its relations remain: an album it leaves so is looked
    #: up by relation, not taken for left.
    shown: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


@attrs.frozen
class Memberships:
    """The user albums holding each asset, as one listing read them."""

    #: Asset id -> the record ids of the albums holding it.
    of_asset: Mapping[str, frozenset[str]]
    #: Album id -> its path (``reconciler.sidecar.album_path``).
    paths: Mapping[str, str]
    #: Hidden assets whose albums could not be read.
    unread: set[str]

    def albums(self, asset_id: str) -> tuple[str, ...]:
        """The paths of the albums holding the asset, as ``ItemMetadata.albums``."""
        return tuple(
            sorted({self.paths[i] for i in self.of_asset.get(asset_id, ()) if i in self.paths})
        )

    def ids(self, asset_id: str) -> tuple[str, ...]:
        return tuple(sorted(self.of_asset.get(asset_id, ())))


class ChangeFeed:
    """What ``ICloudSource`` adds to read its library by changes."""

    id: str
    username: str
    include_shared: bool
    full_listing_every_days: float
    _memory: StateDB | None
    _now: datetime
    _seen: dict[str, Located]
    _zone_of: dict[str, dict[str, str]]

    def _error(self, exc: BaseException, subject: str) -> ProviderError:
        raise NotImplementedError

    def _service(self) -> Any:
        raise NotImplementedError

    def _zones(self) -> list[tuple[Any, dict[str, str]]]:
        raise NotImplementedError

    def _to_item(self, asset: Any, albums: Mapping[str, tuple[str, ...]]) -> SourceItem | None:
        raise NotImplementedError

    def _memberships(self, hidden: HiddenKnown | None = None) -> Memberships:
        raise NotImplementedError

    def _libraries(self) -> dict[str, Any]:
        """Zone name -> the pyicloud library reading its change feed. Zones
        are discovered first: discovery resets the primary library's token."""
        photos = self._service()
        found = {PRIMARY_ZONE["zoneName"]: photos.libraries["root"]}
        if self.include_shared:
            for library in shared_libraries(photos):
                found[library.zone_id["zoneName"]] = library
        return found

    def _full_listing_due(self, cursor: Cursor | None) -> str:
        """Why this run must list everything ("": it need not)."""
        every = self.full_listing_every_days
        if cursor is None:
            return "no listing remembered yet"
        if cursor.account != self.username:
            return f"the remembered listing is of another Apple ID ({cursor.account})"
        if every <= 0:
            return "full_listing_every_days = 0"
        age = self._now - cursor.full_at
        if age < timedelta(0) or age >= timedelta(days=every):
            return (
                f"the last full listing was {age.total_seconds() / 86400:.1f} days ago "
                f"(full_listing_every_days = {every:g})"
            )
        return ""

    def _list_changes(self) -> list[SourceItem] | None:
        """The remembered listing with what changed since applied to it, or
        None when a full listing is needed (the reason goes to the log)."""
        assert self._memory is not None
        memory = self._memory
        cursor = memory.icloud_cursor(self.id)
        why = self._full_listing_due(cursor)
        libraries = self._libraries() if not why else {}
        if cursor is not None and not why and set(libraries) != set(cursor.tokens):
            why = "the zones to read changed since the last listing"
        if why or cursor is None:
            NOTE.info("%s: full listing: %s", self.id, why)
            return None
        rows = {r.asset_id: r for r in memory.icloud_listing(self.id)}
        kept: dict[str, SourceItem] = {}
        #: Record ids of the albums remembered for each (hidden) asset.
        album_ids: dict[str, tuple[str, ...]] = {}
        try:
            for r in rows.values():
                if r.item:
                    kept[r.asset_id], ids = decode_row(self.id, r.item)
                    if ids is None:
                        raise ValueError("a row of an older format")
                    album_ids[r.asset_id] = ids
        except (ValueError, TypeError) as e:
            NOTE.info("%s: full listing: the remembered listing cannot be read (%s)", self.id, e)
            return None
        of_master: dict[str, list[str]] = defaultdict(list)
        for r in rows.values():
            of_master[r.master_id].append(r.asset_id)
        changes: dict[str, Changes] = {}
        tokens: dict[str, str] = {}
        for zone, library in libraries.items():
            found = changes[zone] = Changes()
            try:
                for event in library.iter_changes(since=cursor.tokens[zone]):
                    found.add(
                        name=event.record_name,
                        record_type=event.record_type,
                        tombstone=event.kind == "deleted",
                        known_assets=rows,
                        assets_of_master=of_master,
                    )
            except (PyiCloudException, requests.RequestException) as e:
                error = self._error(e, f"reading the changes of {zone}")
                if isinstance(error, LoginRequiredError) or error.transient:
                    raise error from e
                NOTE.info(
                    "%s: full listing: iCloud refused the sync token of %s (%s)",
                    self.id,
                    zone,
                    ", ".join(sorted(_zone_error_codes(e))) or error,
                )
                return None
            tokens[zone] = library.current_sync_token or cursor.tokens[zone]
        zone_ids = {zone: dict(lib.zone_id) for zone, lib in libraries.items()}
        touched: list[ListingRow] = []
        gone: list[str] = []
        last = max((r.pos for r in rows.values()), default=-1)
        # Album memberships are read again for an asset new to the listing
        # (one restored from Recently Deleted keeps relations the feed does not
        # name again) and for one hidden or shown (albums leave hidden assets out).
        regroup = False
        # A hidden asset whose albums an earlier run could not read: read them.
        retry = any(i.metadata and i.metadata.unremovable == ALBUMS_UNREAD for i in kept.values())
        reread: set[str] = set()
        for zone, found in changes.items():
            reread.update(found.assets)
            masters = {n: rows[n].master_id for n in found.assets if n in rows}
            looked = self._look_up(sorted(found.assets), masters, zone_ids[zone])
            for name, located in looked.items():
                old = rows.pop(name, None)
                before = kept.pop(name, None)
                if located is None or not _listed(located):
                    if old is not None:
                        gone.append(name)
                    continue
                member_of = before.metadata.albums if before and before.metadata else ()
                item = self._to_item(located.asset, {name: member_of})
                if old is None or _hidden(before) != _hidden(item):
                    regroup = True
                if old is None:
                    last += 1
                pos = old.pos if old is not None else last
                ids = album_ids.get(name, ()) if _hidden(item) else ()
                row = ListingRow(
                    name, located.asset.master_id, zone, pos, encode(item, ids) if item else None
                )
                rows[name] = row
                touched.append(row)
                if item is not None:
                    kept[name] = item
                    self._seen[item.key] = located
        wanted = regroup or retry or any(c.albums for c in changes.values())
        read: Memberships | None = None
        if wanted:
            read = self._memberships(_hidden_known(kept, rows, album_ids, reread, changes))
        items: list[SourceItem] = []
        for r in sorted(rows.values(), key=lambda r: r.pos):
            item = kept.get(r.asset_id)
            if item is None:
                continue
            if read is not None and item.metadata is not None:
                unread = r.asset_id in read.unread
                why = ALBUMS_UNREAD if unread else ""
                # Not read: the albums remembered stand until they are.
                member_of = item.metadata.albums if unread else read.albums(r.asset_id)
                had = album_ids.get(r.asset_id, ())
                ids = had if unread else read.ids(r.asset_id) if _hidden(item) else ()
                if (item.metadata.albums, item.metadata.unremovable, had) != (
                    member_of,
                    why,
                    ids,
                ):
                    meta = attrs.evolve(item.metadata, albums=member_of, unremovable=why)
                    item = item._replace(metadata=meta)
                    touched.append(r._replace(item=encode(item, ids)))
            items.append(item)
            self._zone_of[item.key] = zone_ids[r.zone]
        mismatch = self._count_mismatch(r.zone for r in rows.values())
        if mismatch:
            NOTE.info("%s: full listing: %s", self.id, mismatch)
            return None
        memory.save_icloud_listing(
            self.id,
            account=self.username,
            tokens=tokens,
            full_at=cursor.full_at,
            rows=touched,
            gone=gone,
            replace=False,
        )
        NOTE.info(
            "%s: read %d changed records since the last listing: %d assets re-read, "
            "%d gone%s; %d items",
            self.id,
            sum(c.records for c in changes.values()),
            sum(len(c.assets) for c in changes.values()),
            len(gone),
            ", album memberships read again" if read is not None else "",
            len(items),
        )
        return items

    def _read_through(
        self, libraries: Mapping[str, Any], tokens: Mapping[str, str], listed: dict[str, Located]
    ) -> set[str]:
        """Bring a full listing (``listed``: asset id -> the asset as read)
        up to date with what changed while it ran: a listing of many
        requests is no snapshot. Each library's change feed since the
        ``tokens`` read before it names every asset changed since; each is
        looked up as it is now and replaces what was read (added, if it was
        read nowhere: one shown between the read of the Hidden album and
        of "All Photos"; dropped, if deleted). Returns the ids looked up.
        A feed that cannot be read fails the listing."""
        changed: set[str] = set()
        for zone, library in libraries.items():
            try:
                events = list(library.iter_changes(since=tokens[zone]))
            except (PyiCloudException, requests.RequestException) as e:
                subject = f"reading what changed in {zone} while it was listed"
                raise self._error(e, subject) from e
            if not events:
                continue
            known = {i: a for i, a in listed.items() if a.zone_id["zoneName"] == zone}
            of_master: dict[str, list[str]] = defaultdict(list)
            for asset_id, read in known.items():
                of_master[read.asset.master_id].append(asset_id)
            found = Changes()
            for event in events:
                found.add(
                    name=event.record_name,
                    record_type=event.record_type,
                    tombstone=event.kind == "deleted",
                    known_assets=known,
                    assets_of_master=of_master,
                )
            names = sorted(found.assets)
            masters = {n: known[n].asset.master_id for n in names if n in known}
            for name, now in self._look_up(names, masters, dict(library.zone_id)).items():
                if now is not None and _listed(now):
                    listed[name] = now
                elif name in known:
                    del listed[name]
            changed.update(names)
        return changed

    def _look_up(
        self, names: list[str], masters: Mapping[str, str], zone_id: dict[str, str]
    ) -> dict[str, Located | None]:
        """Each asset named, as it is now (None: no longer there);
        ``masters``: the master each pointed at when last read, looked up
        with it (one round trip fewer)."""
        records = self._records([*names, *(masters[n] for n in names if n in masters)], zone_id)
        repointed = {
            ref
            for n in names
            if (ref := master_of(records.get(n))) is not None and ref not in records
        }
        records.update(self._records(sorted(repointed), zone_id))
        photos = self._service()
        out: dict[str, Located | None] = {}
        for name in names:
            asset = records.get(name)
            master = records.get(master_of(asset) or "")
            if asset is None or master is None:
                out[name] = None
                continue
            out[name] = Located(PhotoAsset(photos, master, asset), zone_id)
        return out

    def _records(self, names: list[str], zone_id: dict[str, str]) -> dict[str, CKRecord]:
        """Records by name (a name not there is left out); ``look_up``."""
        return look_up(self._service().private_client, names, zone_id)

    def _count_mismatch(self, zones: Iterable[str]) -> str:
        """Where iCloud's own counts disagree with the listing ("": nowhere);
        ``zones``: the zone name of each asset listed."""
        ours: dict[str, int] = defaultdict(int)
        for zone in zones:
            ours[zone] += 1
        theirs: dict[str, int] = defaultdict(int)
        for album, zone_id in self._zones():
            # Counted now: pyicloud keeps the count an album's listing read
            # (``_len``, before its first page), which the library changing
            # since would make disagree with the listing for nothing.
            album._len = None
            theirs[zone_id["zoneName"]] += len(album)
        for zone in sorted(set(ours) | set(theirs)):
            if ours[zone] != theirs[zone]:
                return (
                    f"iCloud counts {theirs[zone]} assets in {zone}, the listing "
                    f"with its changes {ours[zone]}"
                )
        return ""


def _hidden_known(
    kept: Mapping[str, SourceItem],
    rows: Mapping[str, ListingRow],
    album_ids: Mapping[str, tuple[str, ...]],
    reread: set[str],
    changes: Mapping[str, Changes],
) -> HiddenKnown:
    """What the listing with its changes knows of its assets' albums, for
    ``_memberships`` to look up only what may have changed. Albums live in
    the personal library alone: a Shared Library's assets are in none."""
    hidden: dict[str, tuple[str, ...] | None] = {}
    shown: dict[str, tuple[str, ...]] = {}
    primary = PRIMARY_ZONE["zoneName"]
    for name, item in kept.items():
        meta = item.metadata
        if meta is None or rows[name].zone != primary:
            continue
        if meta.hidden:
            redo = name in reread or meta.unremovable == ALBUMS_UNREAD
            hidden[name] = None if redo else album_ids.get(name, ())
        elif meta.albums:
            shown[name] = meta.albums
    return HiddenKnown(
        albums=hidden,
        album_ids=frozenset(i for c in changes.values() for i in c.album_ids),
        relations=frozenset(p for c in changes.values() for p in c.relations),
        shown=shown,
    )


def look_up(client: Any, names: Iterable[str], zone_id: dict[str, str]) -> dict[str, CKRecord]:
    """The records named, by name, looked up in batches; a name CloudKit
    says is not there (NOT_FOUND, or a tombstone) is left out. Every lookup
    of the provider goes through here.

    CloudKit answers a lookup record by record, in an HTTP 200: a record it
    cannot serve now comes back as an error item (INTERNAL_ERROR,
    TRY_AGAIN_LATER, ZONE_BUSY…) in its place, which pyicloud passes on as
    it is. Such an item says nothing about the record, so it fails the
    lookup exactly as a failed request would: raised as pyicloud's
    ``CloudKitApiError`` carrying the error items, which ``errors.classify``
    reads like any other. A name the answer leaves out is unknown too.
    Taken for "not there", it would make an asset iCloud could not read
    look removed, and an album membership look absent."""
    wanted = list(dict.fromkeys(names))
    found: dict[str, CKRecord] = {}
    for i in range(0, len(wanted), LOOKUP_BATCH):
        batch = wanted[i : i + LOOKUP_BATCH]
        answer = client.lookup(record_names=batch, zone_id=CKZoneIDReq(**zone_id))
        failed: list[dict[str, Any]] = []
        answered: set[str] = set()
        for record in answer.records:
            name = getattr(record, "recordName", None)
            if isinstance(record, CKErrorItem) and record.serverErrorCode not in ABSENT_CODES:
                failed.append(record.model_dump(mode="json", exclude_none=True))
            elif isinstance(record, CKRecord) and name is not None:
                found[name] = record
            if isinstance(name, str):
                answered.add(name)
        failed.extend(
            {"recordName": name, "serverErrorCode": "MISSING", "reason": "not in the answer"}
            for name in batch
            if name not in answered
        )
        if failed:
            detail = "; ".join(
                f"{e.get('recordName')}: {e['serverErrorCode']}"
                + (f" ({e['reason']})" if e.get("reason") else "")
                for e in failed
            )
            raise CloudKitApiError(
                f"CloudKit could not read {len(failed)} record(s) -- {detail}",
                payload={"records": failed},
            )
    return found


def shared_libraries(photos: Any) -> list[Any]:
    """The Shared Library zones pyicloud found (``shared:SharedSync-…``).
    Reading ``libraries`` discovers zones (two more requests): callers ask
    only when Shared Library items are wanted."""
    return [
        library
        for key, library in photos.libraries.items()
        if key.startswith("shared:") and hasattr(library, "zone_id")
    ]


def fresh_token(library: Any) -> str:
    """The library's sync token, asked for now (not one cached earlier)."""
    library.current_sync_token = None
    return str(library.sync_cursor())


def _zone_error_codes(exc: BaseException) -> set[str]:
    """CloudKit's codes for a zone's failure in a ``changes/zone`` answer."""
    payload = getattr(exc, "payload", None)
    zones = payload.get("zones") if isinstance(payload, dict) else None
    return {
        z["serverErrorCode"]
        for z in zones or []
        if isinstance(z, dict) and isinstance(z.get("serverErrorCode"), str)
    } | server_error_codes(exc)


def _hidden(item: SourceItem | None) -> bool:
    return bool(item is not None and item.metadata is not None and item.metadata.hidden)


def master_of(record: CKRecord | None) -> str | None:
    """The master record name a CPLAsset points at (None: not an asset)."""
    if record is None or record.recordType != "CPLAsset":
        return None
    ref = record.fields.get_value(MASTER_REF)
    name = getattr(ref, "recordName", None)
    if name is None and isinstance(ref, dict):
        name = ref.get("recordName")
    return str(name) if name else None


def _listed(located: Located) -> bool:
    """Whether a full listing would list the asset: not deleted. Hidden
    assets are listed in every zone read (its Hidden album is read too)."""
    fields = located.asset.asset_record.fields
    return not (fields.get_value(DELETED) or fields.get_value(EXPUNGED))
