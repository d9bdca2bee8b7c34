"""CloudKit record JSON for the emulated store, in the shapes pyicloud validates.

pyicloud parses every record with pydantic (``CKRecord`` and its typed field
wrappers), so a field with the wrong ``type`` tag fails loudly in the client:
that keeps the emulator honest. ``filenameEnc`` is ENCRYPTED_BYTES holding
base64 text, as Apple sends it (pyicloud then decodes it a second time, which
mangles names that are themselves valid base64, like the real service does).
"""

from __future__ import annotations

import base64
import hashlib
import plistlib
from typing import Any
from urllib.parse import quote

from providers.icloud.emulator.store import (
    LIVE_VIDEO_UTI,
    OWNER_RECORD_NAME,
    SIDECAR_UTI,
    UTI_BY_EXTENSION,
    VIDEO_UTIS,
    Blob,
    EmulatedAlbum,
    EmulatedAsset,
    EmulatedMaster,
    EmulatedRelation,
    Zone,
)

DOWNLOAD_HOST = "cvws.icloud-content.com"
JSON = dict[str, Any]


def _audit(ms: int) -> JSON:
    return {"timestamp": ms, "userRecordName": OWNER_RECORD_NAME, "deviceID": "2"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _plist_field(value: list[Any] | dict[str, Any]) -> JSON:
    """A binary plist as Photos stores keywords and locations: ENCRYPTED_BYTES
    whose bytes are base64 text (pyicloud decodes that second layer)."""
    data = base64.b64encode(plistlib.dumps(value, fmt=plistlib.FMT_BINARY))
    return {"type": "ENCRYPTED_BYTES", "value": base64.b64encode(data).decode("ascii")}


def _stem(filename: str) -> str:
    stem, dot, _ = filename.rpartition(".")
    return stem if dot and stem else filename


def _extension_for(uti: str) -> str:
    for ext, known in UTI_BY_EXTENSION.items():
        if known == uti:
            return ext.upper()
    return ".DAT"


def _resource(prefix: str, uti: str, blob: Blob, url: str) -> JSON:
    """The fields of one resource (``<prefix>Res``, ``FileType``, ``Fingerprint``…)."""
    return {
        f"{prefix}FileType": {"type": "STRING", "value": uti},
        f"{prefix}Width": {"type": "INT64", "value": 4032},
        f"{prefix}Height": {"type": "INT64", "value": 3024},
        f"{prefix}Fingerprint": {"type": "STRING", "value": blob.sha256[:28]},
        f"{prefix}Res": _asset_token(blob, url),
    }


def download_url(zone: str, master_id: str, resource: str, generation: int, filename: str) -> str:
    """A content URL; ``generation`` lets the server expire every URL at once."""
    token = base64.urlsafe_b64encode(
        f"{zone}|{master_id}|{resource}|{generation}".encode()
    ).decode()
    signature = hashlib.sha256(token.encode()).hexdigest()[:16]
    # A "/" in a name, or a name of dots only, must not become a path
    # segment (a client would normalise it away).
    name = quote(filename, safe="")
    if set(filename) <= {"."}:
        name = name.replace(".", "%2E")
    return f"https://{DOWNLOAD_HOST}/B/{token}/{name}?o={signature}&v=1&x=3"


def parse_download_token(token: str) -> tuple[str, str, str, int] | None:
    try:
        zone, master_id, resource, generation = (
            base64.urlsafe_b64decode(token.encode()).decode().split("|")
        )
        return zone, master_id, resource, int(generation)
    except (ValueError, UnicodeDecodeError):
        return None


def _asset_token(blob: Blob, url: str) -> JSON:
    # Apple's checksum is opaque (not a plain hash of the bytes); emulate that
    # by salting it, so no client is tempted to verify content against it.
    opaque = hashlib.sha1(b"emulated:" + blob.sha256.encode()).digest()
    return {
        "type": "ASSETID",
        "value": {
            "fileChecksum": base64.b64encode(b"\x01" + opaque).decode(),
            "size": blob.size,
            "wrappingKey": base64.b64encode(hashlib.md5(opaque).digest()).decode(),
            "referenceChecksum": base64.b64encode(b"\x01" + opaque[::-1]).decode(),
            "downloadURL": url,
        },
    }


def master_record(zone: Zone, master: EmulatedMaster, generation: int) -> JSON:
    fields: JSON = {
        "filenameEnc": {"type": "ENCRYPTED_BYTES", "value": _b64(master.filename)},
        "itemType": {"type": "STRING", "value": master.uti},
        "resOriginalFileType": {"type": "STRING", "value": master.uti},
        "resOriginalWidth": {"type": "INT64", "value": master.width},
        "resOriginalHeight": {"type": "INT64", "value": master.height},
        "resOriginalFingerprint": {"type": "STRING", "value": master.original.sha256[:28]},
        "resOriginalRes": _asset_token(
            master.original,
            download_url(zone.name, master.master_id, "original", generation, master.filename),
        ),
        "originalOrientation": {"type": "INT64", "value": 1},
        "dataClassType": {"type": "INT64", "value": 1},
    }
    if master.live_video is not None:
        stem = master.filename.rsplit(".", 1)[0]
        fields.update(
            {
                "resOriginalVidComplFileType": {"type": "STRING", "value": LIVE_VIDEO_UTI},
                "resOriginalVidComplWidth": {"type": "INT64", "value": 1440},
                "resOriginalVidComplHeight": {"type": "INT64", "value": 1080},
                "resOriginalVidComplFingerprint": {
                    "type": "STRING",
                    "value": master.live_video.sha256[:28],
                },
                "resOriginalVidComplRes": _asset_token(
                    master.live_video,
                    download_url(zone.name, master.master_id, "live", generation, f"{stem}.MOV"),
                ),
            }
        )
    stem = _stem(master.filename)
    if master.alternative is not None:
        alt_name = f"{stem}{_extension_for(master.alternative_uti)}"
        url = download_url(zone.name, master.master_id, "alt", generation, alt_name)
        fields.update(_resource("resOriginalAlt", master.alternative_uti, master.alternative, url))
    if master.sidecar is not None:
        url = download_url(zone.name, master.master_id, "sidecar", generation, f"{stem}.AAE")
        fields.update(_resource("resSidecar", SIDECAR_UTI, master.sidecar, url))
    return {
        "recordName": master.master_id,
        "recordType": "CPLMaster",
        "fields": fields,
        "pluginFields": {},
        "recordChangeTag": master.change_tag,
        "created": _audit(1_600_000_000_000),
        "modified": _audit(1_600_000_000_000),
        "deleted": False,
        "zoneID": zone.zone_id,
    }


def _described(asset: EmulatedAsset) -> JSON:
    """What a person typed or set in Photos' info pane."""
    fields: JSON = {}
    if asset.caption is not None:
        fields["captionEnc"] = {"type": "ENCRYPTED_BYTES", "value": _b64(_b64(asset.caption))}
    if asset.description is not None:
        fields["extendedDescEnc"] = {
            "type": "ENCRYPTED_BYTES",
            "value": _b64(_b64(asset.description)),
        }
    if asset.keywords:
        fields["keywordsEnc"] = _plist_field(list(asset.keywords))
    if asset.location is not None:
        lat, lon, alt = asset.location
        fields["locationEnc"] = _plist_field({"lat": lat, "lon": lon, "alt": alt})
    return fields


def asset_record(zone: Zone, asset: EmulatedAsset, generation: int) -> JSON:
    fields: JSON = {
        "masterRef": {
            "type": "REFERENCE",
            "value": {
                "recordName": asset.master_id,
                "action": "DELETE_SELF",
                "zoneID": zone.zone_id,
            },
        },
        "assetDate": {"type": "TIMESTAMP", "value": asset.asset_date_ms},
        "addedDate": {"type": "TIMESTAMP", "value": asset.added_date_ms},
        "isDeleted": {"type": "INT64", "value": int(asset.deleted)},
        "isExpunged": {"type": "INT64", "value": 0},
        "isHidden": {"type": "INT64", "value": int(asset.hidden)},
        "isFavorite": {"type": "INT64", "value": int(asset.favorite)},
        "orientation": {"type": "INT64", "value": 1},
        "assetSubtypeV2": {"type": "INT64", "value": 2 if asset.is_live else 0},
    }
    if asset.time_zone_offset is not None:
        fields["timeZoneOffset"] = {"type": "INT64", "value": asset.time_zone_offset}
    if asset.deleted:
        fields["dateExpunged"] = {"type": "TIMESTAMP", "value": asset.deleted_at_ms}
    fields.update(_described(asset))
    if asset.edit is not None:
        # The rendered edit lives on the asset (each duplicate has its own).
        video = asset.master.uti in VIDEO_UTIS
        prefix, uti = ("resVidFull", LIVE_VIDEO_UTI) if video else ("resJPEGFull", "public.jpeg")
        stem = _stem(asset.master.filename)
        name = f"{stem}{'.MOV' if video else '.JPG'}"
        url = download_url(zone.name, asset.asset_id, "edit", generation, name)
        fields.update(_resource(prefix, uti, asset.edit, url))
        fields["adjustmentType"] = {"type": "STRING", "value": asset.adjustment_type}
    if asset.edit is not None and asset.simple_adjustments is not None:
        # A small edit's recipe, in the record: one layer of base64, as
        # Apple sends it (icloudpd's recorded records; pyicloud reads the
        # orientation out of it).
        data = base64.b64encode(asset.simple_adjustments).decode("ascii")
        fields["adjustmentSimpleDataEnc"] = {"type": "ENCRYPTED_BYTES", "value": data}
        fields["adjustmentCompoundVersion"] = {"type": "STRING", "value": "1.9.1"}
        fields["adjustmentCreatorCode"] = {"type": "STRING", "value": "com.apple.mobileslideshow"}
    return {
        "recordName": asset.asset_id,
        "recordType": "CPLAsset",
        "fields": fields,
        "pluginFields": {},
        "recordChangeTag": asset.change_tag,
        "created": _audit(asset.added_date_ms),
        "modified": _audit(asset.added_date_ms),
        "deleted": False,
        "zoneID": zone.zone_id,
    }


def album_position(zone: Zone, album: EmulatedAlbum) -> int:
    """Its own position, or (made on the "phone" without one) its place in the zone."""
    if album.position is not None:
        return album.position
    return list(zone.albums).index(album.album_id) + 1


def album_record(zone: Zone, album: EmulatedAlbum) -> JSON:
    """A CPLAlbum, as ``CPLAlbumByPositionLive`` and modify answer it."""
    fields: JSON = {
        "albumNameEnc": {"type": "ENCRYPTED_BYTES", "value": _b64(album.name)},
        "albumType": {"type": "INT64", "value": album.album_type},
        "isDeleted": {"type": "INT64", "value": int(album.deleted)},
        "isExpunged": {"type": "INT64", "value": 0},
        "position": {"type": "INT64", "value": album_position(zone, album)},
        "sortAscending": {"type": "INT64", "value": album.sort_ascending},
        "sortType": {"type": "INT64", "value": album.sort_type},
    }
    if album.parent_id is not None:
        fields["parentId"] = {"type": "STRING", "value": album.parent_id}
    return {
        "recordName": album.album_id,
        "recordType": "CPLAlbum",
        "fields": fields,
        "pluginFields": {},
        "recordChangeTag": album.change_tag,
        "deleted": False,
        "zoneID": zone.zone_id,
    }


def relation_record(zone: Zone, relation: EmulatedRelation) -> JSON:
    """A CPLContainerRelation: ``itemId`` (the CPLAsset) in ``containerId``."""
    return {
        "recordName": relation.record_name,
        "recordType": "CPLContainerRelation",
        "fields": {
            "itemId": {"type": "STRING", "value": relation.item_id},
            "containerId": {"type": "STRING", "value": relation.album_id},
            "position": {"type": "INT64", "value": relation.position},
            "isKeyAsset": {"type": "INT64", "value": 0},
        },
        "pluginFields": {},
        "recordChangeTag": relation.change_tag,
        "deleted": False,
        "zoneID": zone.zone_id,
    }


def pairs(zone: Zone, assets: list[EmulatedAsset], generation: int) -> list[JSON]:
    """(CPLMaster, CPLAsset) records for a page, each master sent once even
    when two assets of the page share it (as CloudKit answers)."""
    out: list[JSON] = []
    seen: set[str] = set()
    for asset in assets:
        if asset.master_id not in seen:
            seen.add(asset.master_id)
            out.append(master_record(zone, asset.master, generation))
        out.append(asset_record(zone, asset, generation))
    return out


def projected(record: JSON, desired_keys: list[str] | None) -> JSON:
    """``record`` as CloudKit answers a request naming ``desired_keys``: only
    the fields named (None: every field; an empty list: none), its envelope
    (``recordName``, ``recordType``, ``recordChangeTag``, ``zoneID``…) whole.
    Error items and tombstones carry no fields and pass as they are."""
    fields = record.get("fields")
    if desired_keys is None or not isinstance(fields, dict):
        return record
    wanted = set(desired_keys)
    return {**record, "fields": {k: v for k, v in fields.items() if k in wanted}}


def error_item(record_name: str, code: str, reason: str) -> JSON:
    return {"recordName": record_name, "serverErrorCode": code, "reason": reason}


def any_record(zone: Zone, name: str, generation: int) -> JSON | None:
    """The record of any type named ``name`` in ``zone`` (None: no such record)."""
    if name in zone.assets:
        return asset_record(zone, zone.assets[name], generation)
    if name in zone.masters:
        return master_record(zone, zone.masters[name], generation)
    if name in zone.albums:
        return album_record(zone, zone.albums[name])
    if name in zone.relations:
        return relation_record(zone, zone.relations[name])
    return None
