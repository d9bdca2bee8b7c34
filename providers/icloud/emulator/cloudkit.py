"""CloudKit database endpoints of the emulator: query, count, lookup,
modify, zones and zone changes, answered from the account's zones.

Pages follow Photos' indexes: ``startRank`` and ``direction`` select a window
of assets ordered by capture date, each sent as a (CPLMaster, CPLAsset) pair.
A modify checks ``recordChangeTag`` (stale: CONFLICT) and, when ``atomic``,
applies all operations or none.
"""

from __future__ import annotations

from typing import Any

from providers.icloud.emulator import records
from providers.icloud.emulator.store import Account, EmulatedAsset, Zone

JSON = dict[str, Any]


class CloudKitDatabase:
    """The CloudKit handlers, mixed into ``EmulatorServer``; callers hold
    ``account.lock``."""

    account: Account
    url_generation: int

    def _zone(self, body: JSON) -> Zone | None:
        name = (body.get("zoneID") or {}).get("zoneName", "PrimarySync")
        return self.account.zones.get(name)

    def _sync_token(self) -> str:
        return f"HwoECJGm{self.account.current_serial():08d}"

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
            found = []
            if not filters.get("parentId"):
                albums = [a for a in zone.albums.values() if not a.deleted]
                found = [records.album_record(zone, a, i + 1) for i, a in enumerate(albums)]
        elif record_type.startswith("CPL"):
            view = self._view(zone, record_type, filters)
            if "recordName" in filters:
                view = [a for a in view if a.asset_id == filters["recordName"]]
            page = _window(view, filters, max(1, limit // 2))
            found = records.pairs(zone, page, self.url_generation)
        else:
            found = []
        return {"records": found, "syncToken": self._sync_token()}

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

    def _lookup(self, body: JSON) -> JSON | None:
        zone = self._zone(body)
        if zone is None:
            return None
        found: list[JSON] = []
        for wanted in body.get("records", []):
            name = str(wanted.get("recordName", ""))
            if name in zone.assets:
                found.append(records.asset_record(zone, zone.assets[name]))
            elif name in zone.masters:
                found.append(records.master_record(zone, zone.masters[name], self.url_generation))
            else:
                found.append(records.error_item(name, "NOT_FOUND", "Record not found"))
        return {"records": found, "syncToken": self._sync_token()}

    def _modify(self, body: JSON, *, conflict: bool) -> JSON | None:
        zone = self._zone(body)
        if zone is None:
            return None
        operations = body.get("operations", [])
        errors: dict[int, JSON] = {}
        targets: list[EmulatedAsset | None] = []
        for i, op in enumerate(operations):
            record = op.get("record", {})
            name = str(record.get("recordName", ""))
            asset = zone.assets.get(name)
            targets.append(asset)
            if op.get("operationType") not in ("update", "forceUpdate"):
                errors[i] = records.error_item(name, "BAD_REQUEST", "operation not supported")
            elif asset is None:
                errors[i] = records.error_item(name, "NOT_FOUND", "Record not found")
            elif conflict or (
                op.get("operationType") == "update"
                and record.get("recordChangeTag") != asset.change_tag
            ):
                errors[i] = {
                    **records.error_item(name, "CONFLICT", "oplock error"),
                    "serverRecord": records.asset_record(zone, asset),
                }
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
            return {"records": out, "syncToken": self._sync_token()}
        out = []
        for i, (op, asset) in enumerate(zip(operations, targets, strict=True)):
            if i in errors or asset is None:
                out.append(errors[i])
                continue
            fields = {k: (v or {}).get("value") for k, v in op["record"].get("fields", {}).items()}
            self.account.update_asset(asset, fields)
            out.append(records.asset_record(zone, asset))
        return {"records": out, "syncToken": self._sync_token()}

    def _zones(self, database: str) -> JSON:
        zones = [z for z in self.account.zones.values() if z.database == database]
        return {
            "zones": [
                {"zoneID": z.zone_id, "syncToken": self._sync_token(), "atomic": True}
                for z in zones
            ]
        }

    def _changes(self, body: JSON) -> JSON | None:
        out = []
        limit = int(body.get("resultsLimit") or 200)
        for wanted in body.get("zones", []):
            zone = self._zone(wanted)
            if zone is None:
                return None
            token = str(wanted.get("syncToken") or "")
            since = int(token[-8:]) if token[-8:].isdigit() else 0
            names: list[str] = []
            last = since
            for serial, name in zone.changes:
                if serial <= since:
                    continue
                if name not in names:
                    names.append(name)
                last = serial
                if len(names) >= limit:
                    break
            more = bool(zone.changes) and last < zone.changes[-1][0]
            found = []
            for name in names:
                if name in zone.assets:
                    found.append(records.asset_record(zone, zone.assets[name]))
                elif name in zone.masters:
                    found.append(
                        records.master_record(zone, zone.masters[name], self.url_generation)
                    )
            out.append(
                {
                    "zoneID": zone.zone_id,
                    "records": found,
                    "moreComing": more,
                    "syncToken": f"HwoECJGm{last:08d}",
                }
            )
        return {"zones": out}


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
