"""An asset removed from iCloud (soft delete, to Recently Deleted): read
again and compared with what was archived, staged in the staging album if
one is configured, then deleted once the removal gate passes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import requests
from pyicloud.exceptions import PyiCloudException
from pyicloud.services.photos import PRIMARY_ZONE

from providers.icloud.access import is_deleted, split_key
from providers.icloud.albums import LOG, AlbumReader, find_album, live_relation, relation_name
from providers.icloud.assets import files_of, metadata_of
from providers.icloud.changes import Located, look_up
from providers.icloud.errors import release, server_error_codes
from reconciler import sidecar
from reconciler.errors import LoginRequiredError, ProviderError
from reconciler.media.metadata import is_placeholder_date
from reconciler.model import ItemMetadata, MediaFile, SourceItem

#: What CloudKit answers a delete whose change tag is stale (the record
#: changed since it was read) or whose record is not there.
REFUSED_CODES = frozenset({"CONFLICT", "NOT_FOUND"})

#: What CloudKit may answer a create of a relation that already exists.
ALREADY_THERE_CODES = frozenset({"EXISTS", "CONFLICT"})


def unstageable(album: str) -> str:
    return (
        f"in a Shared Library, which the staging album {album!r} cannot hold "
        "(only the personal library has albums)"
    )


def _as_archived(file: MediaFile) -> tuple[str, str, str, int, str]:
    """What the sidecar records of a file, but for its SHA-256."""
    return (file.ref, file.role, file.name, file.size, file.fingerprint)


def captured_at(value: datetime | None) -> datetime | None:
    """UTC, or None for Apple's "unknown" (epoch 0, shown by pyicloud as 1970) and
    any other placeholder date (``metadata.is_placeholder_date``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if is_placeholder_date(value):
        return None
    return value.astimezone(UTC)


class Remover(AlbumReader):
    """An asset removed from iCloud (soft delete, to Recently Deleted): read"""

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        """Soft delete: the asset moves to Recently Deleted. Idempotent.
        The asset is read again first, never taken from the listing: what
        it is now is compared with what was archived; ``proven`` (the
        removal gate) is asked last, just before the delete, each time."""
        located = self._reread(item)
        if located is None or is_deleted(located.asset):
            return
        try:
            self._delete(item, located, proven)
        except (PyiCloudException, requests.RequestException) as e:
            codes = server_error_codes(e)
            if not codes & REFUSED_CODES:
                # Any other failure may have come after iCloud carried the
                # delete out (a 503 for a lost answer, a dropped connection):
                # its note (``_note_unheard``) stays, for the next listing
                # to settle.
                raise self._error(e, f"remove {item.key}") from e
            # Changed elsewhere since we read it: re-read, and retry once
            # with the fresh change tag if it is still there.
            LOG.info("%s: remove %s: %s; re-reading", self.id, item.key, ", ".join(sorted(codes)))
            fresh = self._reread(item)
            if fresh is None or is_deleted(fresh.asset):
                return
            # Read still there: that delete did not happen (the retry, if
            # the checks pass, notes its own).
            self._forget_unheard(item)
            try:
                self._delete(item, fresh, proven)
            except (PyiCloudException, requests.RequestException) as e2:
                raise self._error(e2, f"remove {item.key}") from e2
        self._seen.pop(item.key, None)

    def _delete(self, item: SourceItem, located: Located, proven: Callable[[], object]) -> None:
        asset = located.asset
        _, master_id = split_key(item.key)
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
            self._check_metadata(item, asset, self._albums_read(item, asset))
        # Staged only once the checks passed: the album lists what was removed.
        # Its failures are ProviderErrors already, so ``remove`` never takes a
        # CONFLICT of the album step for one of the delete.
        self._stage(item, located)
        proven()  # the copies read now: nothing slow comes between them and the delete
        if item.metadata is not None:
            # The gate may have taken minutes (a large video re-read on a
            # NAS). The delete is guarded by the asset's change tag, which
            # every field the sidecar records moves (title, description,
            # keywords, location, favourite, hidden, capture date and zone,
            # an edit) but the albums: joining one creates a relation record,
            # renaming one changes the album's. Those are read again here,
            # last, so a membership made while the gate read the copies
            # keeps the item (the next run rewrites its sidecar first).
            self._check_albums(item, self._albums_read(item, asset))
        self._note_unheard(item, located)
        with self._lock:
            asset.delete()

    def _note_unheard(self, item: SourceItem, located: Located) -> None:
        """Note in the state DB (given one: ``remember_listing``) that the
        delete is being sent: should its answer be lost, whether it happened
        is unknown, never "it did not". The next listing settles it
        (``_settle_unheard``). The tombstone it would make holds what the
        gate proved archived: every file's SHA-256 and the sidecar's."""
        memory = self._memory
        if memory is None:
            return
        downloaded = memory.downloaded(self.id, item.key)
        shas = {f.ref: downloaded[f.ref] for f in item.files if f.ref in downloaded}
        proven = list(shas.values())
        if item.metadata is not None and len(shas) == len(item.files):
            proven.append(sidecar.digest(item, shas))
        memory.record_unheard_removal(
            self.id, item.key, sha256s=proven, size=item.size, place=dict(located.zone_id)
        )

    def _forget_unheard(self, item: SourceItem) -> None:
        if self._memory is not None:
            self._memory.forget_unheard_removal(self.id, item.key)

    def _settle_unheard(self) -> None:
        """Settle the removals whose answer was never heard (``_note_unheard``)
        by reading each asset now: in Recently Deleted, or gone, it was
        removed (its tombstone is written, the listing count lowered, as
        had the answer come); still there, it was not (the note goes). One
        that cannot be read stays unknown until the next listing; the shrink
        guard meanwhile counts it as the tool's own (``observe``)."""
        memory = self._memory
        if memory is None:
            return
        for key, note in memory.unheard_removals(self.id).items():
            try:
                with self._lock:
                    located = self._reread_key(key, note.place or None)
            except LoginRequiredError:
                raise
            except ProviderError as e:
                LOG.warning(
                    "%s: whether removing %s reached iCloud is still unknown (%s); "
                    "read again next run",
                    self.id,
                    key,
                    e,
                )
                continue
            if located is None or is_deleted(located.asset):
                LOG.info("%s: remove %s: its answer was lost, but it was removed", self.id, key)
                memory.settle_unheard_removal(self.id, key)
            else:
                LOG.info("%s: remove %s: its answer was lost; it was not removed", self.id, key)
                memory.forget_unheard_removal(self.id, key)

    def _albums_read(self, item: SourceItem, asset: Any) -> tuple[str, ...]:
        with self._lock:
            return self._albums_now(item, asset.id)

    def _check_metadata(self, item: SourceItem, asset: Any, albums: tuple[str, ...]) -> None:
        """Raise unless the asset's metadata, read now, is what its sidecar holds."""
        assert item.metadata is not None
        meta = metadata_of(asset, albums)
        in_sidecar = attrs.evolve(item.metadata, unremovable="")
        changed = [
            f.name
            for f in attrs.fields(ItemMetadata)
            if getattr(meta, f.name) != getattr(in_sidecar, f.name)
        ]
        if captured_at(asset.asset_date) != item.captured_at:
            changed.append("capture date")
        if changed:
            raise ProviderError(
                f"remove {item.key}: its metadata changed since it was archived "
                f"({', '.join(sorted(changed))}; the sidecar would miss it); not removed: "
                "the next run rewrites the sidecar, then removes it",
                provider=self.id,
            )

    def _check_albums(self, item: SourceItem, albums: tuple[str, ...]) -> None:
        """Raise unless the albums read after the gate are the sidecar's."""
        assert item.metadata is not None
        if albums != item.metadata.albums:
            raise ProviderError(
                f"remove {item.key}: its albums changed while its copies were checked "
                "(the sidecar would miss them); not removed: the next run rewrites the "
                "sidecar, then removes it",
                provider=self.id,
            )

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
                f"remove {item.key}: {unstageable(name)}; not removed", provider=self.id
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
            album = find_album(albums, name)
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
        return live_relation(found.get(relation))
