"""``status`` on a run with no exit recorded: alive only while it holds the
run lock (asked of the kernel's lock table, never by taking the lock);
otherwise killed or crashed. And an apply stopped by a signal was
interrupted, not failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler import lock
from tests.helpers import Workspace, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[2]
OLD = datetime(2021, 1, 1, tzinfo=UTC)


def _apply(ws: Workspace, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        env={**clean, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _paused(ws: Workspace, release: Path) -> subprocess.Popen[str]:
    """An apply paused after its first copy into the library."""
    p = _apply(
        ws,
        RECONCILE_TEST_PAUSE_AT="finish-after:copy-to-library:1",
        RECONCILE_TEST_PAUSE_FILE=str(release),
    )
    deadline = time.monotonic() + 60
    while not Path(f"{release}.paused").exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() < deadline, "the apply never paused"
        time.sleep(0.02)
    return p


def _workspace(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws")
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD.replace(day=1 + i), seed=i)
    return ws


def test_a_killed_apply_is_said_not_to_have_finished(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    killed = _apply(ws, RECONCILE_TEST_KILL_AT="finish-after:copy-to-target:1")
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err
    assert lock.held_now(ws.root / "state") is False
    out = ws.run("status").out
    headline = out.splitlines()[1]
    assert headline.startswith("last run: apply did not finish (killed or crashed)"), out
    assert "apply did not finish (killed or crashed), exit -" in out.split("last runs:")[1]
    assert " running" not in out, out


def test_a_live_apply_is_said_to_be_running_now(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    release = tmp_path / "release"
    p = _paused(ws, release)
    try:
        assert lock.held_now(ws.root / "state") is True
        out = ws.run("status").out
        assert out.splitlines()[1].startswith("last run: apply is running now"), out
    finally:
        release.touch()
        p.communicate(timeout=120)
    assert p.returncode == 0


def test_an_apply_stopped_by_sigterm_was_interrupted_not_failed(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    release = tmp_path / "release"
    p = _paused(ws, release)
    p.send_signal(signal.SIGTERM)
    release.touch()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    headline = ws.run("status").out.splitlines()[1]
    assert headline.startswith(
        "last run: apply was interrupted (SIGTERM); what was done is kept"
    ), headline
    assert "failed" not in headline, headline


def test_no_lock_file_is_no_run(tmp_path: Path) -> None:
    assert lock.held_now(tmp_path) is False
