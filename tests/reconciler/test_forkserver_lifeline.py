"""The encoders' forkserver dies with the run that started it. The kernel's
parent-death signal is asked for as the forkserver starts: a run SIGKILLed
before that (the crash campaign's kill as the encode stage starts) left the
forkserver and the resource tracker beside it running for ever. The run
names itself in the forkserver's environment; a forkserver whose parent is
not that run any more ends at once."""

from __future__ import annotations

import os
import subprocess
import sys

from reconciler.lifeline import RUN_PID_ENV

#: What the forkserver does with its preload, then what it would do next.
_PRELOAD = "import reconciler.forkserver_lifeline; print('served')"


def _start(run_pid: int, then: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"{_PRELOAD}; {then or 'pass'}"],
        env={**os.environ, RUN_PID_ENV: str(run_pid)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_forkserver_whose_run_died_before_it_started_ends_at_once() -> None:
    # Its parent here is this test, not the run named (long gone): as a
    # forkserver reparented after the run was killed.
    gone = _start(2**22 + 7, then="import time; time.sleep(20)")
    assert (gone.returncode, gone.stdout) == (0, "")


def test_a_forkserver_of_a_live_run_serves() -> None:
    alive = _start(os.getpid())  # this test is the parent of the process started
    assert (alive.returncode, alive.stdout) == (0, "served\n")
