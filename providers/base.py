"""The provider protocols: what the core asks of a source or a store.

SDK types (pyicloud, requests, Syncthing JSON) never cross this boundary:
providers speak only in the values of ``reconciler.model`` and raise only
``ProviderError`` (or its subclasses).

- A **Source** lists items and can fetch and remove them (the folder source,
  iCloud). Listing is a generator so a remote source can stream pages.
- A **Store** holds files addressed by relative path: the backup targets and
  the local library. It can say whether it is available (marker present),
  list its files hashed, write a file atomically and verify a copy now.
- A **Hasher** is handed to listings by the observer; it is backed by the
  state DB's hash cache, so unchanged files are never re-read.
"""

from __future__ import annotations

import os
import re
import select
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import NamedTuple, Protocol, Self, TypeVar, overload, runtime_checkable

import attrs

from reconciler.model import FileCopy, MediaFile, SourceItem
from reconciler.state import StateDB


class ScanEntry(NamedTuple):
    """A file seen by a walk: enough to look it up in the hash cache.

    A NamedTuple rather than an attrs value: a walk of a large library makes
    hundreds of thousands of these, and tuples are several times cheaper.
    """

    path: str
    rel: str
    size: int
    mtime_ns: int
    inode: int
    #: The kernel's change time, which no program sets: a file rewritten in
    #: place with its size and mtime kept (``exiftool -P``) still shows it.
    ctime_ns: int


_Row = TypeVar("_Row")


class _Columns(Sequence[_Row]):
    """A sequence held as columns: a row is made only when one is asked for
    (``_row``, given an index in range); slices and negative indexes as a
    list's."""

    __slots__ = ()

    def _row(self, i: int) -> _Row:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> _Row: ...
    @overload
    def __getitem__(self, i: slice) -> list[_Row]: ...
    def __getitem__(self, i: int | slice) -> _Row | list[_Row]:
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        return self._row(range(len(self))[i])  # out of range raises IndexError


class ColumnWalk(_Columns[ScanEntry]):
    """A walk held as columns, as the walk-ahead helper sends it: a
    ``ScanEntry`` is made only when one is asked for.

    A no-op run takes most trees' hashes from their listings and needs of
    each file only its relative path, size and mtime; making 100k entries
    (each with its absolute path) to read three fields back cost 0.15 s per
    tree. ``rels``, ``sizes`` and ``mtimes`` are read directly instead."""

    __slots__ = ("ctimes", "inodes", "mtimes", "rels", "sizes", "top")

    def __init__(
        self,
        top: str,
        rels: list[str],
        sizes: array[int],
        mtimes: array[int],
        inodes: array[int],
        ctimes: array[int],
    ) -> None:
        if not len(rels) == len(sizes) == len(mtimes) == len(inodes) == len(ctimes):
            raise ValueError("a walk's columns differ in length")
        self.top = top if top.endswith("/") else top + "/"
        self.rels, self.sizes, self.mtimes, self.inodes = rels, sizes, mtimes, inodes
        self.ctimes = ctimes

    def __len__(self) -> int:
        return len(self.rels)

    def _row(self, i: int) -> ScanEntry:
        rel = self.rels[i]
        return ScanEntry(
            self.top + rel, rel, self.sizes[i], self.mtimes[i], self.inodes[i], self.ctimes[i]
        )

    def __iter__(self) -> Iterator[ScanEntry]:
        return map(
            partial(tuple.__new__, ScanEntry),
            zip(
                map(self.top.__add__, self.rels),
                self.rels,
                self.sizes,
                self.mtimes,
                self.inodes,
                self.ctimes,
                strict=True,
            ),
        )


class Hashed(NamedTuple):
    """A file's SHA-256 (and capture date, when asked), one per ScanEntry.

    ``sha256`` is None when the file could not be read (permissions, an I/O
    error); ``error`` then says why. One bad file is that file's problem,
    never the whole listing's."""

    sha256: str | None
    captured_at_ts: float | None = None
    error: str = ""


