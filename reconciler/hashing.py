"""SHA-256 of files, and copying while hashing, in bounded memory."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO

from reconciler import crashpoint
from reconciler.interrupt import check_abandoned

CHUNK = 1 << 20
#: Reads to hash: a buffer that stays in the CPU's cache between the read and
#: the hash (bench/hashing.py: 256 KiB reads hash ~1.4x faster than 1 MiB).
HASH_CHUNK = 1 << 18


_buffers = threading.local()

#: How a file another program may have replaced since the walk is opened to
#: be read: a FIFO put in its place would hold ``open`` until some writer
#: came (for ever), a terminal would become ours. ``O_NONBLOCK`` is for the
#: open only (``open_to_read`` clears it once the file is seen regular).
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_to_read(name: str | Path, *, dir_fd: int | None = None, follow: bool = True) -> int:
    """A descriptor of the regular file ``name``, never waiting on a pipe;
    OSError (EINVAL) for anything else there (a FIFO, a device, a folder).
    ``follow=False``: a symbolic link at ``name`` is refused (ELOOP)."""
    fd = os.open(name, READ_FLAGS | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    try:
        regular(fd, name)
        os.set_blocking(fd, True)  # reads exactly as any (a FUSE store's too)
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular(fd: int, name: object) -> None:
    """OSError unless ``fd`` is a regular file: a device's bytes never end,
    a FIFO's are nobody's photo."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file (a pipe, device or folder)", str(name))


def read_file(name: str | Path, limit: int) -> bytes:
    """Up to ``limit`` bytes of the regular file ``name`` (a sidecar),
    opened as ``open_to_read`` does."""
    with open(open_to_read(name), "rb") as f:
        return f.read(limit)


#: Pipes read so far, by path: ``-c <(...)`` can be read once, and a run
#: reads its configuration more than once (the log, the command, the record).
_piped: dict[str, bytes] = {}


def read_named(name: str | Path, limit: int) -> bytes:
    """A file a person named on the command line (the configuration, a saved
    plan): a regular file, or a pipe (``-c <(...)``, read once and kept for
    the process); OSError for a folder or a device (whose bytes never end),
    and EFBIG past ``limit`` bytes."""
    if stat.S_ISFIFO(os.stat(name).st_mode):
        key = os.path.abspath(name)
        if key not in _piped:
            with open(name, "rb") as f:
                _piped[key] = f.read(limit + 1)
        data = _piped[key]
    else:
        data = read_file(name, limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes: not one of ours", str(name))
    return data


def sha256_file(path: str | Path | int) -> str:
    """The SHA-256 of a regular file, by its path or a descriptor (which it
    closes; opened by ``open_to_read``); OSError for anything else."""
    # Read into one buffer per thread, reused: no 1 MiB allocation per read
    # (nor per small file), no copy out of it; hashlib releases the GIL while
    # it hashes, so the observer's threads hash on every core.
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = memoryview(bytearray(HASH_CHUNK))
    h = hashlib.sha256()
    fd = path if isinstance(path, int) else open_to_read(path)
    with open(fd, "rb", buffering=0) as f:
        if isinstance(path, int):
            regular(fd, path)
        while n := f.readinto(buf):
            check_abandoned()  # a long read gives way to a second signal
            h.update(buf[:n])
    return h.hexdigest()


def copy_hashing(src: BinaryIO, dest: Path) -> tuple[str, int]:
    """Stream ``src`` into a new file ``dest``, fsync it, return (sha256, size).

    Raises ``Abandoned`` between chunks once a run abandons in-flight work;
    the caller's temporary ``dest`` is then left for the run's closing sweep."""
    h = hashlib.sha256()
    size = 0
    with open(dest, "xb") as out:
        while chunk := src.read(CHUNK):
            check_abandoned()
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
            crashpoint.reached("write")
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest(), size


def copy_file_hashing(src: Path, dest: Path) -> tuple[str, int]:
    with open(open_to_read(src), "rb") as f:
        return copy_hashing(f, dest)


#: Temporaries ``discard`` could not remove, until ``left_behind`` takes them.
_LEFT: set[str] = set()


def discard(path: Path) -> None:
    """Remove one of our own temporaries if it is there. A failure to (a
    disk gone read-only, a folder turned into a file) never replaces the
    error being reported: the file is noted (``left_behind``), and the next
    apply sweeps for debris as after a crash (``reconciler.sweep``)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        # (a read-only disk refuses to unlink even a name that is not there)
        if os.path.lexists(path):
            # (a name through a folder descriptor, /proc/self/fd/N/..., is
            # named by its real path while that descriptor is open: now)
            _LEFT.add(os.path.realpath(path))


def left_behind() -> list[str]:
    """The temporaries ``discard`` could not remove since the last call."""
    taken = sorted(_LEFT)
    _LEFT.difference_update(taken)
    return taken


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (SMB) refuse fsync on directories
    finally:
        os.close(fd)
