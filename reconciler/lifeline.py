"""Helper processes die with the run that started them.

The applier encodes in a forkserver ProcessPoolExecutor, and encoders start
ffmpeg. If the run is killed (SIGKILL from cron's timeout, the OOM killer),
nothing may keep running and writing into the library afterwards:

- the forkserver asks the kernel for SIGKILL when its parent, the run,
  dies (``PR_SET_PDEATHSIG``, set by importing ``reconciler.forkserver_lifeline``
  as a forkserver preload module);
- each encoder worker asks for SIGTERM when the forkserver dies, and its
  SIGTERM handler kills its own process group: itself and its ffmpeg;
- each worker also holds a duplicate of the run's lock file descriptor, so
  the kernel keeps the run lock (``flock``) taken until the last worker is
  gone, even when the main process died first;
- workers ignore SIGINT and lead their own process group, so a Ctrl-C on
  the terminal reaches only the main process, which decides what stops.

The helper that walks a large library's trees ahead (``reconciler.walk_ahead``)
is the run's own child, not the forkserver's: it asks for SIGKILL when the
run dies, ignores SIGINT and leads its own process group, the same way.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing import reduction
from pathlib import Path
from types import FrameType
from typing import Any

_PR_SET_PDEATHSIG = 1
_libc: Any = None


#: The run's pid, in the environment the forkserver starts with
#: (``reconciler.forkserver_lifeline``).
RUN_PID_ENV = "RECONCILE_FORKSERVER_PARENT"


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    Linux only; returns False where it is not available (the worker then
    still dies when its pipes close, later)."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return bool(_libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)


def _kill_own_group(signum: int, frame: FrameType | None) -> None:
    os.killpg(0, signal.SIGKILL)


class InheritedFd:
    """A file descriptor handed to a forkserver worker as an initializer
    argument: pickled while the worker is being started, the descriptor
    itself travels with it (``reduction.DupFd``), and the worker receives
    its own duplicate as a plain int."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _detach, (reduction.DupFd(self.fd),)


def _detach(dup: Any) -> int:
    return int(dup.detach())


def encoder_init(run_pid: int, lock_fd: InheritedFd | int | None = None) -> None:
    """ProcessPoolExecutor initializer for encoder workers (see the module doc).

    ``lock_fd``, passed as an ``InheritedFd``, arrives here as this worker's
    own duplicate of the run lock (an int); it stays open for the worker's
    whole life on purpose."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgrp()
    signal.signal(signal.SIGTERM, _kill_own_group)
    die_with_parent(signal.SIGTERM)
    # The forkserver may have died before the line above took effect (it
    # only dies after the run did): then nobody would ever signal us.
    if not alive(run_pid):
        _kill_own_group(signal.SIGTERM, None)


def alive(pid: int) -> bool:
    """Is ``pid`` running? A killed process nobody has reaped yet (a zombie)
    answers ``kill(pid, 0)`` but is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