class HashedColumns(_Columns[Hashed]):
    """Every file's ``Hashed``, held as columns: a tree taken from its
    listing (``CachedHasher``) has each file's SHA-256 and capture time
    already, and a store's copies need only the SHA-256s, read from
    ``shas`` directly; a ``Hashed`` is made only when one is asked for.
    A file read again this run is set in place (``out[i] = Hashed(…)``)."""

    __slots__ = ("captured", "errors", "shas")

    def __init__(self, shas: list[str | None], captured: list[float | None]) -> None:
        if len(shas) != len(captured):
            raise ValueError("hashed columns differ in length")
        self.shas, self.captured = shas, captured
        #: the files that could not be read, by index: most trees have none
        self.errors: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.shas)

    def _row(self, i: int) -> Hashed:
        return Hashed(self.shas[i], self.captured[i], self.errors.get(i, ""))

    def __setitem__(self, i: int, h: Hashed) -> None:
        i = range(len(self))[i]
        self.shas[i], self.captured[i] = h.sha256, h.captured_at_ts
        if h.error:
            self.errors[i] = h.error
        else:
            self.errors.pop(i, None)

    def __iter__(self) -> Iterator[Hashed]:
        errors = self.errors
        said = map(errors.get, range(len(self)), repeat("")) if errors else repeat("")
        return map(
            partial(tuple.__new__, Hashed),
            zip(self.shas, self.captured, said, strict=False),  # ``said`` may repeat
        )


class Hasher(Protocol):
    """Walks local trees and hashes their files, reusing cached results for
    unchanged (size, mtime, inode)."""

    def walk(
        self,
        root: Path,
        *,
        skip: Callable[[str], bool] | None = None,
        undecodable: list[str] | None = None,
        links: list[str] | None = None,
    ) -> Sequence[ScanEntry]:
        """Every file under ``root``, as ``providers.filesystem.scan_tree``
        yields them (its parameters mean the same). The observer may have
        walked the tree already, in a helper process (``WalksLocally``)."""
        ...

    def hash_entries(
        self, entries: Iterable[ScanEntry], *, dates: bool = False, tree: str | None = None
    ) -> Sequence[Hashed]:
        """Return one result per entry, in order. With ``dates``, also read
        the capture date (EXIF DateTimeOriginal) where the file has one.
        ``tree`` (a folder path ending in "/") says the entries are every
        file under it: what the cache knows there besides them is gone."""
        ...


