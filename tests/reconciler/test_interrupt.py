"""Stopping in-process: the applier after a signal, the sweep of a killed
run's debris, crashed runs, and the lifeline's view of a dead parent.
(The real processes and signals are in tests/test_crash_campaign.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import connect
from reconciler.interrupt import Interrupted, Interrupts
from reconciler.lifeline import alive
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.state import StateDB
from reconciler.sweep import sweep_debris
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def test_after_a_signal_no_action_starts_and_each_is_journaled(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    try:
        world = observe(desired, db, conn, now=NOW)
        the_plan = plan(desired, world, NOW)
        stop = Interrupts()  # not entered: no handlers, the flag set by hand
        with stop.applying():
            stop.signum = signal.SIGTERM
            stop.stopping.set()
            result = Applier(desired, db, conn, world, run_id=1, interrupts=stop).apply(the_plan)
        journal = db.journal_rows(1)
    finally:
        conn.close()
        db.close()
    assert {o.status for o in result.outcomes} == {"interrupted"}
    assert len(result.outcomes) == len(the_plan.actions) == 12  # 3 x (library, 2 targets, removal)
    assert result.outcomes[0].detail == (
        "not started: the run was stopped by SIGTERM; the next run does it"
    )
    assert [r["status"] for r in journal] == ["interrupted"] * 12
    assert files_under(ws.library) == {} and len(files_under(ws.incoming)) == 3


def test_before_apply_a_signal_raises_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as e, Interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises out of this at once
    assert e.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_while_applying_signals_set_flags_and_the_second_abandons() -> None:
    abandoned: list[bool] = []
    with Interrupts() as stop, stop.applying():
        stop.on_abandon(lambda: abandoned.append(True))
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.stopping.is_set() and not stop.abandoning.is_set()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.abandoning.is_set() and abandoned == [True]
    assert (stop.exit_code, stop.name) == (130, "SIGINT")


def test_the_sweep_removes_old_temporaries_only_on_marked_stores(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    desired = config.load(ws.config)
    old = time.time() - 60
    debris = [
        ws.library / "2024/01/02/.reconcile-tmp-aaa.JPG",
        ws.target("nas") / "2024/01/02/.reconcile-tmp-bbb.JPG",
        ws.target("usb") / ".reconcile-tmp-ccc",
        desired.state_dir / "fetch-x1y2" / "original",
    ]
    kept = [
        ws.library / "2024/01/02/IMG_1.JPG",  # a real file
        ws.target("nas") / "2024/01/02/.reconcile-tmp-new.JPG",  # changed since the lock
    ]
    for p in [*debris, kept[0]]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    for p in [*debris, debris[-1].parent, kept[0]]:
        os.utime(p, (old, old))  # dates say nothing: the sweep goes by ctime
    unmarked = tmp_path / "usb" / ".reconcile-target.json"
    unmarked.unlink()  # usb looks unmounted: nothing there is touched
    time.sleep(0.05)  # a file's ctime comes from a coarser clock than time.time()
    locked_at = time.time()
    time.sleep(0.05)
    kept[1].parent.mkdir(parents=True, exist_ok=True)
    kept[1].write_bytes(b"partial")
    os.utime(kept[1], (old, old))
    conn = connect(desired)
    removed = sweep_debris(desired, conn, before=locked_at)
    assert sorted(removed) == sorted([debris[0], debris[1], debris[3].parent])
    assert debris[2].exists() and all(p.exists() for p in kept)


def test_a_run_left_running_is_marked_crashed_once(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path)
    try:
        killed = db.start_run("apply")
        db.finish_run(db.start_run("apply"), "done", {})
        assert db.mark_crashed() == [killed]
        assert db.mark_crashed() == []
        assert [r["status"] for r in db.last_runs()] == ["done", "crashed"]
    finally:
        db.close()


def test_a_dead_but_unreaped_parent_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # exits, stays a zombie: kill(pid, 0) would still succeed
    assert not alive(child.pid)
    os.kill(child.pid, 0)
    child.wait()
    assert alive(os.getpid())
