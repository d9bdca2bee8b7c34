"""Walking a large library's trees in a helper process, ahead of need.

A no-op run of a large library spends a third of its time walking trees:
one ``lstat`` per file of the import folder, the library and every target,
each tree after the other. Threads do not help (the GIL is handed back and
forth on every ``lstat``), but a second process does: while this one walks
the first tree and matches it against the hash cache (or lists iCloud), a
helper walks the others, in the order the observer will ask for them.

The helper runs the very same walk (``providers.filesystem.scan_tree``) and
sends each tree back in columns (the relative paths joined in one string,
the numbers in arrays), which costs a tenth of sending tuples. A tree the
helper has not started when it is asked for is walked here instead, so
nothing ever waits on a helper that is behind. So is a tree whose walk
failed there, or whose root is another folder now than when the helper
walked it (a disk mounted or unmounted meanwhile): a walk describes the
tree that is there when it is used, and its errors are those of now.

The helper comes from the forkserver the encoders use (never a fork of a
process running threads), ignores Ctrl-C, and dies with the run
(``reconciler.lifeline``). It only reads.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from providers.base import ColumnWalk, LocalTree
from providers.filesystem import scan_tree
from reconciler import lifeline, tree_listing

log = logging.getLogger("reconcile")

#: A state DB at least this large (its hash cache holds a row per file)
#: marks a library worth a helper process: about 16k items with two
#: targets. Below it, starting the helper costs more than it saves.
MIN_STATE_BYTES = 16 << 20

#: What the helper sends back for one tree: which folder it walked (the
#: root's device and inode), the relative paths joined by NUL (no file name
#: holds one), sizes, mtimes and inodes as raw arrays, and the names
#: ``scan_tree`` sets aside (undecodable names and folders too deep to
#: read, links), and the walk's digest (``tree_listing.walk_digest``,
#: taken there); or the error that ended the walk.
Columns = tuple[tuple[int, int], str, bytes, bytes, bytes, bytes, list[str], list[str], bytes]

#: What ``take`` hands over: the walk (read-only columns: nothing can
#: reorder it under its digest), the undecodable names, the links, the digest.
Walked = tuple[ColumnWalk, list[str], list[str], bytes]


def _walk(
    root: str, skip: Callable[[str], bool] | None, fences: Mapping[tuple[int, int], str]
) -> Columns | OSError:
    """In the helper: one tree, walked as the observer would, in columns."""
    odd: list[str] = []
    links: list[str] = []
    sizes, mtimes, inodes, ctimes = array("q"), array("q"), array("Q"), array("q")
    rels: list[str] = []
    try:
        st = os.stat(root)
        for _, rel, size, mtime_ns, inode, ctime_ns in scan_tree(root, skip, odd, links, fences):
            rels.append(rel)
            sizes.append(size)
            mtimes.append(mtime_ns)
            inodes.append(inode)
            ctimes.append(ctime_ns)
    except OSError as e:
        return e
    top = root if root.endswith("/") else root + "/"
    return (
        (st.st_dev, st.st_ino),
        "\0".join(rels),
        sizes.tobytes(),
        mtimes.tobytes(),
        inodes.tobytes(),
        ctimes.tobytes(),
        odd,
        links,
        tree_listing.columns_digest(top, rels, sizes, mtimes, inodes, ctimes),
    )


def _entries(root: str, columns: Columns) -> Walked:
    _, text, sizes_b, mtimes_b, inodes_b, ctimes_b, odd, links, digest = columns
    sizes, mtimes, inodes, ctimes = array("q"), array("q"), array("Q"), array("q")
    sizes.frombytes(sizes_b)
    mtimes.frombytes(mtimes_b)
    inodes.frombytes(inodes_b)
    ctimes.frombytes(ctimes_b)
    rels = text.split("\0") if sizes else []
    return ColumnWalk(root, rels, sizes, mtimes, inodes, ctimes), odd, links, digest


class WalkAhead:
    """The trees after the first, walked by a helper process in order; ``take``
    hands each one over (or walks it here when the helper has not begun it)."""

    def __init__(
        self, trees: Sequence[LocalTree], fences: Mapping[tuple[int, int], str] | None = None
    ) -> None:
        """``fences``: the configured places' folders, which no walk enters
        (``scan_tree``), the same here as in the observer."""
        self._pending: dict[str, tuple[LocalTree, Future[Columns | OSError]]] = {}
        self._pool: ProcessPoolExecutor | None = None
        if not trees:
            return
        try:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["reconciler.forkserver_lifeline"])
            self._pool = ProcessPoolExecutor(
                1, mp_context=ctx, initializer=lifeline.encoder_init, initargs=(os.getpid(),)
            )
            for tree in trees:
                key = os.fspath(tree.root)
                if key not in self._pending:
                    self._pending[key] = (
                        tree,
                        self._pool.submit(_walk, key, tree.skip, fences or {}),
                    )
        except (OSError, RuntimeError) as e:  # no helper to be had: walk here
            log.info("walking ahead is not available (%s); the trees are walked in turn", e)
            self.close()

    def take(self, root: Path, skip: Callable[[str], bool] | None) -> Walked | None:
        """The walk of ``root``, if the helper has it or is at it; None when
        this process should walk it itself: never asked ahead, asked with
        other ``skip`` rules, not begun there yet, failed there, or walked
        there in another folder than the one at ``root`` now."""
        key = os.fspath(root)
        found = self._pending.pop(key, None)
        if found is None:
            return None
        tree, fut = found
        if tree.skip is not skip or fut.cancel():
            return None
        try:
            got = fut.result()
        except Exception as e:  # the helper died (killed, out of memory): walk here
            log.info("the helper walking %s failed (%r); walking it here", key, e)
            return None
        if isinstance(got, OSError):
            # Maybe no longer so (a disk mounted since): the walk here says.
            log.info("the helper could not walk %s (%s); walking it here", key, got)
            return None
        try:
            st = os.stat(key)
        except OSError:
            return None  # the walk here raises what it meets
        if (st.st_dev, st.st_ino) != got[0]:
            # Another folder there now (a disk mounted or unmounted since
            # the helper walked): what was walked is not this tree.
            log.info("%s changed since the helper walked it; walking it here", key)
            return None
        return _entries(key, got)

    def close(self) -> None:
        """Stop the helper, waiting for nothing: a walk still under way (a
        tree never asked for, as an unavailable store's; the run stopped by
        a signal) is killed, which is safe, as the helper only reads."""
        busy = False
        for _, fut in self._pending.values():
            busy |= not fut.cancel() and not fut.done()
        self._pending.clear()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if busy:
            processes = getattr(pool, "_processes", None) or {}  # no public API in 3.11
            for pid in list(processes):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        pool.shutdown(wait=not busy, cancel_futures=True)
