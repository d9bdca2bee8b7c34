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
