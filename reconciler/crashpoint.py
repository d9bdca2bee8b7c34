"""A test hook: kill or pause this process at a chosen point of a run.

The crash campaign (tests/test_crash_campaign.py) needs deterministic
places to SIGKILL ``reconcile apply`` and to deliver SIGINT/SIGTERM while
an action is in flight. Code that matters calls ``reached(point, kind)``;
unless one of the variables below is set, that is one dictionary lookup.

``RECONCILE_TEST_KILL_AT=POINT[:KIND]:N`` sends SIGKILL to this process the
N-th time POINT (for actions of KIND, if given) is reached.
``RECONCILE_TEST_PAUSE_AT=POINT[:KIND]:N`` instead creates the file
``$RECONCILE_TEST_PAUSE_FILE.paused`` and waits (up to a minute) until
``$RECONCILE_TEST_PAUSE_FILE`` exists: an action that is slow on cue.

Points: ``started`` (a stage's "started" journal rows are committed),
``finish-before`` (an action is done, its outcome not yet recorded),
``finish-after`` (its outcome and journal row are committed), and
``write`` (a file copy has written its first chunk, not yet fsynced or
renamed into place), ``aside`` (a folder source's file being removed
was moved aside, not yet hashed nor deleted), and, when the library's
observation finds a file changed with no write seen, ``changed-found``
(nothing recorded yet), ``changed-aside`` (its row from before set aside)
and ``changed-recorded`` (its new row recorded, the hash cache not yet).

A test hook, not a feature: nothing else may set these variables.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

KILL_ENV = "RECONCILE_TEST_KILL_AT"
PAUSE_ENV = "RECONCILE_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "RECONCILE_TEST_PAUSE_FILE"


def _parse(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    where, _, n = value.rpartition(":")
    return where, int(n)


_KILL = _parse(os.environ.get(KILL_ENV, ""))
_PAUSE = _parse(os.environ.get(PAUSE_ENV, ""))
_counts: dict[str, int] = {}
_lock = threading.Lock()


def reached(point: str, kind: str = "") -> None:
    """Count one arrival at ``point``; kill or pause here if the test asked."""
    if _KILL is None and _PAUSE is None:
        return
    with _lock:
        hits = {}
        for key in (point, f"{point}:{kind}") if kind else (point,):
            _counts[key] = _counts.get(key, 0) + 1
            hits[key] = _counts[key]
    if _KILL is not None and hits.get(_KILL[0]) == _KILL[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    if _PAUSE is not None and hits.get(_PAUSE[0]) == _PAUSE[1]:
        _pause(Path(os.environ[PAUSE_FILE_ENV]))


def _pause(release: Path) -> None:
    Path(f"{release}.paused").touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
