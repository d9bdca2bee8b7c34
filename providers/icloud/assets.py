"""What an iCloud asset holds, read from its CloudKit records: every file
that cannot be re-derived, and what the person set on it in Photos.

pyicloud's ``resources`` are read from the master record only, so the
rendered edit (``resJPEGFull`` / ``resVidFull`` on the *asset* record) and,
for videos, the adjustment data (``resSidecar``) are read here from the
records themselves. An edit's adjustment data may instead be held in the
asset record itself (``adjustmentSimpleDataEnc``, Photos' "simple"
adjustment data, for a small edit): it is archived as an ``.AAE`` file made
from the record (``inline_recipe``), as Photos writes one.

Captions, keywords and the location are decoded by pyicloud's own
``build_xmp_metadata``; favourite, hidden, the capture time zone, albums
and the record ids are added to it.

CloudKit answers a request that names fields (``desiredKeys``) with those
fields alone: a field read here but not asked for reads as absent, silently
(keywords gone from the sidecar), and the re-read before a removal, which
asks for every field, then differs ("metadata changed") for good.
``FIELDS_READ`` names every field this provider reads, made from the names
the readers below use; ``ask_for_fields_read`` adds them to the list pyicloud
asks for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import plistlib
import posixpath
from typing import Any

from pyicloud.services.photos import PhotoAsset
from pyicloud.services.photos_cloudkit import service as pyicloud_service
from pyicloud.services.photos_cloudkit.mappers import record_field_value
from pyicloud.services.photos_cloudkit.materialize import build_xmp_metadata

from reconciler.model import ItemMetadata, MediaFile

#: Resources read from the records themselves: rendered edits live on the
#: asset record, not the master (pyicloud's ``resources``, read from the
#: master, never lists them), and pyicloud offers no ``sidecar`` for videos.
_RECORD_FIELDS = {
    "edited": ("asset", "resJPEGFull"),
    "edited_video": ("asset", "resVidFull"),
    "sidecar": ("master", "resSidecar"),
}
#: What ``_record_resource`` reads of each: ``resJPEGFullRes``…
_RESOURCE_PARTS = ("Res", "FileType", "Fingerprint")
#: The ``ref`` of the adjustment data held in the asset record itself: a
#: file made from the record (``inline_recipe``), never downloaded.
INLINE_RECIPE = "adjustments"
#: The asset record field holding that adjustment data.
INLINE_DATA = "adjustmentSimpleDataEnc"
#: Asset record fields -> the key of Photos' ``.AAE`` property list (an
#: "adjustment envelope") that carries each, as Photos writes one on export.
_AAE_KEYS = {
    "adjustmentType": "adjustmentFormatIdentifier",
    "adjustmentCompoundVersion": "adjustmentFormatVersion",
    "adjustmentCreatorCode": "adjustmentEditorBundleID",
}
#: Asset record flags (``metadata_of``) and the capture time zone (``utc_offset_of``).
FAVORITE, HIDDEN, TIME_ZONE = "isFavorite", "isHidden", "timeZoneOffset"
#: What says which master an asset shows, and whether it is still there
#: (``changes.master_of``, ``changes._listed``, the re-read of ``source``).
MASTER_REF, DELETED, EXPUNGED = "masterRef", "isDeleted", "isExpunged"
#: Asset record fields pyicloud's ``build_xmp_metadata`` reads (title,
#: description, keywords, location, orientation, rating, create date), as
#: pyicloud 2026.10.1 reads them: a pyicloud of another version may read
#: more (``tests/test_end_to_end_icloud_desired_keys.py`` watches).
_XMP_FIELDS = (
    "captionEnc",
    "extendedDescEnc",
    "keywordsEnc",
    "locationEnc",
    INLINE_DATA,
    "assetDate",
    TIME_ZONE,
    "assetSubtypeV2",
    HIDDEN,
    DELETED,
    FAVORITE,
)
#: Record fields pyicloud's ``PhotoAsset`` reads besides its resources
#: (name, type, dates).
_PHOTO_ASSET_FIELDS = ("filenameEnc", "itemType", "assetDate", "addedDate")
#: Resource parts pyicloud's ``PhotoAsset.resources`` reads of each.
_PHOTO_ASSET_PARTS = (*_RESOURCE_PARTS, "Width", "Height")
#: Extensions of the camera RAW types Photos tags that pyicloud's table
#: (``PhotoAsset.FILE_TYPE_EXTENSIONS``) lacks or gets wrong (it gives NRW
#: files ".NRF"). A type neither knows gets one made from the type itself
#: (``extension_of``): never another resource's extension, for a RAW named
#: ``.JPG`` is taken for a JPEG by every viewer, importer and person.
RAW_EXTENSIONS = {
    "com.canon.tif-raw-image": ".TIF",
    "com.dxo.raw-image": ".DXO",
    "com.epson.raw-image": ".ERF",
    "com.hasselblad.3fr-raw-image": ".3FR",
    "com.hasselblad.fff-raw-image": ".FFF",
    "com.kodak.raw-image": ".DCR",
    "com.konicaminolta.raw-image": ".MRW",
    "com.leafamerica.raw-image": ".MOS",
    "com.leica.raw-image": ".RAW",
    "com.leica.rwl-raw-image": ".RWL",
    "com.mamiya.raw-image": ".MEF",
    "com.nikon.nrw-raw-image": ".NRW",
    "com.olympus.sr-raw-image": ".ORF",
    "com.panasonic.raw-image": ".RAW",
    "com.phaseone.raw-image": ".IIQ",
    "com.samsung.raw-image": ".SRW",
    "com.sigma.raw-image": ".X3F",
    "com.sony.raw-image": ".SRF",
    "com.sony.sr2-raw-image": ".SR2",
}
#: Longest extension made from a type's name.
_MADE_MAX = 8


def extension_of(uti: str) -> str:
    """The file extension for a resource of type ``uti`` (e.g. ".SRW"); ""
    when there is no type. A type no table knows gets one made from the
    last part of its name: ``com.foo.xyz-raw-image`` -> ".XYZ",
    ``com.foo.raw-image`` -> ".RAW", ``org.webmproject.webp`` -> ".WEBP"."""
    if not uti:
        return ""
    known = RAW_EXTENSIONS.get(uti) or PhotoAsset.FILE_TYPE_EXTENSIONS.get(uti)
    if known:
        return known
    last = uti.rsplit(".", 1)[-1].lower()
    if last.endswith("raw-image"):
        kind = last.removesuffix("raw-image").rstrip("-")
        last = kind if kind not in ("", "camera") else "raw"
    else:
        last = last.removesuffix("-image")
    made = "".join(c for c in last if c.isascii() and c.isalnum())[:_MADE_MAX]
    return f".{made.upper()}" if made else ".BIN"


def _fields_read() -> tuple[str, ...]:
    """Every asset and master record field this provider reads, itself or
    through pyicloud (``PhotoAsset``, ``build_xmp_metadata``), once each."""
    lookups = (PhotoAsset.PHOTO_VERSION_LOOKUP, PhotoAsset.VIDEO_VERSION_LOOKUP)
    resources = [
        f"{prefix}{part}"
        for prefix in dict.fromkeys(p for lookup in lookups for p in lookup.values())
        for part in _PHOTO_ASSET_PARTS
    ]
    return tuple(
        dict.fromkeys(
            [
                *(
                    f"{prefix}{part}"
                    for _, prefix in _RECORD_FIELDS.values()
                    for part in _RESOURCE_PARTS
                ),
                INLINE_DATA,
                *_AAE_KEYS,
                FAVORITE,
                HIDDEN,
                TIME_ZONE,
                MASTER_REF,
                DELETED,
                EXPUNGED,
                *_XMP_FIELDS,
                *_PHOTO_ASSET_FIELDS,
                *resources,
            ]
        )
    )


#: Every record field read (``_fields_read``): what a request must ask for.
FIELDS_READ = _fields_read()


def ask_for_fields_read() -> None:
    """Make the field list pyicloud sends (``PHOTO_DESIRED_KEYS``) name every
    field in ``FIELDS_READ``; once is enough, more is harmless.

    pyicloud 2026.10.1 names no fields on the requests this provider makes
    (a listing, a lookup, a change feed: CloudKit then sends every field),
    but sends that list on others (its raw listing, the lookup after an
    upload), and it lacks fields read here (``keywordsEnc``,
    ``extendedDescEnc``, ``adjustmentSimpleDataEnc``…). Should a pyicloud
    send it on a listing, those would come back absent. pyicloud reads the
    module's list at each request, so it is extended in place: the narrowest
    change that reaches every request sending it, leaving pyicloud's own
    fields as they are."""
    desired = pyicloud_service.PHOTO_DESIRED_KEYS
    desired.extend(f for f in FIELDS_READ if f not in desired)


def _record_resource(asset: Any, ref: str) -> tuple[str, int | None, str, str]:
    """(URL, size, UTI, fingerprint) of a resource read from a record."""
    which, prefix = _RECORD_FIELDS[ref]
    record = asset.asset_record if which == "asset" else asset.master_record
    res, file_type, fingerprint = (f"{prefix}{part}" for part in _RESOURCE_PARTS)
    token = record_field_value(record, res)
    if token is None:
        return "", None, "", ""
    size = getattr(token, "size", None)
    return (
        str(getattr(token, "downloadURL", None) or ""),
        int(size) if size is not None else None,
        str(record_field_value(record, file_type) or ""),
        str(record_field_value(record, fingerprint) or ""),
    )


def resource_of(asset: Any, ref: str) -> tuple[str, int | None]:
    """(download URL, size) of one resource of the asset ("", None: absent)."""
    if ref in _RECORD_FIELDS:
        url, size, _, _ = _record_resource(asset, ref)
        return url, size
    resource = asset.resources.get(ref)
    if resource is None:
        return "", None
    return str(resource.url or ""), resource.size


def files_of(asset: Any) -> list[MediaFile]:
    """Every resource of the asset that cannot be re-derived, original first:
    the original, the RAW of a RAW+JPEG pair, the Live Photo video, the
    rendered edit(s) and the edit's adjustment data. Names make the pair
    obvious (``IMG_0001-edited.JPG``) and never repeat the original's."""
    resources = asset.resources
    original = resources.get("original")
    if original is None or original.size is None:
        return []
    # pyicloud's name: the one Photos keeps, with pyicloud's extension for a
    # type it knows (a type it does not know keeps the camera's own name)…
    stem, ext = posixpath.splitext(original.filename)
    if original.type in PhotoAsset.FILE_TYPE_EXTENSIONS and original.type in RAW_EXTENSIONS:
        ext = RAW_EXTENSIONS[original.type]  # …unless that extension is wrong (".NRF")
    files = [_file(f"{stem}{ext}", original.size, "original", "original", original.checksum)]
    alt = resources.get("alternative")
    if alt is not None and alt.size is not None:
        # Named for its own type, never the original's: pyicloud gives a
        # type it does not know the original's name (a RAW as ``.JPG``).
        alt_ext = extension_of(str(alt.type or "")) or ".BIN"
        name = f"{stem}{alt_ext}"
        if name.lower() == f"{stem}{ext}".lower():
            name = f"{stem}-alternative{alt_ext}"
        files.append(_file(name, alt.size, "alternative", "alternative", alt.checksum))
    video = resources.get("original_video")
    if asset.is_live_photo and video is not None and video.size is not None:
        files.append(
            _file(video.filename, video.size, "original_video", "live_video", video.checksum)
        )
    for ref in ("edited", "edited_video"):
        _, size, uti, fingerprint = _record_resource(asset, ref)
        if size is not None:
            # Without a type: what the field holds (``resJPEGFull``, ``resVidFull``).
            edit_ext = extension_of(uti) or (".MOV" if ref == "edited_video" else ".JPG")
            files.append(_file(f"{stem}-edited{edit_ext}", size, ref, "edited", fingerprint))
    _, size, _, fingerprint = _record_resource(asset, "sidecar")
    if size is not None:
        files.append(_file(f"{stem}.AAE", size, "sidecar", "edit_sidecar", fingerprint))
    recipe = inline_recipe(asset)
    if recipe is not None:
        # Named apart from a ``resSidecar`` one should a record hold both.
        name = f"{stem}-adjustments.AAE" if size is not None else f"{stem}.AAE"
        files.append(
            _file(name, len(recipe), INLINE_RECIPE, "edit_sidecar", recipe_fingerprint(recipe))
        )
    return files


