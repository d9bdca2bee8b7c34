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

The helper is a fresh interpreter that imports this module and the walk,
nothing else: never the program's ``__main__``, which multiprocessing's
spawn and forkserver run again in every child they start (the whole
application, a few tenths of a second of CPU taken from this process on
two cores; and any top-level code of a script that calls ``main``). It is
started by ``subprocess`` (fork and exec at once: safe in a process that
runs threads), so this process does not wait for it to start either. Each
tree's walk comes back in a memory file of its own (``memfd``), and only a
line saying it is done goes through the pipe: the helper never waits for
this process to read a walk before it starts the next, and this process
reads each one at once, when it is asked for, instead of in 64 KiB pieces
from a thread that has to win the GIL for every one.

The helper ignores Ctrl-C (its own process group, SIGINT ignored), dies
with the run (``PR_SET_PDEATHSIG``, ``reconciler.lifeline``) and only reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import pickle
import select
import signal
import subprocess
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from providers.base import ColumnWalk, LocalTree
from providers.filesystem import scan_tree
from reconciler import lifeline, tree_listing

log = logging.getLogger("reconcile")

#: A state DB at least this large (its hash cache holds a row per file)
#: marks a library worth a helper process: about 7k items with two
#: targets (1.2 KiB of state DB an item). Below it, the helper's start
#: (about 80 ms of CPU) costs more than it saves: at 4k items a plan took
#: 0.25 s without it and 0.32 s with it (median of 10), at 7k 0.31 s and
#: 0.28 s, at 10k 0.38 s and 0.35 s.
MIN_STATE_BYTES = 8 << 20

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

#: A walk taken before observing began (``reconciler.kept_plan``: the
#: helper's, or one made here in the same columns) as the observer is
#: handed it: the ``skip`` rule it was made with, the folder it is of
#: (device, inode), the walk.
Prewalked = tuple[Callable[[str], bool] | None, tuple[int, int], Walked]

#: The helper's whole program: this process's import path (argv[1], so that
#: it finds the very modules this one runs), then ``_serve``. ``-P``: no
#: folder of the caller's is put before that path.
_BOOT = (
    "import json, sys\n"
    "sys.path[:] = json.loads(sys.argv[1])\n"
    "from reconciler.walk_ahead import _serve\n"
    "_serve()\n"
)


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


def walk_here(
    root: str, skip: Callable[[str], bool] | None, fences: Mapping[tuple[int, int], str]
) -> Walked:
    """A tree walked in this process, held as the helper would send it."""
    columns = _walk(root, skip, fences)
    if isinstance(columns, OSError):
        raise columns
    return _entries(root, columns)


def _read_exactly(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        part = os.read(fd, n)
        if not part:
            raise EOFError("the run closed the helper's input")
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _readable(fd: int) -> bool:
    """Can ``fd`` be read now without waiting? ``poll``, not ``select``:
    select refuses a descriptor numbered 1024 or more, which a process that
    holds many files open (a long test session, a program embedding this
    one) hands out."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _serve() -> None:
    """The helper's program: read the request (the run's pid, the trees with
    their ``skip`` rules, the fences, a memory file per tree) from stdin,
    then walk each tree the run has not taken back meanwhile (a tree's
    index, one line each on stdin), in order; for each, say ``begin N``
    and ``done N`` on stdout, the walk (or its error) in the memory file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    out = sys.stdout.buffer
    try:
        (size,) = array("Q", _read_exactly(0, 8))
        run_pid, trees, fences, fds = pickle.loads(_read_exactly(0, size))
        lifeline.die_with_parent()
        if os.getppid() != run_pid:  # the run died before the line above took effect
            return
        taken_back: set[int] = set()
        pending = b""
        for i, (root, skip) in enumerate(trees):
            while _readable(0):
                got = os.read(0, 4096)
                if not got:
                    return  # the run is done with this helper
                pending += got
                *lines, pending = pending.split(b"\n")
                taken_back.update(int(line) for line in lines)
            if i in taken_back:
                continue
            out.write(b"begin %d\n" % i)
            out.flush()
            try:
                walked: object = _walk(root, skip, fences)
            except Exception as e:  # the run logs it and walks the tree itself
                walked = e
            try:
                data = pickle.dumps(walked, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # an error that cannot be sent: its text
                data = pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))
            with open(fds[i], "wb", closefd=True) as f:
                f.write(data)
            out.write(b"done %d\n" % i)
            out.flush()
    except (OSError, EOFError):
        return  # the run went away: nothing to say to anyone
    except Exception as e:  # e.g. a ``skip`` whose module is not there
        with contextlib.suppress(OSError):
            out.write(f"failed {type(e).__name__}: {e}".replace("\n", " ").encode() + b"\n")
            out.flush()