class Closing:
    """``with provider:`` for anything holding a session: ``close()`` on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.frozen(kw_only=True)
class Availability:
    available: bool
    reason: str = ""


@attrs.frozen
class Confirmation:
    """Whether a device is proven to hold a file, and why (or why not yet).

    ``evidence`` names the exact version the device announced (for Syncthing:
    the version vector and size), recorded so that a later run can tell the
    same file from a changed or deleted one.
    """

    held: bool
    reason: str
    evidence: str = ""


@attrs.frozen(kw_only=True)
class Liveness:
    """Whether a device proved, this run, that it receives files now (a fresh
    canary reached it), and how long the round trip took."""

    alive: bool
    reason: str
    round_trip_s: float | None = None


@runtime_checkable
class Source(Protocol):
    id: str
    kind: str
    #: True when file hashes are only known after a download (iCloud).
    remote: bool

    @property
    def remarks(self) -> Sequence[tuple[str, str]]:
        """What the last listing left out on purpose, (subject, reason), for
        the plan to say so (a folder's symbolic links): nothing is left out
        silently."""
        ...

    def list_items(self, hasher: Hasher) -> Iterator[SourceItem]:
        """Yield every item; raise ProviderError if the listing fails."""
        ...

    def fetch(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        """Write the file's original bytes to a new file ``dest`` (a temporary
        path the caller owns), checking the byte count, and return the SHA-256
        of what was written (hashed while writing: large videos are read
        once). Raise ProviderError on failure."""
        ...

    def local_path(self, item: SourceItem, file: MediaFile) -> Path | None:
        """The file on this machine, when the source keeps it here (a folder);
        None for a remote source. Callers verify its hash before trusting it."""
        ...

    def remove(self, item: SourceItem) -> None:
        """Remove the item from the source (soft delete where the source has one).
        Only the applier calls this, and only after its own removal gate."""
        ...


@attrs.frozen
class LocalTree:
    """A folder tree on this machine that a listing walks: ``root``, and the
    file names the walk passes over (``skip``: another tool's own files).
    ``skip`` must be a module-level function: it is sent to the helper
    process that walks the tree ahead."""

    root: Path
    skip: Callable[[str], bool] | None = None


@runtime_checkable
class WalksLocally(Protocol):
    """A source or store whose listing walks a local tree (a folder, a disk,
    the phone's Syncthing folder): on a large library the observer walks it
    ahead, in a helper process, while this one works on the trees before it."""

    @property
    def local_tree(self) -> LocalTree: ...


@runtime_checkable
class RemembersListing(Protocol):
    """A source that keeps its last listing in the state DB and, between
    full listings, lists only what changed since (iCloud's change feed)."""

    def remember_listing(self, db: StateDB, now: datetime) -> None:
        """Use ``db`` for this observation, made at ``now``."""
        ...


@runtime_checkable
class Store(Protocol):
    id: str
    kind: str

    def availability(self) -> Availability: ...

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        """Yield every file with its SHA-256; raise ProviderError if the walk fails."""
        ...

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        """Copy ``src`` to ``rel_path`` atomically (temporary name, fsync,
        rename), read it back and verify its SHA-256. If ``rel_path`` is taken
        by a different file, a collision-proof name is chosen; the returned
        copy says where it landed. ``mtime_ns``: the new file's mtime (the
        capture date)."""
        ...

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        """Write an XMP sidecar (``*.xmp``) at ``rel_path``, atomically
        replacing an older one: a sidecar is metadata, rewritten when the
        metadata changes. Media files are never replaced."""
        ...

    def verify(self, copy: FileCopy) -> bool:
        """Re-read the copy now: True only if it still hashes to its sha256."""
        ...

    def local_path(self, rel_path: str) -> Path | None:
        """Where ``rel_path`` lives on this machine (a mounted store), or None."""
        ...

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        """Write the copy's bytes to ``dest`` (to restore or re-copy from it)."""
        ...


@runtime_checkable
class ConfirmingStore(Store, Protocol):
    """A store whose copies count only once a device confirms them (the phone).

    ``put`` *delivers*; ``prove_alive`` makes the device show, once per run,
    that it receives files now (no copy counts without it); ``confirm`` says
    whether the device holds that exact file now; ``confirm_freed`` whether it
    still announces a file whose local copy was freed, unchanged since
    ``evidence``. ``free_local`` deletes this machine's staging copy so that
    the device keeps its own (only the applier calls it, only when configured).
    ``identity`` names the device and folder that confirmations were made by.
    """

    @property
    def identity(self) -> str: ...

    def prove_alive(self) -> Liveness: ...

    def confirm(self, rel_path: str) -> Confirmation: ...

    def confirm_freed(self, rel_path: str, evidence: str) -> Confirmation: ...

    def free_local(self, rel_path: str) -> Confirmation: ...

    def release(self, rel_path: str) -> None:
        """Delete the local copy so that the deletion reaches the device too
        (a conduit's settled file). Only the applier calls it."""
        ...

    def ignored_here(self, rel_path: str) -> bool:
        """This machine's sync ignores ``rel_path`` (a pattern of the
        person's): a deletion here would never reach the device."""
        ...


def disk_of(store: Store, table: Mapping[int, Mount] | None = None) -> int | None:
    """The disk (``disk_at``) a store's copies live on: None for a store
    whose copies live on another device (the phone) or not on this
    machine. ``table``: as ``locate``'s."""
    found = root_of(store, table)
    return None if found is None else beneath(found, table).disk


def root_of(store: Store, table: Mapping[int, Mount] | None = None) -> Location | None:
    """Where a store's root really is (``locate``): None for a store whose
    copies live on another device (the phone) or not on this machine."""
    if isinstance(store, ConfirmingStore):
        return None
    root = store.local_path(".")
    return None if root is None else locate(root, table)


def disk_at(path: Path | str, table: Mapping[int, Mount] | None = None) -> int | None:
    """The physical disk the file or folder at ``path`` is on, as one number
    (``beneath``: shared by every filesystem on that disk, or on a disk
    stacked with it); None if it cannot be looked at. Not a file's
    ``st_dev``: btrfs gives each subvolume a number of its own, so two
    subvolumes of one disk would pass for two disks; the kernel's mount
    table names the filesystem itself (``locate``; ``table`` as there).
    Nor the filesystem's own number: two partitions of one disk have one
    each, and a filesystem read from a disk image (a loop device) is on the
    disk that holds the image's file. Where sysfs cannot say all of it,
    the number of what it could see (``Beneath.unknown`` says what not)."""
    found = locate(path, table)
    return None if found is None else beneath(found, table).disk


#: The kernel's table of this process's mounts (Linux). Where it cannot be
#: read (another OS), each file's own ``st_dev`` stands for its filesystem
#: and no bind mount is seen through.
MOUNTINFO = "/proc/self/mountinfo"
_OCTAL = re.compile(rb"\\([0-7]{3})")


#: Filesystems that show other filesystems' folders merged, without the
#: mount table saying which (a FUSE pool or union: mergerfs, bindfs…): a
#: file reached through one may be any of those folders' file.
UNSEEN_LAYERS = frozenset(
    {
        "aufs",
        "unionfs",
        "fuse.bindfs",
        "fuse.fuse-overlayfs",
        "fuse.mergerfs",
        "fuse.mhddfs",
        "fuse.unionfs",
        "fuse.unionfs-fuse",
    }
)
#: An overlay's options that name the folders it shows (``layers``).
_LAYER_OPTIONS = ("upperdir", "lowerdir", "lowerdir+", "datadir+")
_LAYER_SPLIT = re.compile(r"(?<!\\):+")


@attrs.frozen(kw_only=True)
class Mount:
    """One line of the mount table: the folder ``root`` of the filesystem
    ``device`` (``os.makedev`` of the table's major:minor, one for every
    subvolume of a btrfs) shown at the mount point ``point``; ``fstype``
    and ``options`` (the filesystem's own, as the table writes them:
    escapes kept) say whether it shows other folders (``layers``)."""

    id: int
    parent: int
    device: int
    root: str
    point: str
    fstype: str = ""
    options: str = ""

    def location(self, path: str) -> Location | None:
        """Where ``path`` (a real path at or below ``point``) is on this
        mount's filesystem; None when it is not below ``point`` (reached
        from outside the mount: a chroot)."""
        point = self.point
        if path == point:
            below = ""
        elif path.startswith(point if point.endswith("/") else point + "/"):
            below = path[len(point) :].lstrip("/")
        else:
            return None
        return Location(
            self.device, os.path.join(self.root, below).rstrip("/") or "/", mount=self.id
        )

    def layers(self) -> tuple[str, ...] | None:
        """The folders whose files this mount shows merged, as the table
        names them (an overlay: its upper folder, then its lower ones); ()
        for a filesystem that shows only its own files; None when it shows
        other folders that the table does not name (``UNSEEN_LAYERS``), or
        names them by paths relative to a folder it does not say."""
        if self.fstype in UNSEEN_LAYERS:
            return None
        if self.fstype != "overlay":
            return ()
        found: list[str] = []
        for option in self.options.split(","):  # a comma in a path is escaped
            key, _, value = option.partition("=")
            if key in _LAYER_OPTIONS:
                # a colon in a path is written "\:"; "::" begins data-only layers
                found += (
                    layer.replace("\\:", ":")
                    for layer in _LAYER_SPLIT.split(_unescape(os.fsencode(value)))
                    if layer
                )
        if not found or not all(os.path.isabs(layer) for layer in found):
            return None
        return tuple(found)


def mount_table(mountinfo: str = MOUNTINFO) -> dict[int, Mount]:
    """Every mount of this process by its id, from the kernel's table: no
    stat (a dead share's is never touched). The table writes a space, tab,
    newline or backslash in a path as an octal escape (``\\040``). Empty
    where it cannot be read.

    Current at each call: the kernel tells a reader of the table that it
    changed (``poll``), so it is read again only then. The removal gate
    asks for it once per removal; with a few hundred mounts (snaps,
    containers), reading it each time cost more than the rest of the check."""
    global _table_generation
    with _watch_lock:
        watch = _watched.get(mountinfo)
        if watch is None or watch.pid != os.getpid() or not watch.polls or watch.changed():
            if watch is not None:
                watch.close()
            watch = _Watch.open(mountinfo)
            _table_generation += 1  # what lies beneath each filesystem may have changed too
            if watch is None:
                _watched.pop(mountinfo, None)
                return {}
            _watched[mountinfo] = watch
        return dict(watch.table)


class _Watch:
    """The mount table, kept open and parsed, with how to tell it changed:
    the kernel flags a poll of it (POLLPRI) after each mount or unmount."""

    def __init__(self, fd: int, table: dict[int, Mount], *, polls: bool) -> None:
        self.fd, self.table, self.pid = fd, table, os.getpid()
        #: only the kernel's own table says when it changed; a file does not
        self.polls = polls
        self.poll = select.poll()
        self.poll.register(fd, select.POLLPRI)

    @classmethod
    def open(cls, mountinfo: str) -> _Watch | None:
        try:
            fd = os.open(mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            watch = cls(fd, {}, polls=mountinfo.startswith("/proc/"))
            watch.changed()  # from here on, a change is flagged: then read it
            watch.table = _parse(_read_all(fd))
        except OSError:
            os.close(fd)
            return None
        return watch

    def changed(self) -> bool:
        """Whether the table changed since the last ask (or cannot tell)."""
        try:
            return bool(self.poll.poll(0))
        except OSError:
            return True

    def close(self) -> None:
        if self.pid == os.getpid():
            os.close(self.fd)  # a forked child's copy is the parent's to close


_watched: dict[str, _Watch] = {}
_watch_lock = threading.Lock()


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(table: bytes) -> dict[int, Mount]:
    found = {}
    for line in table.splitlines():
        fields = line.split(b" ", 5)
        if len(fields) < 5:
            continue
        # id, parent, major:minor, root, mount point, options, [optional
        # fields], "-", filesystem type, source, the filesystem's options
        major, _, minor = fields[2].partition(b":")
        _, dash, own = fields[5].partition(b" - ") if len(fields) > 5 else (b"", b"", b"")
        fstype, _, rest = own.partition(b" ")
        _, _, options = rest.partition(b" ")
        try:
            mount = Mount(
                id=int(fields[0]),
                parent=int(fields[1]),
                device=os.makedev(int(major), int(minor)),
                root=_unescape(fields[3]),
                point=_unescape(fields[4]),
                fstype=_unescape(fstype) if dash else "",
                options=os.fsdecode(options) if dash else "",
            )
        except ValueError:
            continue  # not a line of a mount table
        found[mount.id] = mount
    return found


def _unescape(raw: bytes) -> str:
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m[1], 8) & 0xFF]), raw))


