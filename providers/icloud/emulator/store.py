"""The emulated iCloud Photos account: assets, zones, albums, change log.

This is plain in-memory state guarded by one lock; the HTTP layer
(``server.py``) turns it into CloudKit-shaped JSON. Identity follows Apple's:
an asset (CPLAsset) points at a master (CPLMaster) holding the original bytes;
duplicates are two assets sharing one master. Nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import attrs

PRIMARY_ZONE_NAME = "PrimarySync"
OWNER_RECORD_NAME = "_0f3a9c2d6e1b4a5c8d7e9f0a1b2c3d4e"

#: UTI by lower-case file extension; Apple's ``itemType`` / ``resOriginalFileType``.
UTI_BY_EXTENSION: dict[str, str] = {
    ".jpg": "public.jpeg",
    ".jpeg": "public.jpeg",
    ".heic": "public.heic",
    ".heif": "public.heif",
    ".png": "public.png",
    ".mov": "com.apple.quicktime-movie",
    ".mp4": "public.mpeg-4",
    ".m4v": "com.apple.m4v-video",
    ".dng": "com.adobe.raw-image",
    ".gif": "com.compuserve.gif",
    ".mpo": "public.mpo-image",
    ".aae": "com.apple.photos.apple-adjustment-envelope",
}
VIDEO_UTIS = frozenset({"com.apple.quicktime-movie", "public.mpeg-4", "com.apple.m4v-video"})
LIVE_VIDEO_UTI = "com.apple.quicktime-movie"
#: The edit's adjustment data (``resSidecar``), as Photos keeps it.
SIDECAR_UTI = "com.apple.photos.apple-adjustment-envelope"


@attrs.frozen
class Blob:
    """Bytes of one resource, held in memory or read from a file on demand
    (a seeded folder can be large; it is never loaded whole)."""

    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, source: bytes | Path) -> Blob:
        if isinstance(source, bytes):
            return cls(size=len(source), sha256=hashlib.sha256(source).hexdigest(), data=source)
        digest = hashlib.sha256()
        with source.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return cls(size=source.stat().st_size, sha256=digest.hexdigest(), path=source)

    def iter_range(self, start: int, end: int, chunk: int = 1 << 16) -> Iterator[bytes]:
        """Yield bytes ``[start, end)``."""
        if self.data is not None:
            for pos in range(start, end, chunk):
                yield self.data[pos : min(pos + chunk, end)]
            return
        assert self.path is not None
        with self.path.open("rb") as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                piece = fh.read(min(chunk, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece


@attrs.define(kw_only=True)
class EmulatedMaster:
    """A CPLMaster: the original file (and a Live Photo's video)."""

    master_id: str
    filename: str
    uti: str
    original: Blob
    live_video: Blob | None = None
    #: The other half of a RAW+JPEG pair (``resOriginalAlt``) and its UTI.
    alternative: Blob | None = None
    alternative_uti: str = "com.adobe.raw-image"
    #: The edit's adjustment data (``resSidecar``).
    sidecar: Blob | None = None
    width: int = 4032
    height: int = 3024
    change_tag: str = "1"


@attrs.define(kw_only=True)
class EmulatedAsset:
    """A CPLAsset: one entry of the library, pointing at a master."""

    asset_id: str
    master: EmulatedMaster
    zone: str
    #: Milliseconds since the epoch; 0 when the capture date is unknown (as
    #: Apple reports it, and as pyicloud shows it: 1970-01-01).
    asset_date_ms: int
    added_date_ms: int
    #: The capture time's zone, seconds east of UTC (``timeZoneOffset``:
    #: where it was taken, or what "Adjust Date & Time" set); None: the
    #: record has no such field, as Apple sends some assets.
    time_zone_offset: int | None = 0
    deleted: bool = False
    deleted_at_ms: int = 0
    hidden: bool = False
    favorite: bool = False
    #: The rendered edit (``resJPEGFullRes`` / ``resVidFullRes``) and its
    #: ``adjustmentType``; None while the asset is unedited.
    edit: Blob | None = None
    adjustment_type: str = "com.apple.photo"
    #: A small edit's recipe held in the record itself
    #: (``adjustmentSimpleDataEnc``) instead of a ``resSidecar`` resource.
    simple_adjustments: bytes | None = None
    caption: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    #: (latitude, longitude, altitude in metres).
    location: tuple[float, float, float] | None = None
    change_tag: str = "1"

    @property
    def master_id(self) -> str:
        return self.master.master_id

    @property
    def is_video(self) -> bool:
        return self.master.uti in VIDEO_UTIS

    @property
    def is_live(self) -> bool:
        return self.master.live_video is not None


@attrs.define(kw_only=True)
class EmulatedAlbum:
    """A CPLAlbum: a user album (or folder) of a zone."""

    album_id: str
    name: str
    zone: str
    #: Members in the order they were added (each backed by a relation).
    asset_ids: list[str] = attrs.field(factory=list)
    deleted: bool = False
    change_tag: str = "1"
    #: Apple's ``albumType``: 0 album, 3 folder, 6 smart album.
    album_type: int = 0
    #: Sort key of ``CPLAlbumByPositionLive``; None: its place in the zone.
    position: int | None = None
    #: The folder holding it (``parentId``); None at the top level.
    parent_id: str | None = None
    sort_ascending: int = 1
    sort_type: int = 0


@attrs.define(kw_only=True)
class EmulatedRelation:
    """A CPLContainerRelation: one asset's membership of one album."""

    record_name: str
    item_id: str
    album_id: str
    position: int
    change_tag: str = "1"


def relation_name(item_id: str, album_id: str) -> str:
    """The record name Photos (and pyicloud's ``add_photo``) gives a relation."""
    return f"{item_id}-IN-{album_id}"


@attrs.define
class Zone:
    """One CloudKit zone: the primary library or a Shared Library."""

    name: str
    database: str = "private"
    assets: dict[str, EmulatedAsset] = attrs.field(factory=dict)
    masters: dict[str, EmulatedMaster] = attrs.field(factory=dict)
    albums: dict[str, EmulatedAlbum] = attrs.field(factory=dict)
    relations: dict[str, EmulatedRelation] = attrs.field(factory=dict)
    #: (serial, record name) per change, for ``changes/zone``.
    changes: list[tuple[int, str]] = attrs.field(factory=list)
    _sorted: list[EmulatedAsset] | None = None

    @property
    def zone_id(self) -> dict[str, str]:
        return {
            "zoneName": self.name,
            "ownerRecordName": OWNER_RECORD_NAME,
            "zoneType": "REGULAR_CUSTOM_ZONE",
        }

    def by_date(self) -> list[EmulatedAsset]:
        """Every asset, newest capture date first: the rank order of the
        indexes (rank 0 is the most recent photo, as on iCloud)."""
        if self._sorted is None:
            self._sorted = sorted(
                self.assets.values(), key=lambda a: (-a.asset_date_ms, a.asset_id)
            )
        return self._sorted

    def invalidate(self) -> None:
        self._sorted = None


def _to_ms(when: datetime | None) -> int:
    if when is None:
        return 0
    if when.tzinfo is None:
        raise ValueError("asset dates must be timezone-aware")
    return int(when.timestamp() * 1000)


@attrs.define
class Account:
    """An emulated Apple ID with its iCloud Photos library.

    Build one, add assets (``add_asset``) or seed it from a folder
    (``Account.from_folder``), then hand it to ``EmulatorServer``.
    """

    username: str = "user@example.com"
    password: str = "correct horse battery staple"
    dsid: str = "8012345678"
    full_name: str = "Emulated User"
    #: False emulates Advanced Data Protection with "Access iCloud Data on the
    #: Web" turned off: every Photos database call answers 403 ACCESS_DENIED.
    web_access: bool = True
    zones: dict[str, Zone] = attrs.field(
        factory=lambda: {PRIMARY_ZONE_NAME: Zone(PRIMARY_ZONE_NAME)}
    )
    lock: threading.RLock = attrs.field(factory=threading.RLock, repr=False)
    _serial: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), repr=False)
    _ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), repr=False)
    _clock_ms: int = 1_700_000_000_000

    # ------------------------------------------------------------ building

    @classmethod
    def from_folder(cls, path: Path | str, **kwargs: object) -> Account:
        """An account whose library holds every media file under ``path``."""
        from providers.icloud.emulator.seed import add_folder

        account = cls(**kwargs)  # type: ignore[arg-type]
        add_folder(account, Path(path))
        return account

    def add_shared_library(
        self, name: str = "SharedSync-6E1C3B2A-0D4F-4E55-9A1B-2C3D4E5F6A7B"
    ) -> str:
        """Add a Shared Library zone (``shared:<name>`` in pyicloud); returns its name."""
        with self.lock:
            self.zones.setdefault(name, Zone(name))
        return name

    def _new_id(self, kind: str) -> str:
        n = next(self._ids)
        digest = hashlib.sha256(f"{self.username}:{kind}:{n}".encode()).hexdigest().upper()
        if kind == "asset":
            return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        # Master record names look like base64-ish 28-character strings.
        return "A" + hashlib.sha256(digest.encode()).hexdigest()[:27]

    def new_record_name(self) -> str:
        """A fresh record name, as CloudKit gives a create that names none."""
        with self.lock:
            return self._new_id("asset")

    def next_change_tag(self) -> str:
        return _base36(next(self._serial) + 1000)

    def record_change(self, zone: Zone, record_name: str) -> None:
        zone.changes.append((next(self._serial), record_name))

    def now_ms(self) -> int:
        # A monotonic fake clock keeps listings deterministic across runs.
        self._clock_ms += 1000
        return self._clock_ms

    def add_asset(
        self,
        data: bytes | Path,
        filename: str,
        *,
        asset_date: datetime | None,
        live_video: bytes | Path | None = None,
        zone: str = PRIMARY_ZONE_NAME,
        uti: str | None = None,
        alternative: bytes | Path | None = None,
        alternative_uti: str = "com.adobe.raw-image",
        favorite: bool = False,
        hidden: bool = False,
        caption: str | None = None,
        description: str | None = None,
        keywords: tuple[str, ...] = (),
        location: tuple[float, float, float] | None = None,
        time_zone_offset: int | None = 0,
    ) -> EmulatedAsset:
        """Add a photo or video (with its Live Photo video, or the RAW of a
        RAW+JPEG pair) to a zone, with what a person set on it in Photos.

        ``asset_date`` None means the capture date is unknown: Apple then
        reports epoch 0. ``time_zone_offset`` is the zone it was taken in,
        seconds east of UTC (None: the record has none); the zone of
        ``asset_date`` itself is not read, as Apple keeps the two apart.
        """
        ext = Path(filename).suffix.lower()
        kind = uti or UTI_BY_EXTENSION.get(ext, "public.data")
        with self.lock:
            target = self.zones[zone]
            master = EmulatedMaster(
                master_id=self._new_id("master"),
                filename=filename,
                uti=kind,
                original=Blob.of(data),
                live_video=Blob.of(live_video) if live_video is not None else None,
                alternative=Blob.of(alternative) if alternative is not None else None,
                alternative_uti=alternative_uti,
                change_tag=self.next_change_tag(),
            )
            asset = self._add(target, master, _to_ms(asset_date))
            asset.favorite = favorite
            asset.hidden = hidden
            asset.caption = caption
            asset.description = description
            asset.keywords = tuple(keywords)
            asset.location = location
            asset.time_zone_offset = time_zone_offset
            return asset

    def edit_asset(
        self,
        asset: EmulatedAsset,
        rendered: bytes | Path,
        *,
        adjustments: bytes = b"<plist><dict><key>adjustmentFormatVersion</key></dict></plist>",
        adjustment_type: str = "com.apple.photo",
        inline: bool = False,
    ) -> None:
        """An edit made in Photos: the rendered result on the asset, the
        adjustment data (``resSidecar``) on its master, a new change tag.
        ``inline``: a small edit, whose adjustment data (raw-deflated JSON,
        as Photos writes a simple one) the asset record holds itself
        (``adjustmentSimpleDataEnc``), with no ``resSidecar``."""
        with self.lock:
            asset.edit = Blob.of(rendered)
            asset.adjustment_type = adjustment_type
            asset.simple_adjustments = adjustments if inline else None
            asset.master.sidecar = None if inline else Blob.of(adjustments)
            asset.master.change_tag = self.next_change_tag()
            self.record_change(self.zones[asset.zone], asset.master_id)
            self.touch(asset)

    def repoint(self, asset: EmulatedAsset, data: bytes | Path) -> EmulatedMaster:
        """The asset's ``masterRef`` re-pointed at a new master holding
        ``data`` (a field of its record, changed like any other: its change
        tag too). The old master record stays while another asset (a
        duplicate) points at it, and is deleted otherwise."""
        with self.lock:
            zone = self.zones[asset.zone]
            old = asset.master
            master = attrs.evolve(
                old,
                master_id=self._new_id("master"),
                original=Blob.of(data),
                live_video=None,
                alternative=None,
                sidecar=None,
                change_tag=self.next_change_tag(),
            )
            zone.masters[master.master_id] = master
            asset.master = master
            if not any(a.master is old for a in zone.assets.values()):
                del zone.masters[old.master_id]
                self.record_change(zone, old.master_id)
            zone.invalidate()
            self.record_change(zone, master.master_id)
            self.touch(asset)
            return master

    def describe(
        self,
        asset: EmulatedAsset,
        *,
        caption: str | None = None,
        description: str | None = None,
        keywords: tuple[str, ...] | None = None,
        location: tuple[float, float, float] | None = None,
    ) -> None:
        """Set a title, description, keywords or location, as in Photos' info pane."""
        with self.lock:
            if caption is not None:
                asset.caption = caption
            if description is not None:
                asset.description = description
            if keywords is not None:
                asset.keywords = tuple(keywords)
            if location is not None:
                asset.location = location
            self.touch(asset)

    def adjust_date(
        self,
        asset: EmulatedAsset,
        when: datetime | None = None,
        *,
        time_zone_offset: int | None,
    ) -> None:
        """Photos' "Adjust Date & Time": a new capture moment (``when``;
        None keeps it) and the zone, which that dialog always sets (seconds
        east of UTC; None: no zone field); a new change tag, re-sorted."""
        with self.lock:
            if when is not None:
                asset.asset_date_ms = _to_ms(when)
            asset.time_zone_offset = time_zone_offset
            self.zones[asset.zone].invalidate()
            self.touch(asset)

    def add_duplicate(self, asset: EmulatedAsset) -> EmulatedAsset:
        """A second asset sharing ``asset``'s master (a duplicated photo)."""
        with self.lock:
            return self._add(self.zones[asset.zone], asset.master, asset.asset_date_ms)

    def _add(self, zone: Zone, master: EmulatedMaster, date_ms: int) -> EmulatedAsset:
        asset = EmulatedAsset(
            asset_id=self._new_id("asset"),
            master=master,
            zone=zone.name,
            asset_date_ms=date_ms,
            added_date_ms=self.now_ms(),
            change_tag=self.next_change_tag(),
        )
        zone.masters[master.master_id] = master
        zone.assets[asset.asset_id] = asset
        zone.invalidate()
        self.record_change(zone, master.master_id)
        self.record_change(zone, asset.asset_id)
        return asset

    def add_album(
        self, name: str, assets: list[EmulatedAsset], zone: str = PRIMARY_ZONE_NAME
    ) -> EmulatedAlbum:
        """A user album holding ``assets`` (as if made on a phone)."""
        with self.lock:
            album = self.create_album(name, zone=zone)
            for asset in assets:
                self.add_to_album(album, asset.asset_id)
            return album

    def create_album(
        self,
        name: str,
        *,
        zone: str = PRIMARY_ZONE_NAME,
        album_id: str | None = None,
        album_type: int = 0,
        position: int | None = None,
        parent_id: str | None = None,
        sort_ascending: int = 1,
        sort_type: int = 0,
    ) -> EmulatedAlbum:
        """A new, empty album (a CPLAlbum create)."""
        with self.lock:
            target = self.zones[zone]
            album = EmulatedAlbum(
                album_id=album_id or self._new_id("asset"),
                name=name,
                zone=zone,
                album_type=album_type,
                position=position,
                parent_id=parent_id,
                sort_ascending=sort_ascending,
                sort_type=sort_type,
                change_tag=self.next_change_tag(),
            )
            target.albums[album.album_id] = album
            self.record_change(target, album.album_id)
            return album

    def add_to_album(
        self,
        album: EmulatedAlbum,
        item_id: str,
        *,
        record_name: str | None = None,
        position: int = 1024,
    ) -> EmulatedRelation:
        """Make ``item_id`` a member of ``album`` (a CPLContainerRelation
        create). A relation that already exists is returned unchanged."""
        with self.lock:
            target = self.zones[album.zone]
            name = record_name or relation_name(item_id, album.album_id)
            existing = target.relations.get(name)
            if existing is not None:
                return existing
            relation = EmulatedRelation(
                record_name=name,
                item_id=item_id,
                album_id=album.album_id,
                position=position,
                change_tag=self.next_change_tag(),
            )
            target.relations[name] = relation
            # A second relation for the same pair adds no second membership.
            if item_id not in album.asset_ids:
                album.asset_ids.append(item_id)
            self.record_change(target, name)
            return relation

    # ------------------------------------------------------------ reading

    def find_asset(self, asset_id: str) -> EmulatedAsset | None:
        with self.lock:
            for zone in self.zones.values():
                if asset_id in zone.assets:
                    return zone.assets[asset_id]
        return None

    def albums_named(self, name: str, zone: str = PRIMARY_ZONE_NAME) -> list[EmulatedAlbum]:
        """The albums (not deleted) called ``name``, in creation order."""
        with self.lock:
            return [a for a in self.zones[zone].albums.values() if a.name == name and not a.deleted]

    def live_assets(self, zone: str = PRIMARY_ZONE_NAME) -> list[EmulatedAsset]:
        """What the Library shows: not deleted, not hidden, newest first."""
        with self.lock:
            return [a for a in self.zones[zone].by_date() if not a.deleted and not a.hidden]

    def deleted_assets(self, zone: str = PRIMARY_ZONE_NAME) -> list[EmulatedAsset]:
        """What "Recently Deleted" shows, in deletion order."""
        with self.lock:
            found = [a for a in self.zones[zone].assets.values() if a.deleted]
            return sorted(found, key=lambda a: (a.deleted_at_ms, a.asset_id))

    # ------------------------------------------------------------ writing

    def delete(self, asset: EmulatedAsset) -> None:
        """Soft delete (what the Photos app does): to Recently Deleted."""
        with self.lock:
            self.update_asset(asset, {"isDeleted": 1})

    def update_asset(self, asset: EmulatedAsset, fields: dict[str, object]) -> None:
        """Apply CPLAsset field updates and bump the change tag."""
        with self.lock:
            zone = self.zones[asset.zone]
            if "isDeleted" in fields:
                deleted = bool(fields["isDeleted"])
                if deleted and not asset.deleted:
                    asset.deleted_at_ms = self.now_ms()
                asset.deleted = deleted
            if "isHidden" in fields:
                asset.hidden = bool(fields["isHidden"])
            if "isFavorite" in fields:
                asset.favorite = bool(fields["isFavorite"])
            if "timeZoneOffset" in fields:
                offset = fields["timeZoneOffset"]
                asset.time_zone_offset = offset if isinstance(offset, int) else None
            asset.change_tag = self.next_change_tag()
            zone.invalidate()
            self.record_change(zone, asset.asset_id)

    def expunge(self, asset: EmulatedAsset) -> None:
        """Gone for good (emptied from Recently Deleted): the asset, its
        album memberships and, when no other asset shares it, its master are
        removed; ``changes/zone`` then answers tombstones for them."""
        with self.lock:
            zone = self.zones[asset.zone]
            del zone.assets[asset.asset_id]
            for name, relation in list(zone.relations.items()):
                if relation.item_id == asset.asset_id:
                    del zone.relations[name]
                    self.record_change(zone, name)
            for album in zone.albums.values():
                if asset.asset_id in album.asset_ids:
                    album.asset_ids.remove(asset.asset_id)
            if not any(a.master_id == asset.master_id for a in zone.assets.values()):
                zone.masters.pop(asset.master_id, None)
                self.record_change(zone, asset.master_id)
            zone.invalidate()
            self.record_change(zone, asset.asset_id)

    def remove_from_album(self, album: EmulatedAlbum, asset_id: str) -> None:
        """Take an asset out of an album (its relation record is deleted)."""
        with self.lock:
            zone = self.zones[album.zone]
            for name, relation in list(zone.relations.items()):
                if relation.item_id == asset_id and relation.album_id == album.album_id:
                    del zone.relations[name]
                    self.record_change(zone, name)
            if asset_id in album.asset_ids:
                album.asset_ids.remove(asset_id)

    def touch(self, asset: EmulatedAsset) -> None:
        """Change the asset's record tag, as an edit on a phone would: a
        change tag a client holds becomes stale (CONFLICT on modify)."""
        with self.lock:
            asset.change_tag = self.next_change_tag()
            self.record_change(self.zones[asset.zone], asset.asset_id)

    def current_serial(self) -> int:
        with self.lock:
            latest = [z.changes[-1][0] for z in self.zones.values() if z.changes]
            return max(latest, default=0)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, rem = divmod(n, 36)
        out = digits[rem] + out
    return out or "0"
