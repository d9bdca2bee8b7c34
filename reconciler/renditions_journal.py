"""The library's own record of what the tool made by encoding: an
append-only journal in the library (``FOLDER``/``NAME``), one line per
encode (the encoded file's SHA-256, its original's, the tier).

The state database records every encode too (``renditions``), and is the
first word on it. But a database put back from one of the tool's own
backups, or another state directory on the same library (a laptop's and a
desktop's), does not know the encodes made since, or elsewhere; and an
encode's lineage label alone is not believed (an editor copies it into the
person's crop). The journal travels with the library itself, so a record
that went back in time still learns what the tool made.

It lives in a hidden folder of the library's root, which no walk enters
(so it is never listed as a library file, nor weighed by a kept plan), and
its name begins as the marker's does, so it reads as the tool's wherever
it is seen. It is only ever appended to, one whole line per write, so two
configurations on one library may append side by side. A run killed
mid-append leaves a torn last line: it is skipped, and the next append
starts on a line of its own. A journal missing or unreadable vouches for
nothing: the rules are then those of the state database alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from reconciler.hashing import open_to_read

#: The hidden folder in the library's root (skipped by every walk).
FOLDER = ".reconcile"
#: The journal's file in it.
NAME = ".reconcile-renditions"

#: One line: "<encoded sha256> <original sha256> <tier>\n" (a tier is a
#: short name of letters, digits and '_.-', as lineage allows).
_LINE = re.compile(rb"([0-9a-f]{64}) ([0-9a-f]{64}) ([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\n")
#: No line of ours is longer: a longer one (damage) is skipped unread.
_LONGEST = 200
#: Lines written per write when a journal is begun with what the state
#: database knows.
_BATCH = 1000

#: (encoded SHA-256, original SHA-256, tier)
Made = tuple[str, str, str]


def journal_path(root: Path) -> Path:
    """Where the library at ``root`` keeps its journal."""
    return root / FOLDER / NAME


def append(root: Path, made: Made, known: Callable[[], Iterable[Made]] | None = None) -> None:
    """Add ``made`` to the journal of the library at ``root``, before the
    encode replaces its library file. A journal begun now (none there:
    the first encode since an upgrade, or one deleted) starts with
    ``known``: what the state database recorded making, so that a backup
    of it older than now is caught up too.

    No fsync: the journal is read only after the state database went back
    in time (a backup put back, another state directory), by which time
    the system has long written it; a crash right after an encode loses
    neither (the database's own record is committed first thing).
    OSError when it cannot be written: the encode waits for it."""
    line = _line(made)
    folder = root / FOLDER
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o755)
    path = folder / NAME
    flags = os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        fd = os.open(path, flags | os.O_RDWR)
        begun = False
    else:
        begun = True
    try:
        if begun and known is not None:
            _write_lines(fd, known())
        elif not begun and not _ends_a_line(fd):
            line = b"\n" + line  # after a torn line (a crash mid-append)
        _write(fd, line)
    finally:
        os.close(fd)


def _line(made: Made) -> bytes:
    data = f"{made[0]} {made[1]} {made[2]}\n".encode()
    if not _LINE.fullmatch(data):
        raise ValueError(f"not a rendition the journal can hold: {made!r}")
    return data


def _write_lines(fd: int, known: Iterable[Made]) -> None:
    """The rows ``known``, a batch of whole lines per write (a concurrent
    appender's line falls between two lines, never inside one)."""
    batch: list[bytes] = []
    for made in known:
        try:
            batch.append(_line(made))
        except ValueError:
            continue  # (a row no encode writes: not carried over)
        if len(batch) >= _BATCH:
            _write(fd, b"".join(batch))
            batch.clear()
    if batch:
        _write(fd, b"".join(batch))


def _ends_a_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Journal:
    """The journal of the library at ``root``, as read once, when first
    asked: only the lines of content ``wanted`` says the library holds (a
    long history is streamed through, never held whole)."""

    def __init__(self, root: Path, wanted: Callable[[], Collection[str]]) -> None:
        self._path = journal_path(root)
        self._wanted = wanted
        self._made: dict[str, str] | None = None
        #: the journal was there and could not be read (a disk's error)
        self.unreadable = False

    def original_of(self, sha256: str) -> str | None:
        """The original the tool made ``sha256`` from, if the journal says
        it did."""
        if self._made is None:
            self._made = self._read()
        return self._made.get(sha256)

    def _read(self) -> dict[str, str]:
        try:
            fd = open_to_read(self._path, follow=False)
        except OSError as e:
            # none yet (no encode since it was begun), or none of ours there
            self.unreadable = e.errno not in (errno.ENOENT, errno.ENOTDIR)
            return {}
        wanted = {s.encode() for s in self._wanted()}
        found: dict[str, str] = {}
        try:
            with open(fd, "rb") as f:
                for line in _lines(f):
                    if line[:64] in wanted and (m := _LINE.fullmatch(line)):
                        found[m[1].decode()] = m[2].decode()
        except OSError:
            self.unreadable = True  # what was read still counts
        return found


def _lines(f: BinaryIO) -> Iterator[bytes]:
    """The whole lines of ``f`` (ending in a newline: a torn last one is
    not), each at most ``_LONGEST`` bytes; a longer one is skipped."""
    while line := f.readline(_LONGEST + 1):
        if len(line) <= _LONGEST and line.endswith(b"\n"):
            yield line
            continue
        while not line.endswith(b"\n"):  # the rest of a long one
            line = f.readline(1 << 16)
            if not line:
                return
