"""SIGINT and SIGTERM against the exit table (README: 130 / 143 for apply
and plan, one line on stderr, the run recorded): SIGTERM stops a plan as
Ctrl-C does, and a signal that comes once every action of an apply is done
stops nothing, so it changes neither the exit nor the run's record."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler import render
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)
INTERRUPTED = "error: interrupted; what was done is kept, run again to continue\n"


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    return ws


def _runs(ws: Workspace) -> list[tuple[str, str, int | None]]:
    with sqlite3.connect(ws.root / "state" / "state.db") as conn:
        return conn.execute("select command, status, exit_code from runs order by id").fetchall()


def test_sigterm_as_a_finished_apply_prints_its_report_keeps_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    real = render.apply_summary

    def summary(*args: Any, **kwargs: Any) -> str:
        os.kill(os.getpid(), signal.SIGTERM)  # systemd's stop, as the report is printed
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "apply_summary", summary)
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, r.err) == (0, "")
    assert "Apply: 4 changed." in r.out
    assert _runs(ws) == [("apply", "done", 0)]  # every action ran: nothing was stopped
    log = (ws.root / "state" / "reconcile.log").read_text()
    assert "SIGTERM after the run was done; its exit stands\n" in log
    status = ws.run("status").out.splitlines()[1]
    assert status.startswith("last run: apply worked"), status


# The command stops itself at a point of its work; the signal is named last.
_PROGRAM = """
import os, signal, sys, time
from reconciler.cli import main
module, name = sys.argv.pop(1), sys.argv.pop(1)
SIG = signal.Signals[sys.argv.pop()]

def stopped_here(*args, **kwargs):
    os.kill(os.getpid(), SIG)
    time.sleep(5)
    raise AssertionError("the signal did not stop the command")

setattr(__import__(module, fromlist=[name]), name, stopped_here)
sys.exit(main())
"""


def _stopped(ws: Workspace, where: str, command: str, sig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, *where.split(), "-c", str(ws.config), command, sig],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_a_plan_exits_128_plus_n_with_its_line_and_record(
    tmp_path: Path, sig: str, code: int
) -> None:
    ws = _ws(tmp_path)
    p = _stopped(ws, "reconciler.commands.plan observe_and_plan", "plan", sig)
    assert (p.returncode, p.stdout, p.stderr) == (code, "", INTERRUPTED)
    assert _runs(ws) == [("plan", "interrupted", code)]


def test_sigterm_during_status_exits_143_with_its_line(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    p = _stopped(ws, "reconciler.lock held_now", "status", "SIGTERM")
    assert (p.returncode, p.stderr) == (143, INTERRUPTED)


def test_a_hangup_during_a_plan_stops_it_as_sigterm_does(tmp_path: Path) -> None:
    """The terminal closed (an ssh session dropped): 128 + 1, the line, the
    record; not a kill that leaves the run unrecorded."""
    ws = _ws(tmp_path)
    p = _stopped(ws, "reconciler.commands.plan observe_and_plan", "plan", "SIGHUP")
    assert (p.returncode, p.stdout, p.stderr) == (129, "", INTERRUPTED)
    assert _runs(ws) == [("plan", "interrupted", 129)]
    assert "last run: plan was interrupted (SIGHUP: the terminal closed)" in ws.run("status").out


# A hangup sent to a command started with it ignored (nohup) is ignored.
_NOHUP = """
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it
from reconciler.cli import main
module, name = sys.argv.pop(1), sys.argv.pop(1)
found = __import__(module, fromlist=[name])
real = getattr(found, name)

def hung_up_here(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGHUP)
    return real(*args, **kwargs)

setattr(found, name, hung_up_here)
sys.exit(main())
"""


def test_a_hangup_under_nohup_changes_nothing(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            _NOHUP,
            "reconciler.commands.apply",
            "observe",
            "-c",
            str(ws.config),
            "apply",
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (p.returncode, p.stderr) == (0, ""), p.stdout + p.stderr
    assert _runs(ws) == [("apply", "done", 0)]