def recipe_fingerprint(recipe: bytes) -> str:
    """The fingerprint listed for an ``inline_recipe`` (iCloud gives none)."""
    return hashlib.sha256(recipe).hexdigest()[:28]


def inline_recipe(asset: Any) -> bytes | None:
    """The edit's adjustment data held in the asset record itself
    (``adjustmentSimpleDataEnc``), as the bytes of an ``.AAE`` file: the
    property list Photos writes for an edit, holding those bytes unchanged
    (``adjustmentData``) with the format and editor the record names. None
    when the record holds none. The same record always gives the same bytes
    (its size is listed, and compared before a removal).

    Photos keeps a small edit's recipe there rather than as a resource
    (``resSidecar``): a crop, a rotation, one slider. It cannot be derived
    from the original or the rendered edit, and without it the edit can no
    longer be changed or reverted, so it is archived like the resource."""
    record = asset.asset_record
    data = _record_bytes(record_field_value(record, INLINE_DATA))
    if not data:
        return None
    envelope: dict[str, Any] = {"adjustmentBaseVersion": 0, "adjustmentData": data}
    for field, key in _AAE_KEYS.items():
        value = record_field_value(record, field)
        if isinstance(value, str) and value:
            envelope[key] = value
    return plistlib.dumps(envelope, fmt=plistlib.FMT_XML, sort_keys=True)


