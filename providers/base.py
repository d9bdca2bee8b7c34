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

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
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

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        """Remove the item from the source (soft delete where the source has one).
        Only the applier calls this. ``proven`` is its removal gate: called
        last, after every slow step (a file moved aside and hashed, the
        asset read again), just before the item's bytes are deleted, and on
        every attempt; it raises to keep the item. An item already gone
        from the source may return without calling it."""
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

    A device shown alive this run that cannot be asked now makes ``confirm``
    and ``confirm_freed`` raise a transient ProviderError, never answer
    "not held": being unreachable is no proof a copy is gone."""

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
