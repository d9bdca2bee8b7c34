"""SHA-256 of files, and copying while hashing, in bounded memory."""

from __future__ import annotations

import hashlib
import os
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


def sha256_file(path: str | Path | int) -> str:
    """The SHA-256 of a file, by its path or an open descriptor (which it closes)."""
    # Read into one buffer per thread, reused: no 1 MiB allocation per read
    # (nor per small file), no copy out of it; hashlib releases the GIL while
    # it hashes, so the observer's threads hash on every core.
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = memoryview(bytearray(HASH_CHUNK))
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
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
    with open(src, "rb") as f:
        return copy_hashing(f, dest)


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