def _record_bytes(value: object) -> bytes | None:
    """An ENCRYPTED_BYTES field's bytes: pyicloud's typed record gives them
    decoded; a plain one, as CloudKit's base64 text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value.encode("utf-8")
    return None


def _file(name: str, size: int, ref: str, role: str, fingerprint: object) -> MediaFile:
    return MediaFile(
        name=name, size=int(size), ref=ref, role=role, fingerprint=str(fingerprint or "")
    )


def metadata_of(asset: Any, albums: tuple[str, ...]) -> ItemMetadata:
    """What the person set in Photos, as pyicloud reads it from the record
    (``build_xmp_metadata`` decodes captions, keywords and the location),
    plus what it leaves out: favourite and hidden as flags, the capture
    time zone, albums, ids."""
    record = asset.asset_record
    xmp = build_xmp_metadata(record)
    return ItemMetadata(
        title=xmp.title if xmp is not None else None,
        description=xmp.description if xmp is not None else None,
        keywords=tuple(xmp.keywords or ()) if xmp is not None else (),
        albums=albums,
        favorite=record_field_value(record, FAVORITE) == 1,
        hidden=record_field_value(record, HIDDEN) == 1,
        latitude=xmp.gps_latitude if xmp is not None else None,
        longitude=xmp.gps_longitude if xmp is not None else None,
        altitude=xmp.gps_altitude if xmp is not None else None,
        utc_offset=utc_offset_of(record),
        record_ids=(("AssetId", asset.id), ("MasterId", asset.master_id)),
    )


def utc_offset_of(record: Any) -> int:
    """The zone of the asset's capture time, in seconds east of UTC: the
    record's ``timeZoneOffset``, as pyicloud's ``build_xmp_metadata`` reads
    it (which, given a typed record's ``assetDate``, never applies it).
    0 when absent, as Apple sends for an asset without one, and for a value
    no zone has: the capture moment is kept whatever the zone."""
    value = record_field_value(record, TIME_ZONE)
    return value if ItemMetadata.is_utc_offset(value) else 0
