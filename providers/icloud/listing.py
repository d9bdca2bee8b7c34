"""The remembered iCloud listing: how items are kept in the state DB between
runs, and what a page of CloudKit's change feed means for them.

A full listing reads every asset (50k assets: hundreds of pages); CloudKit's
``changes/zone`` names only the records changed since a sync token. A run
reads those, re-reads the assets they touch and applies them to the last
listing, which the state DB keeps (one row per asset, in listing order).

What a change means:

- a CPLAsset: that asset is re-read (new, edited, favourited, hidden,
  deleted to Recently Deleted: whatever it now is);
- a CPLMaster: every remembered asset of that master is re-read (an edit's
  adjustment data lives on the master);
- a CPLAlbum or CPLContainerRelation: album memberships are read again, once,
  for every shown item (album listings); so they are when an asset new to the
  listing appears (one restored from Recently Deleted keeps album relations
  the feed does not name again) and when one is hidden or shown. Album
  listings leave hidden assets out: their memberships are looked up by
  relation name, only where something changed (the albums named, the pairs a
  relation's name ``<asset id>-IN-<album id>`` gives, every album for a
  hidden asset re-read), the rest kept from the remembered listing; a shown
  asset an album's listing no longer holds (it may have been hidden as the
  albums were read) has that relation looked up too, never taken for gone;
- a tombstone of a remembered asset or master: those assets are re-read (and
  found gone); a tombstone of anything else may have been a relation, so
  memberships are read again too;
- any other record type (faces, memories…) changes nothing we keep.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from reconciler.model import ItemMetadata, MediaFile, SourceItem

#: Record types whose changes touch album memberships.
ALBUM_TYPES = frozenset({"CPLAlbum", "CPLContainerRelation"})


#: ItemMetadata's fields, in the order a row keeps them (positional: a run
#: decodes every remembered row, and field names would double the work).
#: Not ``unremovable``: it follows the configuration, and is set afresh;
#: except ``ALBUMS_UNREAD``, kept (after the rest) so a later run reads again.
#: A field added to ItemMetadata changes a row's length: rows of the older
#: layout fail to decode (strictly), and a full listing reads them afresh.
_META = tuple(f.name for f in attrs.fields(ItemMetadata) if f.name != "unremovable")
_TUPLES = ("keywords", "albums")
#: How ``assets.files_of`` names files (2: each resource by its own type; 3:
#: an edit's adjustment data held in its record too, ``assets.inline_recipe``).
#: A row named otherwise is of an older format: a full listing reads it
#: afresh, or an item would keep its old names until it changes, and
#: ``remove`` (comparing them with the asset's) would refuse it meanwhile.
NAMING = 3
#: ``unremovable`` of a hidden asset whose album relations could not be read.
ALBUMS_UNREAD = (
    "hidden, and its albums could not be read (from its album relations); read again next run"
)


def encode(item: SourceItem, album_ids: Iterable[str] = ()) -> str:
    """An item as one compact JSON text (a row of the remembered listing),
    with the record ids of the albums holding it where a later run needs
    them (a hidden asset's: they say which of two albums of one name it is in)."""
    meta = item.metadata
    return json.dumps(
        [
            item.key,
            item.version,
            item.captured_at.isoformat() if item.captured_at else None,
            [[f.name, f.size, f.ref, f.role, f.fingerprint] for f in item.files],
            _meta_row(meta) if meta is not None else None,
            sorted(album_ids),
            NAMING,
        ],
        separators=(",", ":"),
    )


def decode(source_id: str, text: str) -> SourceItem:
    """The item ``encode`` wrote (of the source ``source_id``). Raises
    ValueError or TypeError for a row it cannot read."""
    return decode_row(source_id, text)[0]


def decode_row(source_id: str, text: str) -> tuple[SourceItem, tuple[str, ...] | None]:
    """The item ``encode`` wrote and its album ids (None: a row of an older
    format, which kept none, whose album paths may be fullnames, or whose
    file names an older ``NAMING`` made). Raises ValueError or TypeError
    for a row it cannot read."""
    row = json.loads(text)
    key, version, captured_at, files, meta = row[:5]
    if len(row) > 7:
        raise ValueError(f"a listing row of {len(row)} fields")
    current = len(row) == 7 and row[6] == NAMING
    album_ids = tuple(str(i) for i in row[5]) if current else None
    item = SourceItem(
        source_id=source_id,
        key=key,
        version=version,
        captured_at=datetime.fromisoformat(captured_at) if captured_at else None,
        files=tuple(
            MediaFile(name=n, size=s, ref=r, role=role, fingerprint=fp)
            for n, s, r, role, fp in files
        ),
        metadata=_metadata(meta) if meta is not None else None,
    )
    return item, album_ids


def _meta_row(meta: ItemMetadata) -> list[Any]:
    row = [getattr(meta, name) for name in _META]
    return [*row, ALBUMS_UNREAD] if meta.unremovable == ALBUMS_UNREAD else row


def _metadata(values: list[Any]) -> ItemMetadata:
    unread = len(values) == len(_META) + 1 and values[-1] == ALBUMS_UNREAD
    fields: dict[str, Any] = dict(
        zip(_META, values[: len(_META)] if unread else values, strict=True)
    )
    if unread:
        fields["unremovable"] = ALBUMS_UNREAD
    for name in _TUPLES:
        fields[name] = tuple(fields[name])
    fields["record_ids"] = tuple((k, v) for k, v in fields["record_ids"])
    return ItemMetadata(**fields)


@attrs.define
class Changes:
    """What a zone's change feed asks to re-read."""

    #: Remembered or new asset record names to look up again.
    assets: set[str] = attrs.field(factory=set)
    #: Album memberships must be read again.
    albums: bool = False
    #: Albums (CPLAlbum records, not deleted) changed: every hidden asset's
    #: membership of each is looked up again.
    album_ids: set[str] = attrs.field(factory=set)
    #: (asset id, album id) of every relation record changed or deleted.
    relations: set[tuple[str, str]] = attrs.field(factory=set)
    #: Record names seen (for the log).
    records: int = 0

    def add(
        self,
        *,
        name: str,
        record_type: str | None,
        tombstone: bool,
        known_assets: Mapping[str, Any],
        assets_of_master: Mapping[str, Iterable[str]],
    ) -> None:
        """Take one change event (a record updated, or a tombstone)."""
        self.records += 1
        if name in known_assets or record_type == "CPLAsset":
            self.assets.add(name)
        elif name in assets_of_master or record_type == "CPLMaster":
            self.assets.update(assets_of_master.get(name, ()))
        elif record_type in ALBUM_TYPES or tombstone:
            self.albums = True
            asset_id, sep, album_id = name.partition("-IN-")
            if sep and record_type in (None, "CPLContainerRelation"):
                self.relations.add((asset_id, album_id))
            elif record_type == "CPLAlbum" and not tombstone:
                self.album_ids.add(name)
