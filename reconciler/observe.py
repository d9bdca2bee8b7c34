"""Observation: ask every provider for its actual state; return a World.

Hashing goes through the state DB's hash cache, keyed by (path, size,
mtime_ns, inode): an unchanged file is never re-read, a changed one is
re-hashed (so a copy altered on disk is noticed on the next run). Misses are
hashed on a small thread pool (hashlib and file reads release the GIL).

Guards live here too: a source listing that failed, came back empty, or
shrank sharply since the last run is marked untrusted (the planner then
removes nothing from it), and a store without its marker is unavailable.

A source that keeps its listing (iCloud, ``RemembersListing``) is handed the
state DB first: between full listings it lists only what changed since the
last run, and the guards judge what it lists exactly as a full listing.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import attrs

from providers.base import (
    ColumnWalk,
    ConfirmingStore,
    Hashed,
    HashedColumns,
    Location,
    Mount,
    RemembersListing,
    ScanEntry,
    Source,
    Store,
    WalksLocally,
    disk_of,
    mount_table,
    root_of,
)
from providers.filesystem import scan_tree
from reconciler import media, places, sidecar, tree_listing, walk_ahead
from reconciler.config import DesiredState, SyncthingTarget, TargetConfig
from reconciler.connect import Connected
from reconciler.disks import Disks, disks_now
from reconciler.errors import LoginRequiredError, MediaError, ProviderError
from reconciler.hashing import HASH_CHUNK, read_file, sha256_file
from reconciler.layout import date_from_path
from reconciler.media.metadata import is_placeholder_timestamp
from reconciler.model import (
    ORIGINAL_ROLE,
    SIDECAR_ROLE,
    Delivery,
    FileCopy,
    LibraryFile,
    LibraryState,
    SidecarOwner,
    SourceState,
    TargetState,
    World,
)
from reconciler.rows import original_row
from reconciler.state import CachedHash, DownloadedFile, LineageRow, StateDB, storable
from reconciler.walk_ahead import WalkAhead

#: Files smaller than this are hashed on the observer's own thread, larger
#: ones on its pool (``CachedHasher._hash``): one read's worth.
SMALL_FILE = HASH_CHUNK
#: One SHA-256 in a tree listing's hex: the listing's bytes split 32 by 32.
#: Any 64 characters, as ``bytes.hex()`` made the text: 3x faster to split
#: than by a class of hex digits (30 against 90 ms per 100k files).
_SHA_HEX = re.compile(".{64}", re.DOTALL)

#: progress(label, done, total)
Progress = Callable[[str, int, int], None]


def _quiet(label: str, done: int, total: int) -> None:
    pass


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a block without the cyclic garbage collector (restored after).

    Observing and planning a large library makes millions of objects that
    all live to the end of the block and form no cycles; each automatic
    collection walks every one of them again (a quarter of a no-op plan's
    time at 100k items). Reference counting still frees everything else."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What the block made and kept goes straight to the oldest
        # generation (freeze, then unfreeze: two list splices), so enabling
        # the collector does not walk millions of young objects at once
        # (0.4 s at 100k items); a later full collection still sees them.
        gc.freeze()
        gc.unfreeze()
        if was:
            gc.enable()


class CachedHasher:
    """The Hasher handed to providers: SQLite cache first, then a thread pool."""

    def __init__(
        self,
        db: StateDB,
        *,
        now: float | None = None,
        reverify_after_s: float | None = None,
        workers: int = 0,
        progress: Progress = _quiet,
    ) -> None:
        self.db = db
        self.now = time.time() if now is None else now
        #: Stamps are written by two clocks: the run's (``now``, which a test
        #: or a plan "as of" a time sets) and the machine's (a copy's row,
        #: written as it is made, ``rows.cache_row``). A stamp is from the
        #: future only when it is later than both.
        self.latest = max(self.now, time.time())
        self.reverify_after_s = reverify_after_s
        self.workers = workers or min(4, (os.cpu_count() or 2))
        self.progress = progress
        self.hashed_files = 0  # misses hashed this run, for tests and figures
        self.listed_trees = 0  # trees matched from their listing, ditto
        #: the trees a helper process walks ahead this run (``observe``)
        self.ahead: WalkAhead | None = None
        #: the configured places' folders, which no walk enters (``places.fences``)
        self.fences: Mapping[tuple[int, int], str] = {}
        #: the last walk handed over by the helper, with its digest taken there
        self._walked: tuple[Sequence[ScanEntry], bytes] | None = None

    def walk(
        self,
        root: Path,
        *,
        skip: Callable[[str], bool] | None = None,
        undecodable: list[str] | None = None,
        links: list[str] | None = None,
    ) -> Sequence[ScanEntry]:
        walked = self.ahead.take(root, skip) if self.ahead is not None else None
        if walked is None:
            return list(scan_tree(root, skip, undecodable, links, self.fences))
        entries, odd, linked, digest = walked
        if undecodable is not None:
            undecodable.extend(odd)
        if links is not None:
            links.extend(linked)
        # Read-only columns: nothing can reorder them, so the digest stays
        # their own, for ``hash_entries`` to take when handed this very walk.
        self._walked = (entries, digest)
        return entries

    def _due(self, path: str, hashed_at: float) -> bool:
        """Time to read an unchanged file again (bit rot keeps size and mtime).
        Each file's turn falls between one and two windows, spread by its path,
        so a library hashed in one night is not all re-read in one night.
        A file hashed "later than now" was stamped by a clock running ahead
        (one run before NTP set it): that stamp says nothing of when the
        file was last read, and trusting it would skip the file for as long
        as the clock was ahead, so it is due now."""
        if not self.reverify_after_s or (
            hashed_at <= self.latest and self.now - hashed_at <= self.reverify_after_s
        ):
            return False  # the common case, decided without hashing the path
        if hashed_at > self.latest:
            return True
        spread = 1 + (zlib.crc32(path.encode()) % 1000) / 1000
        return self.now - hashed_at > self.reverify_after_s * spread

    def hash_entries(
        self, entries: Iterable[ScanEntry], *, dates: bool = False, tree: str | None = None
    ) -> Sequence[Hashed]:
        known, self._walked = self._walked, None
        digest = known[1] if known is not None and known[0] is entries else None
        entries = entries if isinstance(entries, list | tuple | ColumnWalk) else list(entries)
        # With ``tree`` (the walk is every file under it): a walk the same as
        # the last takes the tree's listing (``tree_listing``), else each
        # file is matched against the cache. Either way ``stamps`` holds each
        # file's hash time, and the listing is kept for the next run.
        walk = None
        if tree and tree.endswith("/"):
            walk = digest if digest is not None else tree_listing.walk_digest(entries)
        # The cache's writes counted from here: ours, and any other's
        # (``keep_tree_listing`` keeps nothing if there was any other).
        start = self.db.changes() if walk is not None else 0
        listing = self.db.tree_listing(tree) if walk is not None and tree else None
        stamps: list[float] = [0.0] * len(entries)
        ours = 0
        results: HashedColumns | list[Hashed | None]
        if listing is not None and listing.walk == walk and (listing.dated or not dates):
            results, misses = self._listed(entries, listing, stamps)
            self.listed_trees += 1
        else:
            listing = None
            if isinstance(entries, ColumnWalk):
                entries = list(entries)  # matched entry by entry: made once each
            results, misses, gone = self._matched(entries, dates, tree, stamps)
            if gone and tree is not None:
                ours += self.db.counted(lambda: self.db.forget_hashes(gone))
        if misses:
            ours += self._hash(entries, misses, results, dates)
            for i in misses:
                stamps[i] = self.now
        # every file has its result (one that could not be read says so)
        hashed = (
            results if isinstance(results, HashedColumns) else [r for r in results if r is not None]
        )
        if (
            walk is not None
            and tree
            and len(hashed) == len(entries)
            and (listing is None or misses)
            # a file the cache cannot hold (``storable``) has no row to list
            and all(storable(entries[i][2], entries[i][3], entries[i][4]) for i in misses)
        ):
            self.db.keep_tree_listing(tree, walk, hashed, stamps, dated=dates, changes=start + ours)
        return hashed

    def _listed(
        self, entries: Sequence[ScanEntry], listing: tree_listing.TreeListing, stamps: list[float]
    ) -> tuple[HashedColumns, list[int]]:
        """Every file's row from the tree's listing; only files due to be
        read again (as ``_matched`` decides) are misses."""
        # Built by C loops (findall, map): 100k files a tree, per run; kept
        # in columns (``HashedColumns``), not a ``Hashed`` made per file.
        shas: list[str | None] = list(map(sys.intern, _SHA_HEX.findall(listing.shas.hex())))
        captured = [None if c != c else c for c in listing.captured]  # NaN: none
        results = HashedColumns(shas, captured)
        stamps[:] = listing.hashed_at
        misses: list[int] = []
        now, latest, window = self.now, self.latest, self.reverify_after_s
        if window:  # the very test ``_matched`` makes, to the last bit
            for i, t in enumerate(listing.hashed_at):
                if not (t <= latest and now - t <= window) and self._due(entries[i][0], t):
                    misses.append(i)
        return results, misses

    def _matched(
        self, entries: Sequence[ScanEntry], dates: bool, tree: str | None, stamps: list[float]
    ) -> tuple[list[Hashed | None], list[int], list[str]]:
        # The hot loop of a changed tree, once per file: the walk, put in
        # path order, is merged with one streamed range read of the
        # path-ordered cache table (no dict of rows, no lookup by hash); rows
        # stay plain tuples, and a SHA-256 seen in several stores is kept
        # once (sys.intern: one string, not one per store). With ``tree`` the
        # range is every cached path under it: a row no file of the walk
        # matched is a file gone, and leaves the cache (the census counts
        # from it).
        paths = [e[0] for e in entries]
        order = sorted(range(len(paths)), key=paths.__getitem__)
        if tree is not None:
            rows = self.db.hash_rows(tree, tree_listing.tree_end(tree), last_included=False)
        elif order:
            rows = self.db.hash_rows(paths[order[0]], paths[order[-1]])
        else:
            rows = iter(())
        del paths
        intern, new = sys.intern, tuple.__new__
        now, latest, window = self.now, self.latest, self.reverify_after_s
        results: list[Hashed | None] = [None] * len(entries)
        misses: list[int] = []
        gone: list[str] = []
        c = next(rows, None)
        for i in order:
            path, _, size, mtime_ns, inode, ctime_ns = entries[i]
            while c is not None and c[0] < path:
                gone.append(c[0])  # cached, not walked: the file is gone
                c = next(rows, None)
            if c is None or c[0] != path:
                misses.append(i)  # walked, never cached: a new file
                continue
            if (
                c[1] == size
                and c[2] == mtime_ns
                and c[3] == inode
                and (c[8] == ctime_ns or c[8] is None)  # rewritten in place: read
                and (c[5] or not dates)
                and (
                    not window
                    or (c[7] <= latest and now - c[7] <= window)
                    or not self._due(path, c[7])
                )
            ):
                results[i] = new(Hashed, (intern(c[4]), c[6], ""))
                stamps[i] = c[7]
            else:
                misses.append(i)
            c = next(rows, None)
        while c is not None:  # past the last walked file
            gone.append(c[0])
            c = next(rows, None)
        del order
        return results, misses, gone

    def _hash(
        self,
        entries: Sequence[ScanEntry],
        misses: list[int],
        out: HashedColumns | list[Hashed | None],
        dates: bool,
    ) -> int:
        """Read ``misses`` into ``out``; return how many cache rows were written."""

        def work(i: int) -> tuple[int, CachedHash | str]:
            e = entries[i]
            try:
                sha = sha256_file(e.path)
            except OSError as err:
                return i, err.strerror or str(err)  # not cached: the next run retries
            when = media.capture_timestamp(Path(e.path)) if dates else None
            return i, CachedHash(
                size=e.size,
                mtime_ns=e.mtime_ns,
                inode=e.inode,
                sha256=sha,
                dated=dates,
                captured_at=when,
                hashed_at=self.now,
                ctime_ns=e.ctime_ns,
            )

        # Large files on the pool, one thread per core (hashlib lets go of
        # the GIL while it hashes); small ones here, one after the other: a
        # thread per file costs far more than hashing it (200k files of 500
        # bytes: 3.7 s in one thread, 21 s on two), as every open and read
        # hands the GIL back and forth.
        large = [i for i in misses if entries[i].size >= SMALL_FILE]
        small = [i for i in misses if entries[i].size < SMALL_FILE] if large else misses
        rows: list[tuple[str, CachedHash]] = []
        done = written = 0

        def take(i: int, h: CachedHash | str) -> None:
            nonlocal rows, done, written
            done += 1
            if done % 200 == 0 or done == len(misses):
                self.progress("hashing", done, len(misses))
            if isinstance(h, str):
                out[i] = Hashed(sha256=None, error=h)
                return
            out[i] = Hashed(sha256=sys.intern(h.sha256), captured_at_ts=h.captured_at)
            rows.append((entries[i].path, h))
            if len(rows) >= 5000:
                written += self.db.counted(partial(self.db.store_hashes, rows))
                rows = []

        with ThreadPoolExecutor(self.workers) as pool:
            try:
                hashed_there = pool.map(work, large)
                for i in small:
                    take(*work(i))
                for i, h in hashed_there:
                    take(i, h)
            except BaseException:
                # Interrupted (a signal): finish only the files being read now.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        written += self.db.counted(partial(self.db.store_hashes, rows))
        self.hashed_files += len(misses)
        return written


def observe(
    desired: DesiredState,
    db: StateDB,
    conn: Connected,
    *,
    now: datetime | None = None,
    progress: Progress = _quiet,
    accept_shrink: bool = False,
) -> World:
    now = now or datetime.now(UTC)
    days = desired.guards.reverify_after_days
    hasher = CachedHasher(
        db, now=now.timestamp(), reverify_after_s=days * 86400 or None, progress=progress
    )
    for src in conn.sources.values():
        if isinstance(src, RemembersListing):
            src.remember_listing(db, now)  # iCloud: list only what changed since
    # The local trees in the order they are walked below; on a large library
    # a helper process walks them ahead while this one works: all of them
    # when a remote source is listed first (iCloud), else all but the first,
    # which this one walks meanwhile.
    # The library comes before the targets: its work after the walk is the
    # longest (each file's lineage row and capture time), so its walk is the
    # one the helper should have ready first.
    order = (*conn.sources.values(), conn.library, *conn.targets.values())
    trees = [p.local_tree for p in order if isinstance(p, WalksLocally)]
    # Listings are kept for the configured trees only, walked or not this run.
    db.forget_other_tree_listings([os.path.join(t.root, "") for t in trees])
    ahead = trees[1:] if isinstance(order[0], WalksLocally) else trees
    hasher.fences = places.fences(desired)
    if ahead and db.size_bytes() >= walk_ahead.MIN_STATE_BYTES:
        hasher.ahead = WalkAhead(ahead, hasher.fences)
    try:
        sources = tuple(
            _source(sid, src, hasher, db, desired.guards.max_shrink_fraction, accept_shrink)
            for sid, src in conn.sources.items()
        )
        library, parsed = _library(conn, hasher, db)
        disks = _disks(desired, conn)
        targets = tuple(
            _target(tid, store, hasher, db, desired.targets.get(tid), now, disks)
            for tid, store in conn.targets.items()
        )
    finally:
        if hasher.ahead is not None:
            hasher.ahead.close()
            hasher.ahead = None
    known, superseded, wanted = _still_known(sources, db.source_files())
    _known_from_sidecars(wanted, superseded, library, targets, conn, known, db)
    return World(
        observed_at=now,
        sources=sources,
        targets=targets,
        library=library,
        known_sha256=known,
        settled=db.settled(),
        tombstones=db.tombstones(),
        removed_sha256=db.tombstoned_sha256(),
        renditions=db.renditions(_not_originals(sources, known, library)),
        library_sidecars=_sidecars_missing(library, targets, conn, parsed),
    )


def _not_originals(
    sources: tuple[SourceState, ...], known: Mapping[Key, str], library: LibraryState
) -> set[str]:
    """The SHA-256s sources hold that are no original in the library: only
    these can be a file the tool made by encoding, come back (the planner's
    ``_rendition``). A converged run has none, and reads no rendition."""
    found: set[str] = set()
    for source in sources:
        sid = source.source_id
        for item in source.items:
            for f in item.files:
                sha = f.sha256 or known.get((sid, item.key, f.ref))
                if sha is not None:
                    found.add(sha)
    if found:  # (an emptied source asks nothing of the library)
        found.difference_update(map(itemgetter(2), library.files))  # original_sha256
    return found


def _source(
    sid: str, src: Source, hasher: CachedHasher, db: StateDB, max_shrink: float, accept: bool
) -> SourceState:
    base = SourceState(source_id=sid, kind=src.kind, remote=src.remote, items=())
    try:
        items = tuple(src.list_items(hasher))
    except LoginRequiredError:
        raise
    except ProviderError as e:
        return attrs.evolve(base, trusted=False, reachable=False, problem=f"listing failed: {e}")
    base = attrs.evolve(base, remarks=tuple(src.remarks))  # left out on purpose
    before = db.listing_count(sid)
    problem = ""
    if before and not items:
        problem = f"listing came back empty (last run: {before} items)"
    elif before and len(items) < before * (1 - max_shrink):
        problem = (
            f"listing shrank from {before} to {len(items)} items since the last run "
            f"(guards.max_shrink_fraction={max_shrink}); if that is right, run once "
            "with --accept-shrink"
        )
    if problem and not accept:
        return attrs.evolve(base, items=items, trusted=False, problem=problem)
    db.record_listing_count(sid, len(items))
    return attrs.evolve(base, items=items)


def _target(
    tid: str,
    store: Store,
    hasher: CachedHasher,
    db: StateDB,
    cfg: TargetConfig | None,
    now: datetime,
    disks: Disks,
) -> TargetState:
    avail = store.availability()
    if not avail.available:
        return TargetState(target_id=tid, kind=store.kind, available=False, problem=avail.reason)
    try:
        copies = tuple(store.list_copies(hasher))
    except LoginRequiredError:
        raise
    except ProviderError as e:
        return TargetState(
            target_id=tid, kind=store.kind, available=False, problem=f"listing failed: {e}"
        )
    if not isinstance(store, ConfirmingStore):
        device, elsewhere = _judged(tid, store, copies, disks)
        return TargetState(
            target_id=tid,
            kind=store.kind,
            available=True,
            copies=copies,
            device=device,
            elsewhere=elsewhere,
        )
    try:
        if isinstance(cfg, SyncthingTarget) and cfg.role == "conduit":
            return _conduit(tid, store, copies, db, now)
        return _confirming(tid, store, copies, db)
    except LoginRequiredError:
        raise
    except ProviderError as e:
        # Syncthing gone, or one answer too slow, while its files were asked
        # about: the phone is unavailable this run, and the rest goes on.
        return TargetState(
            target_id=tid, kind=store.kind, available=False, problem=f"confirming failed: {e}"
        )


def _disks(desired: DesiredState, conn: Connected) -> Disks:
    """The disks each target's copies are judged by, as the removal gate
    judges them (``reconciler.disks``), from one reading of the mount table."""
    table = mount_table()
    roots = {tid: root_of(store, table) for tid, store in conn.targets.items()}
    return disks_now(desired, table, roots)


def _judged(
    tid: str, store: Store, copies: Sequence[FileCopy], disks: Disks
) -> tuple[int | None, dict[str, tuple[int | None, str]]]:
    """The disk a target's copies count on (its root's, judged as the gate
    judges a copy: through an overlay, its layers' disk), and the copies
    that count otherwise (``TargetState.elsewhere``): those reached through
    a mount below its root, each judged on its own file's location, or all
    of them when its root is reached through a mount that makes none a
    backup (an overlay over the library). Without such a mount (the common
    case) it costs nothing per copy."""
    root = root_of(store, disks.table)
    if root is None:
        return None, {}
    device, why = disks.judge(tid, root)
    if why:
        return root.device, {c.sha256: (None, why) for c in copies}
    top = os.path.realpath(store.local_path(".") or ".")
    below = _mounts_below(top, disks.table)
    if not below:
        return device, {}
    # deepest first: a mount below another shows its own files there
    mounts = sorted(below.items(), key=lambda found: len(found[0]), reverse=True)
    whole = {rel: _judged_whole(tid, top, mount, disks) for rel, mount in mounts}
    elsewhere: dict[str, tuple[int | None, str]] = {}
    for c in copies:
        path, own = c.path, (device, "")
        for rel, mount in mounts:
            if path.startswith(rel) and (len(path) == len(rel) or path[len(rel)] == "/"):
                judged = whole[rel]
                own = judged or _judge(tid, mount.location(os.path.join(top, path)), disks)
                break
        # (a SHA-256 held twice counts as the gate finds it: the last copy listed)
        if own != (device, ""):
            elsewhere[c.sha256] = own
        elif elsewhere:
            elsewhere.pop(c.sha256, None)
    return device, elsewhere


def _judged_whole(tid: str, top: str, mount: Mount, disks: Disks) -> tuple[int | None, str] | None:
    """How every file below ``mount`` (strictly below the target's root
    ``top``) is judged, when that is one answer for all: unless a place
    lies strictly inside the folder the mount shows, it is (``Disks.judge``
    looks at a file's path only to find the place it lies in). None: judge
    each file."""
    shown = mount.location(mount.point)
    if shown is None:
        return None
    if any(p.within(shown) and p != shown for p in disks.places.values()):
        return None
    return _judge(tid, shown, disks)


def _judge(tid: str, where: Location | None, disks: Disks) -> tuple[int | None, str]:
    return disks.judge(tid, where) if where is not None else (None, "its file cannot be located")


def _mounts_below(top: str, table: Mapping[int, Mount]) -> dict[str, Mount]:
    """The mounts strictly below the folder ``top`` that a walk of it
    reaches (not one hidden under another on the same point), by their
    path relative to ``top``."""
    prefix = top.rstrip("/") + "/"
    found: dict[str, Mount] = {}
    for mount in table.values():
        if mount.point.startswith(prefix):
            reached = places.reached(Path(mount.point))  # what a walk meets there
            if reached is not None and reached[0] in (mount.id, None):
                found[mount.point[len(prefix) :]] = mount
    return found


def _confirming(
    tid: str, store: ConfirmingStore, copies: tuple[FileCopy, ...], db: StateDB
) -> TargetState:
    """A target whose copies count only once the device confirms them.

    First the device must prove, this run, that it receives files (the
    phone's canary); without that nothing of it counts, though what it was
    sent is still known (so it is not sent again). Then every copy is asked
    about now: a record of an earlier confirmation alone never counts. A
    freed copy counts while the device still announces the version recorded
    when it was confirmed, by the same device and folder (``identity``).
    A delivery this machine's Syncthing ignores (a pattern of the person's,
    ``/2022``) never reaches the phone: it is remarked on, with the pattern,
    rather than left waiting in silence.
    """
    live = store.prove_alive()
    identity = store.identity
    known = db.deliveries(tid)
    seen = {c.path for c in copies}
    confirmed: list[FileCopy] = []
    pending: list[Delivery] = []
    remarks: list[tuple[str, str]] = []
    freed: dict[str, dict[str, Any]] = {}
    with db.transaction():
        db.record_liveness(tid, live.alive, live.reason, live.round_trip_s)
        for c in copies:
            row = known.get(c.path)
            ours = row is not None and row["sha256"] == c.sha256
            recorded = ours and row is not None and bool(row["confirmed_at"])
            if not live.alive:
                if recorded and row is not None and row["identity"] == identity:
                    confirmed.append(c)  # known, not counted: the target is not alive
                else:
                    pending.append(_delivery(c, row if ours else None))
                continue
            answer = store.confirm(c.path)
            if answer.held:
                if not (
                    recorded
                    and row is not None
                    and row["identity"] == identity
                    and row["evidence"] == answer.evidence
                ):
                    db.record_confirmation(
                        tid, c.path, c.sha256, c.size, identity=identity, evidence=answer.evidence
                    )
                confirmed.append(c)
            else:
                if store.ignored_here(c.path):
                    remarks.append((f"{tid}:{c.path}", f"{answer.reason}; it does not count"))
                pending.append(_delivery(c, row if ours else None))
        # Freed staging copies are gone from here; the device holds them.
        for path, row in known.items():
            if path in seen or not (row["freed_at"] and row["confirmed_at"]):
                continue
            if row["identity"] != identity:
                continue  # confirmed by another phone or folder: not a copy here
            if live.alive and not store.confirm_freed(path, row["evidence"] or "").held:
                db.forget_delivery(tid, path)  # lost on the phone: sent again
                continue
            freed[path] = row
        # A confirmation stands only while this run saw the copy held (or, the
        # phone away, recorded by this phone and folder): one the device no
        # longer holds is a waiting delivery again, and one whose staging file
        # is gone here (not freed by us) is no delivery at all. The census
        # counts these rows, so they must say what the phone holds now.
        held_now = {c.path for c in confirmed}  # (a row rewritten above included)
        for path, row in known.items():
            if not row["confirmed_at"] or row["freed_at"] or path in held_now:
                continue
            if path in seen:
                db.unconfirm_delivery(tid, path)
            else:
                db.forget_delivery(tid, path)
    confirmed.extend(
        FileCopy(store_id=tid, path=path, size=row["size"] or 0, mtime_ns=0, sha256=row["sha256"])
        for path, row in freed.items()
    )
    how = f"canary round trip {live.round_trip_s or 0:.2f} s" if live.alive else live.reason
    return TargetState(
        target_id=tid,
        kind=store.kind,
        available=True,
        copies=tuple(confirmed),
        pending=tuple(pending),
        freed=frozenset(freed),
        alive=live.alive,
        liveness=how,
        remarks=tuple(remarks),
    )


def _conduit(
    tid: str, store: ConfirmingStore, copies: tuple[FileCopy, ...], db: StateDB, now: datetime
) -> TargetState:
    """A phone that passes files on to Google Photos and lets them go.

    Only what the tool itself put there is its business: a file counts as
    a delivery only at the path where ``put`` wrote it (its deliveries row,
    made then) and with the bytes it wrote. Anything else in the folder is
    the person's (a PDF, a photo copied there by hand, the tool's photo
    copied under another name): never confirmed, released or counted.

    Every delivery ever confirmed (by this device and folder) is
    *delivered*, with the time of that confirmation, and is never sent
    again, whether the tool released it or the phone removed it. Deliveries
    still here are settling (``copies``: what may be released); one the
    phone no longer holds is remarked on, not resent; one this machine's
    Syncthing ignores (the person's own ``.stignore`` pattern) is remarked
    on and kept, as a release would never reach the phone.
    """
    live = store.prove_alive()
    identity = store.identity
    known = db.deliveries(tid)
    delivered: dict[str, datetime] = {}
    held: list[FileCopy] = []
    pending: list[Delivery] = []
    remarks: list[tuple[str, str]] = []
    unsettled = 0
    with db.transaction():
        db.record_liveness(tid, live.alive, live.reason, live.round_trip_s)
        for path, found in list(known.items()):
            if not found["delivered_at"]:
                # A confirmation of a file the tool never put here (recorded
                # by an earlier version): no delivery of ours.
                db.forget_delivery(tid, path)
                del known[path]
        for c in copies:
            row = known.get(c.path) or {}
            if row.get("sha256") != c.sha256:
                continue  # the person's file (or bytes changed here): not ours
            unsettled += c.size
            recorded = bool(row["confirmed_at"]) and row["identity"] == identity
            answer = store.confirm(c.path) if live.alive else None
            if answer is not None and not answer.held and store.ignored_here(c.path):
                unsettled -= c.size
                remarks.append(
                    (
                        f"{tid}:{c.path}",
                        "ignored by this machine's .stignore (a pattern of yours): a release "
                        "would not reach the phone, so it is kept here and there",
                    )
                )
                if not recorded:
                    pending.append(_delivery(c, row))
                continue
            if recorded:
                held.append(c)
                if answer is not None and not answer.held:
                    remarks.append(
                        (f"{tid}:{c.path}", "the phone removed it before it settled; not resent")
                    )
            elif answer is not None and answer.held:
                db.record_confirmation(
                    tid,
                    c.path,
                    c.sha256,
                    c.size,
                    identity=identity,
                    evidence=answer.evidence,
                    at=now,
                )
                known[c.path] = {**row, "confirmed_at": now.isoformat(), "identity": identity}
                held.append(c)
            else:
                pending.append(_delivery(c, row))
        latest = max(now, datetime.now(UTC))  # as ``CachedHasher.latest``
        for path, row in known.items():
            if row["confirmed_at"] and row["identity"] == identity:
                when = datetime.fromisoformat(row["confirmed_at"])
                if when > latest:
                    # Confirmed "later than now": a clock ran ahead when it
                    # was recorded. The settle period starts again from now
                    # (kept, so later runs count from here): a release is
                    # never earlier than a right clock would make it.
                    when = now
                    db.restart_settling(tid, path, now)
                # The same bytes delivered twice (another phone's row taken
                # over): settled once the later one has.
                delivered[row["sha256"]] = max(when, delivered.get(row["sha256"], when))
    how = f"canary round trip {live.round_trip_s or 0:.2f} s" if live.alive else live.reason
    return TargetState(
        target_id=tid,
        kind=store.kind,
        available=True,
        copies=tuple(held),
        pending=tuple(pending),
        alive=live.alive,
        liveness=how,
        role="conduit",
        delivered=delivered,
        on_phone_bytes=unsettled,
        remarks=tuple(remarks),
    )


def _delivery(c: FileCopy, row: dict[str, Any] | None) -> Delivery:
    since = row["delivered_at"] if row else None
    return Delivery(
        sha256=c.sha256,
        path=c.path,
        delivered_at=datetime.fromisoformat(since) if since else datetime.now(UTC),
    )


#: A library sidecar read this run, by its SHA-256 (None: not one of ours).
Parsed = dict[str, sidecar.SidecarIdentity | None]


def _library(conn: Connected, hasher: CachedHasher, db: StateDB) -> tuple[LibraryState, Parsed]:
    """The library's files, each with its lineage row; and the sidecars
    read on the way (each new one of the tool's, read once: what it says
    every file of its item is becomes that file's role)."""
    store = conn.library
    avail = store.availability()
    if not avail.available:
        return LibraryState(available=False, problem=avail.reason), {}
    try:
        # in path order, as the rows are read (the walk's order is the disk's)
        copies = sorted(store.list_copies(hasher), key=itemgetter(1))
    except ProviderError as e:
        return LibraryState(available=False, problem=f"listing failed: {e}"), {}
    # Each file's row, by merging the files in path order with one ordered
    # read of the rows: no dict of 100k rows at the run's peak of memory.
    rows = db.lineage_in_order()
    files: list[LibraryFile] = []
    learned: list[LineageRow] = []
    intern, new, fromtimestamp = sys.intern, tuple.__new__, datetime.fromtimestamp
    recorded = db.made_any()
    gone: list[LineageRow] = []  # rows of files no longer there
    at = next(rows, None)
    for c in copies:
        path, sha = c.path, c.sha256
        while at is not None and at[0] < path:
            gone.append(at)
            at = next(rows, None)
        row = None
        if at is not None and at[0] == path:
            row, at = at, next(rows, None)
        if row is None or row.sha256 != sha:
            row = _made_here(store.root / path, c, db, recorded) or original_row(c, None)
            learned.append(row)
        if row.captured_at is None:
            row = row._replace(captured_at=_library_capture_ts(store.root / path, path))
            if row.captured_at is not None:
                learned.append(row)
        # (path, sha256, original_sha256, tier, size, captured_at, role);
        # one string per content (the copies' are interned: a file at its
        # original's tier takes its own) and per tier name and role: 100k
        # library files would otherwise each hold their own.
        original = row.original_sha256
        files.append(
            new(
                LibraryFile,
                (
                    path,
                    sha,
                    sha if original == sha else intern(original),
                    intern(row.tier),
                    c.size,
                    None if row.captured_at is None else fromtimestamp(row.captured_at, UTC),
                    intern(row.role),
                ),
            )
        )
    while at is not None:
        gone.append(at)
        at = next(rows, None)
    rows.close()
    # A row learned now keeps the role its content had (a file hashed or
    # placed again); a sidecar not read yet says what its item's files are.
    roles = db.roles_of({r.original_sha256 for r in learned if not r.role})
    db.record_lineages(learned)  # after a lost state DB, every file's row
    lost = _lost(gone, files, db)  # after the rows learned took the roles of those gone
    parsed = _read_sidecars(store, files)
    for sha, found in parsed.items():
        if found is None:
            roles[sha] = ORIGINAL_ROLE  # another program's .xmp: read once, never again
        else:
            roles[sha] = SIDECAR_ROLE
            for content, role in sidecar.roles(found).items():
                roles.setdefault(content, role)
    db.record_roles(roles)
    state = LibraryState(available=True, files=tuple(files), lost=lost, device=disk_of(store))
    return _with_roles(state, roles), parsed


def _lost(gone: list[LineageRow], files: list[LibraryFile], db: StateDB) -> tuple[LibraryFile, ...]:
    """The library's media files gone whose content the library holds
    nowhere else (deleted, a disk replaced, an item off-loaded while the
    library was away): the planner puts them back from a target. The rows
    of the others are forgotten: a file moved or renamed within the library
    (its content found at another path) is known by its new path, and an
    item's sidecar or junk is not put back (the targets hold the sidecar)."""
    if not gone:
        return ()
    present = {lf.original_sha256 for lf in files} | {lf.sha256 for lf in files}
    lost = [
        r
        for r in gone
        if r.original_sha256 not in present
        and r.role != SIDECAR_ROLE
        and media.is_archivable(r.path)
        and not sidecar.is_sidecar(r.path)
    ]
    kept = {r.path for r in lost}
    db.forget_lineage(r.path for r in gone if r.path not in kept)
    return tuple(
        LibraryFile(
            path=r.path,
            sha256=r.sha256,
            original_sha256=r.original_sha256,
            tier=r.tier,
            size=r.size,
            captured_at=None
            if r.captured_at is None
            else datetime.fromtimestamp(r.captured_at, UTC),
            role=r.role,
        )
        for r in lost
    )


def _read_sidecars(store: Store, files: Iterable[LibraryFile]) -> Parsed:
    """The library's ``.xmp`` files not read yet (no role: written since
    the last run, or every one after a lost state DB or an upgrade), read
    and parsed; one that cannot be read now is read next run."""
    parsed: Parsed = {}
    for lf in files:
        if not lf.role and sidecar.is_sidecar(lf.path):
            _read_sidecar(store, lf, parsed)
    return parsed


def _read_sidecar(store: Store, lf: LibraryFile, parsed: Parsed) -> None:
    path = store.local_path(lf.path)
    try:
        data = read_file(path, sidecar.MAX_BYTES) if path is not None else None
    except OSError:
        return
    if data is not None:
        parsed[lf.sha256] = sidecar.parse(data)


def _with_roles(library: LibraryState, roles: Mapping[str, str]) -> LibraryState:
    """``library`` with each file's role as just learned (by its original's
    SHA-256), as ``StateDB.record_roles`` keeps it: a role other than an
    original's is never taken back."""
    if not roles:
        return library
    files = tuple(
        lf._replace(role=roles[lf.original_sha256])
        if lf.role in ("", ORIGINAL_ROLE) and roles.get(lf.original_sha256)
        else lf
        for lf in library.files
    )
    return attrs.evolve(library, files=files)


def _sidecars_missing(
    library: LibraryState, targets: tuple[TargetState, ...], conn: Connected, parsed: Parsed
) -> dict[str, SidecarOwner]:
    """The item each library sidecar of the tool describes, for those an
    available archive target lacks (read from the file, only for these:
    none on a converged run). The planner keeps them there, as every file
    of an item that lives only in the library. A conduit (the phone) is no
    archive: it holds a file only until Google Photos, which reads no XMP,
    has it."""
    ours = {lf.sha256: lf for lf in library.files if lf.role == SIDECAR_ROLE}
    if not ours:
        return {}
    wanted = set(ours)
    missing: set[str] = set()
    for t in targets:
        if t.available and t.role != "conduit":
            held = wanted.intersection(map(itemgetter(4), t.copies))  # (FileCopy.sha256)
            held.update(d.sha256 for d in t.pending if d.sha256 in wanted)
            if len(held) < len(wanted):  # (every one, on a converged run)
                missing.update(wanted - held)
    found: dict[str, SidecarOwner] = {}
    paths = {lf.path: lf for lf in ours.values()} if missing else {}
    for sha in sorted(missing):
        owner = _owner(conn.library, ours[sha], parsed)
        if owner is None:
            continue
        # Of an item's two sidecars side by side in the library (its plain
        # and its tagged name: put there by hand, or by an older version),
        # the plain one is kept on the targets, whichever of them a target
        # lacks: the two would take turns at the target's one for ever.
        tag = sidecar.owner_names(owner, "")[1][len(owner.original_name) :]
        path = ours[sha].path
        if path.endswith(tag):
            twin = paths.get(path[: -len(tag)] + sidecar.SUFFIX)
            other = _owner(conn.library, twin, parsed) if twin is not None else None
            if other is not None and other[:2] == owner[:2]:
                continue  # (source id, item key): the same item
        found[sha] = owner
    return found


def _owner(store: Store, lf: LibraryFile, parsed: Parsed) -> SidecarOwner | None:
    """The item a library sidecar describes, read once a run."""
    if lf.sha256 not in parsed:
        _read_sidecar(store, lf, parsed)
    identity = parsed.get(lf.sha256)
    return sidecar.owner_of(identity) if identity is not None else None


def _library_capture_ts(path: Path, rel: str) -> float | None:
    """A library file's capture time when the state DB does not have it (a
    lost DB, an older schema): its own metadata, else its mtime when that
    falls on the day of its folder (a file dated by its mtime was placed
    with that mtime, to the second), else that day's start. Recorded once,
    so it is looked for once."""
    ts = media.capture_timestamp(path) if media.is_media(rel) else None
    if ts is None:
        day = date_from_path(rel)
        if day is None:
            return None
        ts = day.timestamp()
        with contextlib.suppress(OSError):
            mtime = os.stat(path).st_mtime
            if ts <= mtime < ts + 86400:
                ts = mtime
    # A folder 1970/01/01 (placed by an older version) says "no date" too.
    return None if ts is None or is_placeholder_timestamp(ts) else ts


Key = tuple[str, str, str]


def _still_known(
    sources: tuple[SourceState, ...], rows: Mapping[Key, DownloadedFile]
) -> tuple[dict[Key, str], dict[Key, str], dict[Key, tuple[int, str]]]:
    """The SHA-256 of each remote file downloaded before, where the source
    still lists that very file: same size and fingerprint as when it was
    downloaded (``DownloadedFile.still``). An asset edited again keeps its
    refs for new bytes; its old hash would pass the removal gate on the old
    version's copies, so it is dropped here, once, for the planner, the
    gate and the applier alike: the file is downloaded again. Returns the
    hashes still known, those superseded (ref -> the old hash), and the
    remote files whose hash is unknown, with their size and fingerprint
    (for the sidecars to prove)."""
    known = {key: row.sha256 for key, row in rows.items()}
    superseded: dict[Key, str] = {}
    wanted: dict[Key, tuple[int, str]] = {}
    for s in sources:
        if not s.remote:
            continue
        sid = s.source_id
        for item in s.items:
            for f in item.files:
                if f.sha256:
                    continue
                key = (sid, item.key, f.ref)
                row = rows.get(key)
                # An edit (or its adjustment data) re-made by the person
                # may keep its length: a row from before fingerprints were
                # kept cannot tell, so it is downloaded again, once.
                changeable = f.role in ("edited", "edit_sidecar")
                if (
                    row is not None
                    and row.still(f.size, f.fingerprint)
                    and (row.fingerprint or not changeable)
                ):
                    continue
                if row is not None:
                    del known[key]
                    superseded[key] = row.sha256
                wanted[key] = (f.size, f.fingerprint)
    return known, superseded, wanted


def _known_from_sidecars(
    wanted: dict[Key, tuple[int, str]],
    superseded: Mapping[Key, str],
    library: LibraryState,
    targets: tuple[TargetState, ...],
    conn: Connected,
    known: dict[Key, str],
    db: StateDB,
) -> None:
    """Learn the SHA-256 of remote files from the sidecars archived beside
    them, so a lost state DB (or a fresh machine) downloads nothing the
    archive already proves: a sidecar names the item (its record ids are
    in the key), each file's size, the source's fingerprint and its hash.
    Read only while some remote file's hash is unknown (``wanted``: size
    and fingerprint as listed now); learned once.

    A sidecar's word counts only where it is consistent with what else is
    known: not the hash the state DB holds for an older version of that
    file (``superseded``: a sidecar rewritten by an older reconcile after
    a second edit paired the new size and fingerprint with the old hash),
    and only for content archived here with that very size."""
    if not wanted:
        return
    places: list[tuple[Store, list[str]]] = []
    sizes: dict[str, int] = {}  # archived content -> its size
    if library.available:
        places.append((conn.library, [f.path for f in library.files]))
        sizes.update((f.sha256, f.size) for f in library.files)
    for t in targets:
        if t.available:
            places.append((conn.targets[t.target_id], [c.path for c in t.copies]))
            sizes.update((c.sha256, c.size) for c in t.copies)
    learned: list[tuple[Key, sidecar.SidecarFile]] = []
    for store, paths in places:
        for rel in paths:
            if not wanted:
                break
            if not sidecar.is_sidecar(rel):
                continue
            path = store.local_path(rel)
            try:
                data = read_file(path, sidecar.MAX_BYTES) if path is not None else b""
                found = sidecar.parse(data) if data else None
            except OSError:
                continue
            if found is None:
                continue
            for recorded in found.files:
                key = (found.source_id, found.item_key, recorded.ref)
                if (
                    recorded.fingerprint
                    and wanted.get(key) == (recorded.size, recorded.fingerprint)
                    and superseded.get(key) != recorded.sha256
                    and sizes.get(recorded.sha256) == recorded.size
                ):
                    del wanted[key]
                    known[key] = recorded.sha256
                    learned.append((key, recorded))
    with db.transaction():
        for (sid, item_key, ref), f in learned:
            db.record_source_file(sid, item_key, ref, f.sha256, f.size, f.fingerprint)


def _made_here(path: Path, c: FileCopy, db: StateDB, recorded: bool) -> LineageRow | None:
    """The row of a library file the tool made by encoding, from the lineage
    it carries; None for any other content. The lineage is a label copied
    with the file's metadata: a copy the person saved from it (a black and
    white version, a crop, a tag edited with exiftool) carries it too, and
    taken for the tool's it was never archived and was replaced by the next
    tier's encode. So it is believed only of content the tool recorded
    making from that original (``renditions``: recorded before the encode
    replaced its file), or where nothing was ever recorded (a new or lost
    state database: the label is all there is)."""
    found = _embedded_lineage(path, c)
    if found is None or not recorded:
        return found
    made = db.renditions([c.sha256]).get(c.sha256)
    return found if made == found.original_sha256 else None


def _embedded_lineage(path: Path, c: FileCopy) -> LineageRow | None:
    """Lineage written into an encoded file survives a lost state DB."""
    if media.media_kind(c.path) == "other":
        return None
    try:
        found = media.read_lineage(path)
    except (MediaError, OSError):
        return None
    if found is None:
        return None
    original, tier = found
    return LineageRow(
        path=c.path,
        original_sha256=original,
        sha256=c.sha256,
        tier=tier,
        size=c.size,
        mtime_ns=c.mtime_ns,
    )
