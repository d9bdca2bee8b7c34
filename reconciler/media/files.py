"""The two files of an encode: the original it reads, held by one descriptor
and proven by its SHA-256, and the output it writes, whose failures name it.

The applier proves a file holds the original's bytes, then hands the
encoder its name. The name may change hands meanwhile (a camera's counter
reset, a sync putting a new photo there, while the encode waited in the
pool or ffmpeg read a clip for minutes): read by its name, the encoder
would encode that other photo and write the original's lineage into it.
So the encoder opens the name once and reads only through that descriptor
(ffmpeg and ffprobe through ``/proc/<pid>/fd/<n>``, the same file whatever
takes the name since), and proves that what it read hashes to the
original's SHA-256 before anything it says of the original counts (an
encode, "not worth it", "cannot decode", "kept"): a still's bytes in
memory, before the encode (about 0.5 ms a MB); a clip's file once ffmpeg
is done with it (one read more, beside minutes of encoding), which also
catches bytes changed in place meanwhile.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from reconciler.errors import MediaError
from reconciler.hashing import open_to_read, sha256_file


class OriginalChanged(MediaError):
    """What the encoder was given to read is not the original's bytes (any
    more): another file took its name, it changed in place, or it is gone.
    No verdict on the original: the caller tries again another time."""


@attrs.define
class HeldOriginal:
    """The original, open: read only through ``fd``, and proven against
    ``sha256`` (None: the caller proved nothing, and nothing is checked)."""

    name: Path
    fd: int
    sha256: str | None
    _proven: bool = attrs.field(default=False, init=False)

    @property
    def path(self) -> Path:
        """A path to this very file, whoever has taken its name since: for
        the tools that are given a path (ffmpeg, ffprobe, our own readers)."""
        return Path(f"/proc/{os.getpid()}/fd/{self.fd}")

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer in a shorter file)."""
        try:
            return os.pread(self.fd, size, 0)
        except OSError as e:
            raise MediaError(f"{self.name}: cannot read: {e.strerror or e}") from e

    def whole(self) -> bytes:
        """All of its bytes."""
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            with open(self.fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as e:
            raise MediaError(f"{self.name}: cannot read: {e.strerror or e}") from e

    def prove(self, data: bytes | None = None) -> None:
        """OriginalChanged unless the bytes read (``data``, all of them; else
        the file, read again through the descriptor) are the original's."""
        if self.sha256 is None or self._proven:
            return
        try:
            got = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(self.path)
        except OSError as e:
            raise OriginalChanged(
                f"{self.name}: cannot be read again to check it is the original "
                f"({e.strerror or e}); nothing was encoded, and the next run tries again"
            ) from e
        if got != self.sha256:
            raise OriginalChanged(
                f"{self.name}: no longer holds the original's bytes (now sha256 {got[:12]}): "
                "another file took its name, or it changed, before the encode read it; "
                "nothing was encoded, and the next run tries again"
            )
        # Bytes in memory do not change: later verdicts on them need no proof.
        self._proven = data is not None

    def named(self, text: str) -> str:
        """``text`` with the descriptor's path (in a tool's message) put back
        as the file's name."""
        return text.replace(str(self.path), str(self.name))


@contextmanager
def held(src: Path, sha256: str | None) -> Iterator[HeldOriginal]:
    """``src`` opened once to be read (a regular file only: a FIFO put at its
    name would hold the encoder for ever); MediaError when it cannot be,
    OriginalChanged when ``sha256`` says the caller just read it."""
    try:
        fd = open_to_read(src)
    except OSError as e:
        gone = MediaError if sha256 is None else OriginalChanged
        raise gone(f"{src}: cannot read: {e.strerror or e}") from e
    try:
        yield HeldOriginal(src, fd, sha256)
    finally:
        os.close(fd)


@contextmanager
def writing(dst: Path) -> Iterator[None]:
    """An OSError of the output's writes names ``dst`` (``os.write`` and
    ``os.fsync``, a file object's ``write``, name no file: a bare "No space
    left on device" says nothing of where), with its cause kept."""
    try:
        yield
    except OSError as e:
        if e.filename == str(dst):
            raise
        raise OSError(e.errno, e.strerror or str(e), str(dst)) from e


def write_synced(dst: Path, data: bytes) -> None:
    """``data`` in ``dst``, on the disk before this returns (DESIGN: written,
    fsynced, then renamed over the file it replaces)."""
    with writing(dst):
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def synced(dst: Path) -> None:
    """``dst``, written by another program (ffmpeg), on the disk."""
    with writing(dst):
        fd = os.open(dst, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
