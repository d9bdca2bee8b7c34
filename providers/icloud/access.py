"""The iCloud library as this source reaches it: the pyicloud session and
its service, the zones (the personal library, each Shared Library), errors
turned into ``ProviderError``, and an asset read again as it is now."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import PRIMARY_ZONE, PhotoAsset, PhotoLibrary, SmartPhotoAlbum
from pyicloud.services.photos_cloudkit.constants import SmartAlbumEnum

from providers.base import Closing
from providers.icloud import session as icloud_session
from providers.icloud.assets import DELETED, ask_for_fields_read
from providers.icloud.changes import ChangeFeed, Located, look_up, master_of, shared_libraries
from providers.icloud.errors import classify
from reconciler.errors import ConfigError, ProviderError, ReconcileError
from reconciler.model import MediaFile, SourceItem
from reconciler.state import StateDB


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


def split_key(key: str) -> tuple[str, str]:
    asset_id, sep, master_id = key.partition(":")
    if not sep or not asset_id or not master_id:
        raise ReconcileError(f"not an iCloud item key: {key!r}")
    return asset_id, master_id


def is_deleted(asset: Any) -> bool:
    return bool(asset.asset_record.fields.get_value(DELETED))


class LibraryAccess(ChangeFeed, Closing):
    """The session, the zones and an asset read again (see ``source.ICloudSource``)."""

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

    def _reread(self, item: SourceItem) -> Located | None:
        """The asset as it is now (None: gone). A deleted asset comes back
        with ``isDeleted`` set; callers check."""
        with self._lock:
            return self._reread_locked(item)

    def _reread_locked(self, item: SourceItem) -> Located | None:
        return self._reread_key(item.key)

    def _reread_key(self, key: str, zone: dict[str, str] | None = None) -> Located | None:
        """``_reread`` of the item ``key``, in the library ``zone`` (a zone
        id) if given. Callers hold ``self._lock``."""
        asset_id, master_id = split_key(key)
        photos = self._service()
        known = self._seen.get(key)
        remembered = self._zone_of.get(key)
        if zone is not None:
            zone_ids = [zone]
        elif known is not None:
            zone_ids = [known.zone_id]
        elif remembered is not None:
            zone_ids = [remembered]
        else:
            zone_ids = self._zone_ids()
        subject = f"re-reading {key}"
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
            self._seen[key] = located
            return located
        return None

    def _current(self, item: SourceItem) -> Located:
        located = self._seen.get(item.key) or self._reread(item)
        if located is None or is_deleted(located.asset):
            raise ProviderError(f"{item.key} is no longer in the library", provider=self.id)
        return located

    def local_path(self, item: SourceItem, file: MediaFile) -> Path | None:
        return None  # remote: fetch() downloads it
