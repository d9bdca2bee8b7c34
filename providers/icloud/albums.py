"""Which albums each asset is in: album listings, and for hidden assets
(which album listings leave out) their relation records, looked up in
batches; read afresh at a removal (``_albums_now``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from pyicloud.common.cloudkit import CKRecord
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import PRIMARY_ZONE, PhotoAlbum, PhotoAlbumFolder, SmartPhotoAlbum
from pyicloud.services.photos_cloudkit.constants import SmartAlbumEnum

from providers.icloud.access import LibraryAccess
from providers.icloud.changes import LOOKUP_BATCH, HiddenKnown, Memberships, look_up
from providers.icloud.errors import release
from providers.icloud.listing import decode_row
from reconciler.errors import LoginRequiredError
from reconciler.model import SourceItem
from reconciler.sidecar import album_path
from reconciler.state import StateDB

LOG = logging.getLogger(__name__)


def find_album(albums: Any, name: str) -> Any:
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


def _left_listings(
    shown: Mapping[str, tuple[str, ...]],
    found: Mapping[str, set[str]],
    paths: Mapping[str, str],
) -> list[tuple[str, str]]:
    """(asset id, album id) of each album a shown asset was remembered in
    whose listing no longer holds it: left, or hidden meanwhile (album
    listings leave hidden assets out; its relation remains). Looked up by
    relation rather than taken for left. An album gone from the list is
    gone: not looked up."""
    by_path: dict[str, list[str]] = {}
    for album_id, path in paths.items():
        by_path.setdefault(path, []).append(album_id)
    pairs: list[tuple[str, str]] = []
    for asset_id, remembered in shown.items():
        now = {paths[i] for i in found.get(asset_id, ()) if i in paths}
        for path in sorted(set(remembered) - now):
            pairs.extend((asset_id, album_id) for album_id in by_path.get(path, ()))
    return pairs


def relation_name(asset_id: str, album_id: str) -> str:
    """The record name Photos (and pyicloud's ``add_photo``) gives the
    CPLContainerRelation holding an asset in an album."""
    return f"{asset_id}-IN-{album_id}"


def live_relation(record: Any) -> bool:
    """Whether a looked-up record is a relation that exists (not an error
    item for a name not found, not deleted)."""
    return (
        isinstance(record, CKRecord)
        and not record.deleted
        and not record.fields.get_value("isDeleted")
    )


class AlbumReader(LibraryAccess):
    """Which albums each asset is in: album listings, and for hidden assets"""

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
        paths = _album_paths(listed, albums)
        if hidden is not None:
            pairs.extend(_left_listings(hidden.shown, found, paths))
        relations, unread = self._relations(pairs, "reading the albums of hidden assets")
        for asset_id, ids_of in relations.items():
            found.setdefault(asset_id, set()).update(ids_of)
        for asset_id in unread:
            remembered = hidden.albums.get(asset_id) if hidden is not None else None
            found[asset_id] = set(remembered or ())
        return Memberships(
            of_asset={k: frozenset(v) for k, v in found.items()},
            paths=paths,
            unread=unread,
        )

    def _regrouped(self, read: Memberships, asset_ids: Iterable[str]) -> Memberships:
        """``read`` with the albums of ``asset_ids`` read again from their
        relation records, against every album: for assets hidden or shown
        while the album listings were read (which leave hidden assets out),
        so in none of them though still in their albums. A lookup that
        fails leaves them ``unread``."""
        pairs = [(asset_id, album_id) for asset_id in asset_ids for album_id in read.paths]
        if not pairs:
            return read
        relations, unread = self._relations(pairs, "reading the albums of assets changed meanwhile")
        of_asset = dict(read.of_asset)
        for asset_id in {a for a, _ in pairs} - unread:
            of_asset[asset_id] = frozenset(relations.get(asset_id, ()))
        return Memberships(of_asset=of_asset, paths=read.paths, unread=read.unread | unread)

    def _hidden_regrouped(self, hidden: HiddenKnown, listed: Any, albums: list[Any]) -> bool:
        """Whether a changed album record is one that may rename user albums
        without being one (a folder): every hidden asset is looked up again.
        The staging album's changes are not the person's."""
        ids = {album.id for album in albums}
        staging = find_album(listed, self.staging_album) if self.staging_album else None
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
                if live_relation(record) and name in by_name:
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
