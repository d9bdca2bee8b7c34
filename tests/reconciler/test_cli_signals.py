"""Signals around a command's work, in the CLI itself: Ctrl-C during a plan
exits 130 as apply does, and a signal after the work (while the run is being
recorded, or in the interpreter's teardown) keeps the run's record and the
exit that was chosen. (The applier's own handling is in test_interrupt.py.)"""

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

from reconciler import history
from reconciler.commands import plan as plan_command
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    return ws


def _last_run(ws: Workspace) -> tuple[str, str, int | None]:
    with sqlite3.connect(ws.root / "state" / "state.db") as conn:
        row = conn.execute(
            "select command, status, exit_code from runs order by id desc"
        ).fetchone()
    return row[0], row[1], row[2]


@pytest.mark.parametrize(("command", "status"), [(["apply", "--yes"], "done"), (["plan"], "ok")])
def test_ctrl_c_while_the_run_is_recorded_keeps_its_exit_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], status: str
) -> None:
    ws = _ws(tmp_path)
    real = history.record

    def record(*args: Any, **kwargs: Any) -> str | None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, once the work is done
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "record", record)
    r = ws.run(*command, now=NOW)
    assert (r.code, r.err) == (0, "")
    assert _last_run(ws) == (command[0], status, 0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    log = (ws.root / "state" / "reconcile.log").read_text()
    assert "SIGINT after the run was done; its exit stands\n" in log


def test_ctrl_c_during_a_plan_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _ws(tmp_path)

    def observe_and_plan(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal did not stop the plan")

    monkeypatch.setattr(plan_command, "observe_and_plan", observe_and_plan)
    r = ws.run("plan", now=NOW)
    assert (r.code, r.out) == (130, "")
    assert r.err == "error: interrupted; what was done is kept, run again to continue\n"
    assert _last_run(ws) == ("plan", "interrupted", 130)


_PROGRAM = """
import os, signal, sys
from reconciler.cli import main
code = main()  # as the console script calls it, with sys.argv
os.kill(os.getpid(), signal.SIGINT)  # what arrives during the interpreter's teardown
os.kill(os.getpid(), signal.SIGTERM)
sys.exit(code)
"""


@pytest.mark.parametrize(("command", "code"), [(["plan"], 0), (["plan", "--only", "x"], 1)])
def test_a_signal_after_the_program_returned_keeps_its_exit(
    tmp_path: Path, command: list[str], code: int
) -> None:
    ws = _ws(tmp_path)
    argv = ["reconcile", "-c", str(ws.config), *command]
    p = subprocess.run(
        [sys.executable, "-c", _PROGRAM, *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
