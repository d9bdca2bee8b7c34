"""The run lock: one apply at a time per state directory.

``flock`` is released by the kernel when its holder dies, so a crashed run
never leaves a lock behind (the dead-holder check is the kernel's); the pid
written into the file only serves the message to the person who waits.

The holder also takes an open-file-description lock (``F_OFD_SETLK``) on the
same file, released with it: the kernel answers ``F_OFD_GETLK`` on that one
without anything being taken, so ``status`` can ask whether a run is alive
(``held_now``). A ``flock`` cannot be asked so, and its entry in
``/proc/locks`` names the filesystem's device, which is not the ``st_dev``
a btrfs subvolume's file shows: matching the two was wrong there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from pathlib import Path
from types import TracebackType

from reconciler.errors import LockHeldError, StateError
from reconciler.hashing import regular


class RunLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Never waiting on a pipe at its name; anything but a file is named.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            regular(fd, self.path)
        except OSError:
            os.close(fd)
            raise StateError(
                f"{self.path} is not a regular file (a pipe, a device or a folder took its "
                "name); remove it: a run makes it again"
            ) from None
        os.set_blocking(fd, True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(
                f"another reconcile run (pid {holder}) holds {self.path}; "
                "wait for it to finish (cron: let runs not overlap)"
            ) from None
        # A full disk: the pid only serves a waiting run's message, and what
        # the run must write next (the state database) says so, with its path.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _sign(fd, fcntl.F_WRLCK)
        self._fd = fd

    def fileno(self) -> int | None:
        """The locked descriptor, for helpers that must hold the lock too."""
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            _sign(self._fd, fcntl.F_UNLCK)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


#: ``struct flock`` (fcntl(2)): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = "hhqqi"


def _sign(fd: int, kind: int) -> None:
    """Take (``F_WRLCK``) or let go (``F_UNLCK``) the whole file's
    open-file-description lock beside the ``flock``: only the sign that
    ``held_now`` reads. A filesystem without such locks (some FUSE ones)
    leaves the run unsigned: status then cannot tell, the run goes on."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0))


def held_now(state_dir: Path) -> bool | None:
    """Does a live run hold the run lock of ``state_dir`` now? Asked of the
    lock itself (``F_OFD_GETLK``: the kernel says whether another open file
    holds the run's sign), never by taking it (a run starting that very
    moment would find it held and not run). None: cannot tell (no such
    locks here); False also when there is no lock file (no run ever)."""
    try:
        # O_NONBLOCK: a pipe at its name is never waited on.
        fd = os.open(state_dir / "lock", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:  # not ours to read (another user's state directory)
        return None
    try:
        asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind: int = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, asked))[0]
    except OSError:
        return None
    finally:
        os.close(fd)
    return kind != fcntl.F_UNLCK