@attrs.frozen
class Location:
    """Where a file or folder really is: its filesystem (``disk_at``) and
    its path from that filesystem's own top, the same through every mount
    that shows it (a bind mount of a folder, a btrfs subvolume mounted on
    its own, a share mounted twice)."""

    device: int
    path: str
    #: the id of the mount it was reached through, when known
    mount: int | None = attrs.field(default=None, eq=False)

    def within(self, other: Location) -> bool:
        """This is ``other``, or lies inside it."""
        if self.device != other.device:
            return False
        top = other.path.rstrip("/") + "/"
        return self.path == other.path or self.path.startswith(top)

    def overlaps(self, other: Location) -> bool:
        """One of the two is, or lies inside, the other."""
        return self.within(other) or other.within(self)


#: Where Linux describes each block device and how it is stacked (sysfs).
SYS = "/sys"
#: Disks stack a few deep at most (a partition of an image in an LVM on a RAID).
_DEPTH = 12


@attrs.frozen(kw_only=True)
class Beneath:
    """What a filesystem lies on, all the way down (``beneath``): ``disks``,
    the whole physical disks it dies with, by device number (a partition's
    disk; an LVM, LUKS or RAID device's disks; a disk image's, the disk
    holding its file); ``disk``, one number standing for them, the same for
    every filesystem sharing any disk with them (so one disk is one backup);
    ``images``, the disk-image files it is read from and where each lies;
    ``unknown``, what could not be looked at ("" if nothing): then ``disks``
    may miss some, and nothing is known to be off them."""

    disk: int
    disks: frozenset[int]
    images: tuple[tuple[str, Location], ...] = ()
    unknown: str = ""