def _spawn(memfds: Sequence[int]) -> subprocess.Popen[bytes]:
    """Start the helper (``_BOOT``), the memory files passed down at their numbers."""
    return subprocess.Popen(
        [sys.executable, "-P", "-c", _BOOT, json.dumps(sys.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=memfds,
        process_group=0,  # a Ctrl-C on the terminal reaches only the run
    )


class WalkAhead:
    """The trees after the first, walked by a helper process in order; ``take``
    hands each one over (or walks it here when the helper has not begun it)."""

    def __init__(
        self, trees: Sequence[LocalTree], fences: Mapping[tuple[int, int], str] | None = None
    ) -> None:
        """``fences``: the configured places' folders, which no walk enters
        (``scan_tree``), the same here as in the observer.

        Call it from the thread that lives as long as the run (the main
        one): the helper dies when the thread that started it ends."""
        #: Each tree asked for, by its root: its index in the helper's list.
        self._pending: dict[str, tuple[int, LocalTree]] = {}
        self._memfds: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._begun: set[int] = set()
        self._done: set[int] = set()
        self._said = b""  # a line from the helper not yet whole
        self._ended = False  # the helper's output closed (it is done, or died)
        listed: list[tuple[str, Callable[[str], bool] | None]] = []
        for tree in trees:
            key = os.fspath(tree.root)
            if key not in self._pending:
                self._pending[key] = (len(listed), tree)
                listed.append((key, tree.skip))
        if not listed:
            return
        try:
            self._memfds = [
                os.memfd_create(f"walk-{i}", os.MFD_CLOEXEC) for i in range(len(listed))
            ]
            request = pickle.dumps(
                (os.getpid(), listed, dict(fences or {}), self._memfds), pickle.HIGHEST_PROTOCOL
            )
            self._proc = _spawn(self._memfds)
            assert self._proc.stdin is not None
            self._proc.stdin.write(array("Q", [len(request)]).tobytes() + request)
            self._proc.stdin.flush()
        except (OSError, AttributeError, ValueError, pickle.PicklingError) as e:
            # No helper to be had (no memfd here, a process limit reached, a
            # ``skip`` that cannot be sent): every tree is walked here.
            log.info("walking ahead is not available (%s); the trees are walked in turn", e)
            self.close()

    def _hear(self, until: int | None = None) -> None:
        """Read what the helper said so far; with ``until``, wait until it
        has walked that tree (or ended)."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        fd = proc.stdout.fileno()
        while not self._ended:
            if until is None:
                if not _readable(fd):
                    return  # nothing more said yet
            elif until in self._done:
                return
            try:
                got = os.read(fd, 4096)
            except OSError:
                got = b""
            if not got:
                self._ended = True
                return
            *lines, self._said = (self._said + got).split(b"\n")
            for line in lines:
                what, _, rest = line.partition(b" ")
                if what == b"begin":
                    self._begun.add(int(rest))
                elif what == b"done":
                    self._done.add(int(rest))
                else:
                    log.info("the helper walking ahead stopped: %s", rest.decode(errors="replace"))

    def _take_back(self, index: int) -> None:
        """Tell the helper not to walk tree ``index``: it is walked here."""
        if self._proc is None or self._proc.stdin is None or self._ended:
            return
        with contextlib.suppress(OSError):
            self._proc.stdin.write(b"%d\n" % index)
            self._proc.stdin.flush()

    def _result(self, index: int) -> object:
        """The helper's walk of tree ``index`` (or the error it met), read
        from its memory file, which is then closed (its memory freed)."""
        fd, self._memfds[index] = self._memfds[index], -1
        try:
            size = os.fstat(fd).st_size
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as data:
                return pickle.loads(data)
        finally:
            os.close(fd)

    def take(self, root: Path, skip: Callable[[str], bool] | None) -> Walked | None:
        """The walk of ``root``, if the helper has it or is at it; None when
        this process should walk it itself: never asked ahead, asked with
        other ``skip`` rules, not begun there yet, failed there, or walked
        there in another folder than the one at ``root`` now."""
        key = os.fspath(root)
        found = self._pending.pop(key, None)
        if found is None or self._proc is None:
            return None
        index, tree = found
        self._hear()
        if tree.skip is not skip or index not in self._begun:
            # Not begun there: walking it here costs the same, and waits for
            # nothing. (The helper may begin it just now; its walk is unused.)
            self._take_back(index)
            return None
        self._hear(until=index)
        if index not in self._done:  # the helper died (killed, out of memory)
            log.info("the helper walking %s ended before it was done; walking it here", key)
            return None
        try:
            got = self._result(index)
        except Exception as e:  # a walk that cannot be read back: walk here
            log.info(
                "the walk of %s could not be read from the helper (%r); walking it here", key, e
            )
            return None
        if isinstance(got, BaseException):
            # An OSError may be no longer so (a disk mounted since): the walk here says.
            log.info("the helper could not walk %s (%r); walking it here", key, got)
            return None
        try:
            st = os.stat(key)
        except OSError:
            return None  # the walk here raises what it meets
        columns: Columns = got  # type: ignore[assignment]  # what ``_walk`` returns
        if (st.st_dev, st.st_ino) != columns[0]:
            # Another folder there now (a disk mounted or unmounted since
            # the helper walked): what was walked is not this tree.
            log.info("%s changed since the helper walked it; walking it here", key)
            return None
        return _entries(key, columns)

    def close(self) -> None:
        """Stop the helper, waiting for nothing: a walk still under way (a
        tree never asked for, as an unavailable store's; the run stopped by
        a signal) is killed, which is safe, as the helper only reads."""
        self._pending.clear()
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            proc.wait()
        fds, self._memfds = self._memfds, []
        for fd in fds:
            if fd >= 0:
                os.close(fd)
