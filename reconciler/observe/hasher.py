"""The hash cache in front of every walk: each file's SHA-256 taken from
the state DB while its (path, size, mtime_ns, ctime) are unchanged (the
inode, where a row has no ctime), else read (files of one read's worth on
the observer's own thread, larger ones on a small pool: hashlib and file
reads release the GIL); a tree whose walk is unchanged taken whole from its
last listing. A row trusted keeps the inode the walk found, so the cache
says what the last walk saw (``reconciler.links`` reads it). The Hasher
handed to providers (``providers.base.Hasher``)."""

from __future__ import annotations

import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from providers.base import (
    ColumnWalk,
    Hashed,
    HashedColumns,
    ScanEntry,
)
from providers.filesystem import scan_tree
from reconciler import media, tree_listing
from reconciler.hashing import HASH_CHUNK, sha256_file
from reconciler.state import SUSPECT, CachedHash, StateDB, storable
from reconciler.walk_ahead import Prewalked, WalkAhead, Walked

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
        #: files (or their metadata, a sidecar) that could not be read this
        #: run (a disk's error, a file locked): what this observation saw of
        #: them may not last (the observer's other readers count here too)
        self.unread = 0
        self.listed_trees = 0  # trees matched from their listing, ditto
        #: Files read again with their size, mtime, ctime and inode as they
        #: were when their cached hash was taken (due to be verified, or a
        #: reader found other bytes: ``StateDB.suspect_hashes``), whose bytes
        #: are not those any more: path -> the SHA-256 recorded. No write
        #: moved their ctime: on a disk that keeps one, that is damage (bit
        #: rot), not a new version (the library's observer judges).
        self.changed_unseen: dict[str, str] = {}
        #: Their new cache rows, not written yet (``settle_changed``): until
        #: the observer has recorded what it made of the change, the old row
        #: stays, so a run stopped before then finds the change again.
        self._withheld: dict[str, CachedHash] = {}
        #: the trees a helper process walks ahead this run (``observe``)
        self.ahead: WalkAhead | None = None
        #: the configured places' folders, which no walk enters (``places.fences``)
        self.fences: Mapping[tuple[int, int], str] = {}
        #: the last walk handed over by the helper, with its digest taken there
        self._walked: tuple[Sequence[ScanEntry], bytes] | None = None
        #: trees walked before observing began (``reconciler.kept_plan``), by
        #: root, with the ``skip`` rule and folder each was walked with: each
        #: taken once
        self.prewalked: dict[str, Prewalked] = {}

    def walk(
        self,
        root: Path,
        *,
        skip: Callable[[str], bool] | None = None,
        undecodable: list[str] | None = None,
        links: list[str] | None = None,
    ) -> Sequence[ScanEntry]:
        walked = self._prewalked(root, skip)
        if walked is None and self.ahead is not None:
            walked = self.ahead.take(root, skip)
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

    def _prewalked(self, root: Path, skip: Callable[[str], bool] | None) -> Walked | None:
        """A walk made before observing, if it is of the folder at ``root``
        now (a card swapped at its mount point since is walked again)."""
        found = self.prewalked.pop(os.fspath(root), None)
        if found is None or found[0] is not skip:
            return None
        try:
            st = os.stat(root)
        except OSError:
            return None  # walked here, the error met and said
        return found[2] if (st.st_dev, st.st_ino) == found[1] else None

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

    def settle_changed(self, under: str | None = None) -> None:
        """Write the cache rows of the files ``changed_unseen`` (under the
        folder ``under``, or all), once what the change means is recorded
        (the library's observer: damage set aside, the new bytes' row)."""
        taken = [(p, h) for p, h in self._withheld.items() if under is None or p.startswith(under)]
        for p, _ in taken:
            del self._withheld[p]
        self.db.store_hashes(taken)

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
            # (the walk is the listing's: each file due is as it was then)
            reread = {i: sha for i in misses if (sha := results.shas[i]) is not None}
        else:
            listing = None
            if isinstance(entries, ColumnWalk):
                entries = list(entries)  # matched entry by entry: made once each
            results, misses, gone, reread, moved = self._matched(entries, dates, tree, stamps)
            if gone and tree is not None:
                ours += self.db.counted(lambda: self.db.forget_hashes(gone))
            if moved:
                ours += self.db.counted(lambda: self.db.set_inodes(moved))
        withheld = len(self._withheld)
        if misses:
            ours += self._hash(entries, misses, results, dates, reread)
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
            # a change seen with no write (``changed_unseen``) is in no row
            # yet: listed, a run stopped now would take its bytes as read
            and len(self._withheld) == withheld
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
    ) -> tuple[list[Hashed | None], list[int], list[str], dict[int, str], list[tuple[int, str]]]:
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
        #: misses whose whole stat is the row's (read again only as due, or
        #: suspect): index -> the SHA-256 recorded
        reread: dict[int, str] = {}
        aged: list[tuple[int, str]] = []  # rows without a ctime, trusted: (ctime, path)
        moved: list[tuple[int, str]] = []  # trusted, another inode walked: (inode, path)
        c = next(rows, None)
        for i in order:
            path, _, size, mtime_ns, inode, ctime_ns = entries[i]
            while c is not None and c[0] < path:
                gone.append(c[0])  # cached, not walked: the file is gone
                c = next(rows, None)
            if c is None or c[0] != path:
                misses.append(i)  # walked, never cached: a new file
                continue
            same = (
                c[1] == size
                and c[2] == mtime_ns
                # The ctime, which no program sets, says a file rewritten in
                # place or replaced; the inode adds nothing to it, and some
                # disks number files anew at each mount (exFAT through FUSE):
                # it is asked only of a row an older version kept, without
                # a ctime, which takes the walk's now (``aged``).
                and (c[8] == ctime_ns if c[8] is not None else c[3] == inode)
            )
            if (
                same
                and (c[5] or not dates)
                and c[7] != SUSPECT  # a reader found other bytes there
                and (
                    not window
                    or (c[7] <= latest and now - c[7] <= window)
                    or not self._due(path, c[7])
                )
            ):
                results[i] = new(Hashed, (intern(c[4]), c[6], ""))
                stamps[i] = c[7]
                if c[8] is None:
                    aged.append((ctime_ns, path))
                elif c[3] != inode:
                    # Trusted by its ctime (a disk that numbers its files
                    # anew at each mount keeps its hashes), but the row takes
                    # the walk's inode: a folder swapped with another on its
                    # disk, its files' ctimes unmoved, holds other files, and
                    # the row must never name the one that was there.
                    moved.append((inode, path))
            else:
                misses.append(i)
                if same and c[8] is not None and c[3] == inode:
                    reread[i] = c[4]  # (size, mtime, ctime, inode: all as hashed)
            c = next(rows, None)
        while c is not None:  # past the last walked file
            gone.append(c[0])
            c = next(rows, None)
        del order
        self.db.set_ctimes(aged)  # once per row: a change from now on is seen
        return results, misses, gone, reread, moved

    def _hash(
        self,
        entries: Sequence[ScanEntry],
        misses: list[int],
        out: HashedColumns | list[Hashed | None],
        dates: bool,
        reread: Mapping[int, str],
    ) -> int:
        """Read ``misses`` into ``out``; return how many cache rows were
        written. ``reread``: the misses whose stat is as when they were
        hashed, by the SHA-256 recorded then (``changed_unseen``)."""

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
                self.unread += 1
                return
            out[i] = Hashed(sha256=sys.intern(h.sha256), captured_at_ts=h.captured_at)
            was = reread.get(i)
            if was is not None and was != h.sha256:
                self.changed_unseen[entries[i].path] = was
                self._withheld[entries[i].path] = h
                return
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