def beneath(where: Location, table: Mapping[int, Mount] | None = None, sys: str = SYS) -> Beneath:
    """The physical disks the filesystem of ``where`` lies on (``Beneath``),
    from a few reads of sysfs, kept until the mount table changes. A
    filesystem of no block device (tmpfs, a network share, FUSE, an overlay
    or a btrfs: numbers of major 0) is its own disk. ``table``: as
    ``locate``'s, to find a disk image's file."""
    table = mount_table() if table is None else table  # (read: a change empties the cache)
    if _seen.generation != _table_generation:
        _seen.found, _seen.links, _seen.generation = {}, {}, _table_generation
    key = (sys, where.device)
    found = _seen.found.get(key)
    if found is None:
        walk = _Walk(table, sys)
        walk.filesystem(where.device, 0)
        joined: Mapping[int, int] | str = {}
        if any(os.major(d) for d in walk.disks):  # a block device: may share a disk
            if sys not in _seen.links:
                _seen.links[sys] = _joined(table, sys)
            joined = _seen.links[sys]
        found = Beneath(
            disk=min((_at(joined, d) for d in walk.disks), default=where.device),
            disks=frozenset(walk.disks),
            images=tuple(walk.images),
            unknown="; ".join([*walk.unknown, *([joined] if isinstance(joined, str) else [])]),
        )
        _seen.found[key] = found
    return found


