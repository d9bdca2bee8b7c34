"""The run lock: one apply at a time per state directory.

``flock`` is released by the kernel when its holder dies, so a crashed run
never leaves a lock behind (the dead-holder check is the kernel's); the pid
written into the file only serves the message to the person who waits.
"""

from __future__ import annotations

import fcntl
import os
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def fileno(self) -> int | None:
        """The locked descriptor, for helpers that must hold the lock too."""
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
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


#: The kernel's table of the file locks held now (Linux).
PROC_LOCKS = "/proc/locks"


def held_now(state_dir: Path, locks: str = PROC_LOCKS) -> bool | None:
    """Does a live run hold the run lock of ``state_dir`` now? Asked of the
    kernel's table of locks, never by taking the lock (a run starting that
    very moment would find it held and not run). None: cannot tell (no
    such table); False also when there is no lock file (no run ever)."""
    try:
        st = os.stat(state_dir / "lock")
    except OSError:
        return False
    # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2147043 0 EOF": major:minor in
    # hex, the inode in decimal.
    mine = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open(locks, encoding="ascii", errors="replace") as f:
            return any(
                len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == mine
                for fields in (line.split() for line in f)
            )
    except OSError:
        return None
