"""Frozen values shared by every layer: what exists (World) and what to do (Plan).

Nothing here does I/O. Providers produce these values; the planner consumes
a World and produces a Plan; the applier executes Actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, NamedTuple

import attrs

ORIGINAL_TIER = "original"
#: The role of an item's original file (``MediaFile.role``): the only one
#: ever encoded for a tier.
ORIGINAL_ROLE = "original"
#: A library file's role when it is the item's XMP sidecar, written by this
#: tool (``LibraryFile.role``; never a source file's role).
SIDECAR_ROLE = "sidecar"
#: A library file's role when its bytes changed while its size, mtime,
#: ctime and inode did not (bit rot, or an edit through a memory mapping):
#: recorded as its own content, archived as it is, never encoded or put
#: back; the version before is put back beside it (``LibraryFile.role``).
DAMAGED_ROLE = "damaged"


class MediaFile(NamedTuple):
    """One file of a source item (a Live Photo has two: the still and its MOV).

    ``sha256`` is the content identity of the original bytes; it is None for a
    remote source (iCloud) until the file has been downloaded and verified.
    ``ref`` is the provider's own handle for the file (a relative path, a
    resource name); ``role`` is ``original``, ``alternative`` (the RAW of a
    RAW+JPEG pair), ``live_video``, ``edited`` (the rendered edit) or
    ``edit_sidecar`` (the edit's adjustment data). Only ``original`` files
    are ever re-encoded for a tier. ``fingerprint`` is the source's own
    opaque checksum (iCloud's), used to notice change, never to verify.

    A NamedTuple, as ``FileCopy`` (one per file of a source, every run);
    made by keyword, a changed one by ``_replace``.
    """

    name: str
    size: int
    ref: str
    role: str = "original"
    sha256: str | None = None
    #: Why the file could not be read (a folder source's file with mode 000,
    #: an I/O error); it is then that item's error, retried next run.
    problem: str = ""
    fingerprint: str = ""


@attrs.frozen(kw_only=True)
class ItemMetadata:
    """What a person set on an item in its source (Photos), kept in its XMP
    sidecar: it is lost with the item otherwise. ``record_ids`` are the
    source's own ids, e.g. (("AssetId", …), ("MasterId", …))."""

    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    favorite: bool = False
    hidden: bool = False
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    #: Where the capture time was on the person's clock: seconds east of UTC
    #: (iCloud's ``timeZoneOffset``: the zone the photo was taken in, or the
    #: one "Adjust Date & Time" set). 0 also for a source that holds none,
    #: so such an item's sidecar reads as it always did (``+00:00``).
    #: ``captured_at`` stays the moment, in UTC.
    utc_offset: int = attrs.field(default=0)
    record_ids: tuple[tuple[str, str], ...] = ()
    #: Not the person's: why the source can never remove the item ("": it
    #: can), e.g. an iCloud Shared Library item when a staging album is
    #: configured. The plan says so in a note instead of planning a removal
    #: that could only fail. Never written to the sidecar.
    unremovable: str = ""

    #: Widest offset a zone has (-12:00 to +14:00), with room to spare.
    MAX_UTC_OFFSET: ClassVar[int] = 18 * 3600

    @staticmethod
    def is_utc_offset(value: object) -> bool:
        """Whether ``value`` can be a ``utc_offset``: an int of whole
        minutes (a sidecar writes it ``±HH:MM``), within ``MAX_UTC_OFFSET``."""
        return type(value) is int and value % 60 == 0 and abs(value) <= ItemMetadata.MAX_UTC_OFFSET

    @utc_offset.validator
    def _check_utc_offset(self, _: attrs.Attribute[int], value: int) -> None:
        # Checked, so every one can be written; and a remembered listing row
        # of an older layout fails to decode (a full listing then), never
        # putting another field's value here.
        if not ItemMetadata.is_utc_offset(value):
            raise ValueError(f"utc_offset: not a whole-minute offset from UTC: {value!r}")


class SourceItem(NamedTuple):
    """A media item in a source: photo, video or Live Photo pair.

    ``key`` is stable inside the source and never a bare filename (iCloud:
    asset id + master id; folder: the primary file's relative path).
    ``captured_at`` is None when unknown (never 1970). A NamedTuple, as
    ``MediaFile``: made by keyword, a changed one by ``_replace``.
    """

    source_id: str
    key: str
    files: tuple[MediaFile, ...]
    captured_at: datetime | None
    version: str = ""
    #: None: the source keeps no metadata of its own (a folder); no sidecar.
    metadata: ItemMetadata | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


class FileCopy(NamedTuple):
    """A file held by a store (a backup target or the library), hashed.

    A NamedTuple rather than an attrs value, as ``ScanEntry`` and ``Hashed``:
    a no-op run of a large library makes one per file of every store (300k
    at 100k items), and attrs' frozen ``__init__`` costs 2 µs each against
    0.7 µs (positional) for a tuple."""

    store_id: str
    path: str
    size: int
    mtime_ns: int
    sha256: str


@attrs.frozen(kw_only=True)
class SourceState:
    """What one source listed. ``trusted`` is False when the listing failed,
    came back empty, or shrank sharply: then nothing is removed from it."""

    source_id: str
    kind: str
    remote: bool
    items: tuple[SourceItem, ...]
    trusted: bool = True
    #: False when the listing itself failed (as opposed to a guard distrusting it).
    reachable: bool = True
    problem: str = ""
    #: What the listing left out on purpose, (subject, reason), for the plan
    #: to say: a folder source's symbolic links.
    remarks: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class Delivery:
    """A copy handed to a target that confirms later (the phone via Syncthing)."""

    sha256: str
    path: str
    delivered_at: datetime


@attrs.frozen(kw_only=True)
class TargetState:
    """What one backup target holds. An unavailable target (marker missing,
    listing failed) is neither written to nor read as empty."""

    target_id: str
    kind: str
    available: bool
    copies: tuple[FileCopy, ...] = ()
    pending: tuple[Delivery, ...] = ()
    #: Paths whose local staging copy was freed: they count while the phone
    #: still announces the version confirmed before freeing.
    freed: frozenset[str] = frozenset()
    problem: str = ""
    #: The filesystem (st_dev) its copies live on; None: on another device.
    device: int | None = None
    #: The copies reached through a mount below its root (a folder of
    #: another disk mounted inside the target, an overlay, a union pool), by
    #: SHA-256: the disk each counts on, as the removal gate judges its own
    #: file's (``reconciler.disks``), or (None, why it is no backup at all).
    #: Every other copy counts on ``device``.
    elsewhere: Mapping[str, tuple[int | None, str]] = attrs.field(factory=dict)
    #: Why no copy here is a backup at all, judged at its root as the gate
    #: judges each copy (its disk cannot be told, an overlay over the
    #: library, an image file kept in a source); "" when its copies count.
    #: The copies it holds now are in ``elsewhere`` too; those planned this
    #: run count for nothing either.
    not_a_backup: str = ""
    #: False when the device could not prove, this run, that it receives
    #: files (the phone's canary did not arrive): its copies are still
    #: known (not sent again) but none of them counts for a removal.
    alive: bool = True
    #: Why it is not alive; or, when alive, how the proof went.
    liveness: str = ""
    #: ``conduit`` (a phone that only passes files on to Google Photos) or
    #: ``archive``. For a conduit: every original it ever confirmed, with when
    #: (never delivered again, whether still there or not); the bytes it holds
    #: now; and remarks (subject, reason) for the plan.
    role: str = "archive"
    delivered: Mapping[str, datetime] = attrs.field(factory=dict)
    on_phone_bytes: int = 0
    remarks: tuple[tuple[str, str], ...] = ()

    def index(self) -> dict[str, FileCopy]:
        return {c.sha256: c for c in self.copies}


class LibraryFile(NamedTuple):
    """A file in the local library and the original it was made from.

    A NamedTuple, as ``FileCopy``: one is made per library file on every
    run. Made by keyword everywhere but in observation's hot loop."""

    path: str
    sha256: str
    original_sha256: str
    tier: str
    size: int
    #: The item's capture time as recorded at import (or read from the
    #: file's metadata after a lost state DB); None: not known.
    captured_at: datetime | None = None
    #: What the file is in its item, remembered after the item left its
    #: source: a ``MediaFile.role`` (``edited``, ``alternative``,
    #: ``live_video``...), ``sidecar`` (the item's XMP, this tool's), or ""
    #: when nothing ever said (taken as an original). Only an original is
    #: ever encoded for a tier.
    role: str = ""


class SidecarOwner(NamedTuple):
    """The item a sidecar of this tool describes, as the sidecar says: its
    source and key, and its original's SHA-256 and file name."""

    source_id: str
    item_key: str
    original_sha256: str
    original_name: str


@attrs.frozen(kw_only=True)
class LibraryState:
    available: bool
    files: tuple[LibraryFile, ...] = ()
    #: files on record that are gone, their content nowhere else in the library
    lost: tuple[LibraryFile, ...] = ()
    problem: str = ""
    device: int | None = None
    #: The person's files its listing left out, (subject, reason): a name
    #: not UTF-8, a folder too deep to be read. Never archived until fixed,
    #: and said so (``unreadable``), never passed over in silence.
    left_out: tuple[tuple[str, str], ...] = ()

    def index(self) -> dict[str, LibraryFile]:
        return {f.original_sha256: f for f in self.files}


@attrs.frozen(kw_only=True)
class World:
    """A snapshot of actual state, as observed at ``observed_at``.

    ``known_sha256`` maps (source_id, item key, file ref) to the SHA-256 of a
    remote file already downloaded and verified. ``settled`` maps
    (original sha256, tier) to why that encoding is not attempted again (not
    worth it, or the original cannot be decoded).
    """

    observed_at: datetime
    sources: tuple[SourceState, ...]
    targets: tuple[TargetState, ...]
    library: LibraryState
    known_sha256: Mapping[tuple[str, str, str], str] = attrs.field(factory=dict)
    settled: Mapping[tuple[str, str], str] = attrs.field(factory=dict)
    #: (source_id, item key) -> SHA-256s of the content the tool removed there.
    tombstones: Mapping[tuple[str, str], frozenset[str]] = attrs.field(factory=dict)
    #: Originals whose item the tool removed from a source (from tombstones).
    removed_sha256: frozenset[str] = frozenset()
    #: Content the sources hold that the tool made by encoding (SHA-256) ->
    #: the original it was made from: a library file's current bytes, or a
    #: copy made for a tier the item has since left. Only content that is no
    #: original in the library is looked up.
    renditions: Mapping[str, str] = attrs.field(factory=dict)
    #: The library's sidecars some available target lacks, by SHA-256: the
    #: item each describes (read from the file, only for these), so the
    #: sidecar of an item that lives only in the library is kept on every
    #: target as its files are.
    library_sidecars: Mapping[str, SidecarOwner] = attrs.field(factory=dict)
    #: How many files could not be read this observation (an I/O error, a
    #: file another program holds): what was seen of them may not last.
    unread: int = 0


# ---------------------------------------------------------------- actions


@attrs.frozen(kw_only=True)
class FileOrigin:
    """Where a file came from: lets an action name a file whose hash is not
    known yet (it is resolved after its download)."""

    source_id: str
    item_key: str
    ref: str


@attrs.frozen(kw_only=True)
class Action:
    """One step of a plan. ``id`` is deterministic, so the same world gives
    the same ids; ``depends_on`` lists ids that must succeed first."""

    kind: ClassVar[str] = "action"
    symbol: ClassVar[str] = "~"
    id: str
    #: What it acts on, for people: "icloud:IMG_0001.HEIC".
    subject: str
    #: Why, the same for every action of its kind and cause (the plan groups
    #: by it); what is this item's own (its age) is in ``detail``.
    reason: str
    depends_on: tuple[str, ...] = ()
    detail: str = ""


@attrs.frozen(kw_only=True)
class DownloadAsset(Action):
    """Fetch a remote original into the library, learning its SHA-256."""

    kind: ClassVar[str] = "download"
    symbol: ClassVar[str] = "+"
    origin: FileOrigin
    name: str
    size: int
    captured_at: datetime | None


@attrs.frozen(kw_only=True)
class CopyToLibrary(Action):
    """Place an original whose hash is known into the library."""

    kind: ClassVar[str] = "copy-to-library"
    symbol: ClassVar[str] = "+"
    sha256: str
    name: str
    size: int
    captured_at: datetime | None
    #: What the file is in its item (its role), recorded with it.
    role: str = ""
    #: Where in the library (a file put back where it was); "": dated.
    path: str = ""


@attrs.frozen(kw_only=True)
class CopyToTarget(Action):
    """Write a verified copy of an original onto a backup target."""

    kind: ClassVar[str] = "copy-to-target"
    symbol: ClassVar[str] = "+"
    target_id: str
    sha256: str | None
    origin: FileOrigin | None
    name: str
    size: int
    captured_at: datetime | None


@attrs.frozen(kw_only=True)
class EncodeForTier(Action):
    """Re-encode the library file of an original for its age tier."""

    kind: ClassVar[str] = "encode"
    symbol: ClassVar[str] = "~"
    sha256: str | None
    origin: FileOrigin | None
    name: str
    tier: str
    quality: int | None
    crf: int | None


@attrs.frozen(kw_only=True)
class WriteSidecar(Action):
    """Write (or atomically rewrite) an item's XMP sidecar beside its
    original on one store: the library or a target. ``sha256`` is the
    wanted content's digest, None while a file's hash is learned this run;
    the applier renders the content from the item (reconciler.sidecar)."""

    kind: ClassVar[str] = "write-sidecar"
    symbol: ClassVar[str] = "~"
    store_id: str
    source_id: str
    item_key: str
    sha256: str | None
    name: str


@attrs.frozen(kw_only=True)
class RemoveFromSource(Action):
    """Off-load an archived item from its source (iCloud: soft delete)."""

    kind: ClassVar[str] = "remove-from-source"
    symbol: ClassVar[str] = "-"
    source_id: str
    item_key: str
    files: tuple[MediaFile, ...]
    size: int


@attrs.frozen(kw_only=True)
class FreeStagingCopy(Action):
    """Delete this machine's staging copy of a file the phone holds, once its
    item left the source (``delete_local_copy``). The phone keeps its copy."""

    kind: ClassVar[str] = "free-staging-copy"
    symbol: ClassVar[str] = "-"
    target_id: str
    sha256: str
    path: str


@attrs.frozen(kw_only=True)
class ReleaseFromPhone(Action):
    """A conduit's file has settled (Google Photos had ``settle_days`` to back
    it up): delete it from the shared folder, so Syncthing removes it from
    the phone. It is never delivered again."""

    kind: ClassVar[str] = "release-from-phone"
    symbol: ClassVar[str] = "-"
    target_id: str
    sha256: str
    path: str


ACTION_TYPES: tuple[type[Action], ...] = (
    DownloadAsset,
    CopyToLibrary,
    CopyToTarget,
    WriteSidecar,
    EncodeForTier,
    RemoveFromSource,
    FreeStagingCopy,
    ReleaseFromPhone,
)


@attrs.frozen(kw_only=True)
class Note:
    """Something the plan will not do now, and why:

    - ``waiting``: picked up by a later run on its own (the phone has not
      confirmed yet, the deletion budget is spent, the item is too young);
    - ``unavailable``: a source or store could not be read (not mounted,
      Syncthing down, a listing failed): an error, exit 1;
    - ``blocked``: a guard refuses to act until a person looks (a listing
      shrank sharply): exit 3;
    - ``error``: one item's input is bad (cannot be decoded); reported, kept;
    - ``unreadable``: a source file could not be read: that item waits (exit
      1 until someone fixes it), the rest of the run goes on;
    - ``lost``: a library file gone that no target holds any more, every
      target read: nothing the tool can do brings it back (exit 1);
    - ``skipped``: left out on purpose, said so that nothing is left out
      silently (a symbolic link in a folder source); no effect on the exit.
    """

    status: str
    subject: str
    reason: str


@attrs.frozen(kw_only=True)
class Plan:
    """The ordered actions that make the world match the desired state.

    ``basis`` fingerprints the world it was computed from (set for a plan
    written out, ``plan --out`` or ``--json``; "" otherwise).
    """

    actions: tuple[Action, ...]
    notes: tuple[Note, ...]
    created_at: datetime
    basis: str = ""
    config_digest: str = ""

    @property
    def empty(self) -> bool:
        return not self.actions

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out