class _Seen:
    """What ``beneath`` looked at, kept until the mount table changes."""

    def __init__(self) -> None:
        self.generation = -1
        self.found: dict[tuple[str, int], Beneath] = {}
        self.links: dict[str, Mapping[int, int] | str] = {}


_seen = _Seen()
#: bumped each time ``mount_table`` reads the table anew
_table_generation = 0


def _at(joined: Mapping[int, int] | str, disk: int) -> int:
    return disk if isinstance(joined, str) else joined.get(disk, disk)


class _Walk:
    """One look down from a device to the disks under it (``beneath``)."""

    def __init__(self, table: Mapping[int, Mount], sys: str) -> None:
        self.table, self.sys = table, sys
        self.disks: set[int] = set()
        self.images: list[tuple[str, Location]] = []
        self.unknown: list[str] = []

    def filesystem(self, device: int, depth: int) -> None:
        if os.major(device) == 0:
            self.disks.add(device)  # no block device: the filesystem is its own
        else:
            self.block(device, depth)

    def block(self, device: int, depth: int) -> None:
        node = f"{self.sys}/dev/block/{os.major(device)}:{os.minor(device)}"
        try:
            if depth > _DEPTH:
                raise OSError(f"disks stacked more than {_DEPTH} deep")
            real = os.path.realpath(node, strict=True)
            if os.path.exists(f"{real}/partition"):  # a partition: its disk is the folder above
                self.block(_device_in(os.path.dirname(real)), depth + 1)
            elif os.path.isdir(f"{real}/loop"):  # a disk image: on the disk of its file
                image = _backing_file(real)
                found = locate(image, self.table)
                if found is None:
                    raise OSError(f"its image file {image} cannot be looked at")
                self.images.append((image, found))
                self.filesystem(found.device, depth + 1)
            elif slaves := _slaves(real):  # LVM, LUKS, RAID: on every device under it
                for slave in slaves:
                    self.block(_device_in(f"{real}/slaves/{slave}"), depth + 1)
            else:
                self.disks.add(device)
        except OSError as e:
            inner = e.filename if e.filename and not f"{node}/".startswith(e.filename) else None
            self.unknown.append(f"{node}: {e.strerror or e}" + (f" ({inner})" if inner else ""))


