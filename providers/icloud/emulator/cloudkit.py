"""CloudKit database endpoints of the emulator: query, count, lookup,
modify, zones and zone changes, answered from the account's zones.

``changes/zone`` answers what changed since a sync token: the current record
of each changed name, or a tombstone (``{"recordName", "deleted": true}``)
for one that no longer exists, ``resultsLimit`` names a page with
``moreComing``. A token names its account, zone and serial; one of another
account or zone is refused (``BAD_REQUEST``), and one older than the server's
horizon, or issued before ``expire_sync_tokens()``, is
``CHANGE_TOKEN_EXPIRED``: both as CloudKit reports a zone's failure, in place
of that zone's results in a 200 answer.

Every answer carrying records honours the request's ``desiredKeys`` (a
``changes/zone`` request's, zone by zone) as CloudKit does: a record
carries only the fields named, its envelope whole; no ``desiredKeys``, every
field. Each request's list is kept (``desired_keys``) for tests to read.

Pages follow Photos' indexes: ``startRank`` and ``direction`` select a window
of assets ordered by capture date, each sent as a (CPLMaster, CPLAsset) pair.
A modify updates CPLAsset records (checking ``recordChangeTag``: stale is
CONFLICT) and creates CPLAlbum and CPLContainerRelation records (an existing
record name is EXISTS, CloudKit's answer to a create of a record that is
already there); when ``atomic``, it applies all operations or none.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable
from typing import Any

from providers.icloud.emulator import records
from providers.icloud.emulator.faults import Fault
from providers.icloud.emulator.store import Account, EmulatedAsset, Zone, relation_name

JSON = dict[str, Any]
#: A validated operation, waiting to be applied; returns the saved record.
Apply = Callable[[], JSON]


class CloudKitDatabase:
    """The CloudKit handlers, mixed into ``EmulatorServer``; callers hold
    ``account.lock``."""

    account: Account
    url_generation: int
    #: Tokens issued before the last ``expire_sync_tokens()`` carry an older epoch.
    token_epoch: int
    #: How many changes a token may lag behind before it expires (None: never).
    token_horizon: int | None
    #: Names per ``changes/zone`` page when the request sets no ``resultsLimit``.
    changes_page_size: int
    #: Every record name looked up, in order (tests count what a run asks).
    looked_up: list[str]
    #: (route, desiredKeys) of every request answered with records, in
    #: order (None: the request named none, so it got every field).
    desired_keys: list[tuple[str, list[str] | None]]

    def _desired(self, route: str, body: JSON) -> list[str] | None:
        """The fields a request (or a ``changes/zone`` zone entry) asks for."""
        keys = body.get("desiredKeys")
        wanted = [str(k) for k in keys] if isinstance(keys, list) else None
        self.desired_keys.append((route, wanted))
        return wanted

    def _zone(self, body: JSON) -> Zone | None:
        name = (body.get("zoneID") or {}).get("zoneName", "PrimarySync")
        return self.account.zones.get(name)

    def _sync_token(self, zone: Zone | None = None, serial: int | None = None) -> str:
        """An opaque token naming the account, the zone, the epoch and a serial."""
        zone_name = zone.name if zone is not None else "PrimarySync"
        at = self.account.current_serial() if serial is None else serial
        raw = f"{self.account.dsid}|{zone_name}|{self.token_epoch}|{at}"
        return "HwoE" + base64.urlsafe_b64encode(raw.encode()).decode()

    def _token_serial(self, zone: Zone, token: str) -> int | JSON:
        """The serial ``token`` stands for, or the zone error refusing it."""
        try:
            raw = base64.urlsafe_b64decode(token.removeprefix("HwoE").encode()).decode()
            dsid, zone_name, epoch, serial = raw.split("|")
            at = int(serial)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return _zone_error(zone, "BAD_REQUEST", "Unknown sync continuation type")
        if dsid != self.account.dsid or zone_name != zone.name:
            return _zone_error(zone, "BAD_REQUEST", "sync token is not for this zone")
        latest = self.account.current_serial()
        if int(epoch) != self.token_epoch or (
            self.token_horizon is not None and latest - at > self.token_horizon
        ):
            return _zone_error(zone, "CHANGE_TOKEN_EXPIRED", "sync token expired")
        return at

    def _query(self, body: JSON) -> JSON | None:
        zone = self._zone(body)
        if zone is None:
            return None
        query = body.get("query", {})
        record_type = query.get("recordType", "")
        filters = {
            f.get("fieldName"): (f.get("fieldValue") or {}).get("value")
            for f in query.get("filterBy") or []
        }
        limit = int(body.get("resultsLimit") or 200)
        found: list[JSON]
        if record_type == "CheckIndexingState":
            found = [
                {
                    "recordName": "_indexing",
                    "recordType": "CheckIndexingState",
                    "fields": {
                        "state": {"type": "STRING", "value": "FINISHED"},
                        "progress": {"type": "INT64", "value": 100},
                    },
                }
            ]
        elif record_type == "CPLAlbumByPositionLive":
            # Top-level albums without ``parentId``, a folder's with it.
            parent = filters.get("parentId") or None
            albums = [a for a in zone.albums.values() if not a.deleted and a.parent_id == parent]
            albums.sort(key=lambda a: records.album_position(zone, a))
            found = [records.album_record(zone, a) for a in albums]
        elif record_type.startswith("CPL"):
            view = self._view(zone, record_type, filters)
            if "recordName" in filters:
                view = [a for a in view if a.asset_id == filters["recordName"]]
            page = _window(view, filters, max(1, limit // 2))
            found = records.pairs(zone, page, self.url_generation)
        else:
            found = []
        keys = self._desired("query", body)
        return {
            "records": [records.projected(r, keys) for r in found],
            "syncToken": self._sync_token(zone),
        }

    def _view(self, zone: Zone, record_type: str, filters: dict[str, Any]) -> list[EmulatedAsset]:
        everything = zone.by_date()
        live = [a for a in everything if not a.deleted and not a.hidden]
        if record_type == "CPLAssetAndMasterDeletedByExpungedDate":
            return sorted((a for a in everything if a.deleted), key=lambda a: a.deleted_at_ms)
        if record_type == "CPLAssetAndMasterHiddenByAssetDate":
            return [a for a in everything if a.hidden and not a.deleted]
        if record_type == "CPLAssetAndMasterInSmartAlbumByAssetDate":
            return [a for a in live if _smart(a, str(filters.get("smartAlbum", "")))]
        if record_type.startswith("CPLContainerRelation"):
            album = zone.albums.get(str(filters.get("parentId", "")))
            members = set(album.asset_ids) if album is not None else set()
            return [a for a in live if a.asset_id in members]
        if record_type in (
            "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted",
            "CPLAssetAndMasterByAddedDate",
        ):
            return live
        return []

    def _count(self, body: JSON) -> JSON:
        out = []
        for entry in body.get("batch", []):
            zone = self._zone(entry)
            ids = ((entry.get("query") or {}).get("filterBy") or {}).get("fieldValue", {})
            counted = [
                self._count_one(zone, str(i)) if zone is not None else 0
                for i in ids.get("value", [])
            ]
            out.append(
                {
                    "records": [
                        {
                            "recordName": f"HyperionIndexCountLookup-{n}",
                            "recordType": "HyperionIndexCountLookup",
                            "fields": {"itemCount": {"type": "INT64", "value": n}},
                        }
                        for n in counted
                    ]
                }
            )
        return {"batch": out}

    def _count_one(self, zone: Zone, index: str) -> int:
        everything = zone.by_date()
        live = [a for a in everything if not a.deleted and not a.hidden]
        if index == "CPLAssetByAssetDateWithoutHiddenOrDeleted":
            return len(live)
        if index == "CPLAssetDeletedByExpungedDate":
            return sum(a.deleted for a in everything)
        if index == "CPLAssetHiddenByAssetDate":
            return sum(a.hidden and not a.deleted for a in everything)
        if index.startswith("CPLAssetInSmartAlbumByAssetDate:"):
            kind = index.split(":", 1)[1].upper()
            return sum(_smart(a, kind) for a in live)
        if index.startswith("CPLContainerRelationNotDeletedByAssetDate:"):
            album = zone.albums.get(index.split(":", 1)[1])
            members = set(album.asset_ids) if album is not None else set()
            return sum(a.asset_id in members for a in live)
        return 0

    def _lookup(self, body: JSON, fault: Fault | None = None) -> JSON | None:
        """Each record named, or its error item: NOT_FOUND, or the fault's
        code (``Fault.record_error``) for a record it names."""
        zone = self._zone(body)
        if zone is None:
            return None
        keys = self._desired("lookup", body)
        found: list[JSON] = []
        for wanted in body.get("records", []):
            name = str(wanted.get("recordName", ""))
            self.looked_up.append(name)
            if fault is not None and fault.fails_record(name):
                found.append(records.error_item(name, fault.record_error, "try again later"))
                continue
            record = records.any_record(zone, name, self.url_generation)
            found.append(
                records.projected(record, keys)
                if record is not None
                else records.error_item(name, "NOT_FOUND", "Record not found")
            )
        return {"records": found, "syncToken": self._sync_token(zone)}

    def _modify(self, body: JSON, *, conflict: bool) -> JSON | None:
        zone = self._zone(body)
        if zone is None:
            return None
        operations = body.get("operations", [])
        errors: dict[int, JSON] = {}
        plans: dict[int, Apply] = {}
        # Names created earlier in this batch: a second create of one is EXISTS.
        claimed: set[str] = set()
        for i, op in enumerate(operations):
            planned = self._plan(zone, op, conflict=conflict, claimed=claimed)
            if isinstance(planned, dict):
                errors[i] = planned
            else:
                plans[i] = planned
        if errors and body.get("atomic"):
            out = [
                errors.get(i)
                or records.error_item(
                    str(op.get("record", {}).get("recordName", "")),
                    "ATOMIC_ERROR",
                    "atomic batch failed",
                )
                for i, op in enumerate(operations)
            ]
            return {"records": out, "syncToken": self._sync_token(zone)}
        keys = self._desired("modify", body)
        out = [
            errors[i] if i in errors else records.projected(plans[i](), keys)
            for i in range(len(operations))
        ]
        return {"records": out, "syncToken": self._sync_token(zone)}

    def _plan(self, zone: Zone, op: JSON, *, conflict: bool, claimed: set[str]) -> JSON | Apply:
        """An error item for ``op``, or the function that applies it: every
        operation of a batch is checked before any is applied."""
        kind = op.get("operationType")
        record = op.get("record") or {}
        name = str(record.get("recordName") or "")
        fields = {k: (v or {}).get("value") for k, v in (record.get("fields") or {}).items()}
        if kind == "create":
            return self._plan_create(zone, record, name, fields, conflict=conflict, claimed=claimed)
        if kind not in ("update", "forceUpdate"):
            return records.error_item(name, "BAD_REQUEST", "operation not supported")
        asset = zone.assets.get(name)
        if asset is None:
            return records.error_item(name, "NOT_FOUND", "Record not found")
        if conflict or (kind == "update" and record.get("recordChangeTag") != asset.change_tag):
            return {
                **records.error_item(name, "CONFLICT", "oplock error"),
                "serverRecord": records.asset_record(zone, asset, self.url_generation),
            }

        def update() -> JSON:
            self.account.update_asset(asset, fields)
            return records.asset_record(zone, asset, self.url_generation)

        return update

    def _plan_create(
        self,
        zone: Zone,
        record: JSON,
        name: str,
        fields: dict[str, Any],
        *,
        conflict: bool,
        claimed: set[str],
    ) -> JSON | Apply:
        record_type = record.get("recordType")
        if record_type == "CPLContainerRelation" and not name:
            name = relation_name(str(fields.get("itemId")), str(fields.get("containerId")))
        if conflict:
            return records.error_item(name, "CONFLICT", "oplock error")
        if name and (
            name in claimed or records.any_record(zone, name, self.url_generation) is not None
        ):
            return records.error_item(name, "EXISTS", "record to insert already exists")
        if record_type == "CPLAlbum":
            return self._plan_album(zone, name, fields, claimed)
        if record_type == "CPLContainerRelation":
            return self._plan_relation(zone, name, fields, claimed)
        return records.error_item(name, "BAD_REQUEST", f"cannot create {record_type!r} records")

    def _plan_album(
        self, zone: Zone, name: str, fields: dict[str, Any], claimed: set[str]
    ) -> JSON | Apply:
        encoded = fields.get("albumNameEnc")
        try:
            album_name = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            album_name = ""
        if encoded is None or not album_name:
            return records.error_item(name, "BAD_REQUEST", "albumNameEnc must be base64 text")
        parent = fields.get("parentId")
        if parent is not None and str(parent) not in zone.albums:
            return records.error_item(name, "BAD_REQUEST", "parentId names no album")
        try:
            album_type = int(fields.get("albumType") or 0)
            raw_position = fields.get("position")
            position = int(raw_position) if raw_position is not None else None
            sort_ascending = int(fields.get("sortAscending", 1))
            sort_type = int(fields.get("sortType") or 0)
        except (TypeError, ValueError):
            return records.error_item(name, "BAD_REQUEST", "album fields must be integers")
        # A create without a record name gets one from the server, as in CloudKit.
        album_id = name or self.account.new_record_name()
        claimed.add(album_id)

        def create() -> JSON:
            album = self.account.create_album(
                album_name,
                zone=zone.name,
                album_id=album_id,
                album_type=album_type,
                position=position,
                parent_id=str(parent) if parent is not None else None,
                sort_ascending=sort_ascending,
                sort_type=sort_type,
            )
            return records.album_record(zone, album)

        return create

    def _plan_relation(
        self, zone: Zone, name: str, fields: dict[str, Any], claimed: set[str]
    ) -> JSON | Apply:
        item_id = str(fields.get("itemId") or "")
        album = zone.albums.get(str(fields.get("containerId") or ""))
        if item_id not in zone.assets:
            return records.error_item(name, "BAD_REQUEST", "itemId names no asset of this zone")
        if album is None or album.deleted:
            return records.error_item(name, "BAD_REQUEST", "containerId names no album")
        try:
            position = int(fields.get("position") or 0)
        except (TypeError, ValueError):
            return records.error_item(name, "BAD_REQUEST", "position must be an integer")
        claimed.add(name)

        def create() -> JSON:
            relation = self.account.add_to_album(
                album, item_id, record_name=name, position=position
            )
            return records.relation_record(zone, relation)

        return create

    def _zones(self, database: str) -> JSON:
        zones = [z for z in self.account.zones.values() if z.database == database]
        return {
            "zones": [
                {"zoneID": z.zone_id, "syncToken": self._sync_token(z), "atomic": True}
                for z in zones
            ]
        }

    def _changes(self, body: JSON) -> JSON | None:
        out: list[JSON] = []
        limit = max(1, int(body.get("resultsLimit") or self.changes_page_size))
        for wanted in body.get("zones", []):
            zone = self._zone(wanted)
            if zone is None:
                return None
            token = wanted.get("syncToken")
            since = self._token_serial(zone, str(token)) if token else 0
            if isinstance(since, dict):
                out.append(since)
                continue
            # The change log is in serial order: start after the token's serial.
            start = bisect.bisect_right(zone.changes, since, key=lambda change: change[0])
            names: dict[str, None] = {}
            last = since
            for serial, name in zone.changes[start:]:
                if name not in names and len(names) >= limit:
                    break
                names[name] = None
                last = serial
            more = bool(zone.changes) and last < zone.changes[-1][0]
            keys = self._desired("changes", wanted)
            found = [
                records.projected(record, keys)
                if (record := records.any_record(zone, name, self.url_generation)) is not None
                else {"recordName": name, "deleted": True, "zoneID": zone.zone_id}
                for name in names
            ]
            out.append(
                {
                    "zoneID": zone.zone_id,
                    "records": found,
                    "moreComing": more,
                    "syncToken": self._sync_token(zone, last),
                }
            )
        return {"zones": out}


def _zone_error(zone: Zone, code: str, reason: str) -> JSON:
    """A zone's failure in a ``changes/zone`` answer (in place of its results)."""
    return {"zoneID": zone.zone_id, "serverErrorCode": code, "reason": reason}


def _smart(asset: EmulatedAsset, kind: str) -> bool:
    if kind == "LIVE":
        return asset.is_live
    if kind == "VIDEO":
        return asset.is_video
    if kind == "FAVORITE":
        return asset.favorite
    return False


def _window(view: list[EmulatedAsset], filters: dict[str, Any], count: int) -> list[EmulatedAsset]:
    """A page of an index from ``startRank``: upward, or downward (newest first)."""
    if not view:
        return []
    rank = int(filters.get("startRank") or 0)
    if filters.get("direction") == "DESCENDING":
        rank = min(rank, len(view) - 1)
        low = max(0, rank - count + 1)
        return list(reversed(view[low : rank + 1]))
    return view[rank : rank + count]