def _device_in(folder: str) -> int:
    """The device number a sysfs folder of a block device says (``dev``)."""
    with open(f"{folder}/dev", encoding="ascii", errors="replace") as f:
        major, _, minor = f.read().strip().partition(":")
    if not (major.isdigit() and minor.isdigit()):
        raise OSError(f"{folder}/dev names no device")
    return os.makedev(int(major), int(minor))


def _backing_file(real: str) -> str:
    with open(f"{real}/loop/backing_file", encoding="utf-8", errors="surrogateescape") as f:
        name = f.read().rstrip("\n")
    if not name:
        raise OSError("the loop device shows no image file")
    return name


def _slaves(real: str) -> list[str]:
    """The devices a stacked device is made of (none for a plain disk)."""
    try:
        return sorted(os.listdir(f"{real}/slaves"))
    except FileNotFoundError:
        return []


def _joined(table: Mapping[int, Mount], sys: str) -> Mapping[int, int] | str:
    """Each disk that a stacked device of this machine (an LVM volume group,
    a RAID) spans together with others -> the smallest number of all the
    disks so joined, so a filesystem on any of them shares a number with
    one spanning them. Why not, when sysfs cannot be listed."""
    try:
        names = sorted(os.listdir(f"{sys}/class/block"))
    except OSError as e:
        return f"{sys}/class/block: {e.strerror or e}"
    groups: list[set[int]] = []
    for name in names:
        walk = _Walk(table, sys)
        try:
            if _slaves(f"{sys}/class/block/{name}"):
                walk.block(_device_in(f"{sys}/class/block/{name}"), 0)
        except OSError:
            continue  # not ours to judge: a store on it says so on its own walk
        touching = [g for g in groups if g & walk.disks]
        groups = [g for g in groups if not g & walk.disks]
        groups.append(walk.disks.union(*touching))
    return {d: min(g) for g in groups for d in g}


def locate(path: Path | str, table: Mapping[int, Mount] | None = None) -> Location | None:
    """Where ``path`` (after links) really is, through the mount it is
    reached by (the kernel says which, by the mount's id); None if it
    cannot be looked at. ``table``: the mount table, read once by a caller
    that locates many paths; read here otherwise. Without a table (another
    OS), the file's own ``st_dev`` and real path stand for it."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        mount = mount_of(fd)
        real = _real_path(fd) or os.path.realpath(path)
    finally:
        os.close(fd)
    mounts = mount_table() if table is None else table
    found = mounts.get(mount) if mount is not None else None
    if found is None:
        return Location(st.st_dev, real, mount=mount)
    return found.location(real) or Location(st.st_dev, real, mount=mount)


def _real_path(fd: int) -> str | None:
    """The path the kernel has for the open file ``fd`` (Linux): the real
    path, links followed, in one system call where ``realpath`` looks at
    each folder above it; None when it has none to give."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return real if real.startswith("/") and not real.endswith(" (deleted)") else None


def mount_of(fd: int) -> int | None:
    """The id of the mount the descriptor ``fd`` was opened through (Linux)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
