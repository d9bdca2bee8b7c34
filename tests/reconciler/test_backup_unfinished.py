"""A backup of the state database cut short by a kill (cron's timeout, a
reboot) leaves a whole copy of the database under ``.state-<time>.db.tmp``:
the next backup, or the sweep after a killed run, removes it, never the
copy another process is still writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import backup, config
from reconciler.connect import connect
from reconciler.state import StateDB
from reconciler.sweep import sweep_debris
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[2]
KILLER = REPO / "tests" / "kill_at_syscall.py"
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = T0 - timedelta(days=800)


def _unfinished(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".state-*.db.tmp"))


def _leftover(folder: Path, when: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    left = folder / f".state-{when.strftime('%Y%m%dT%H%M%S.%fZ')}.db.tmp"
    left.write_bytes(b"SQLite format 3\0" + b"\0" * 4096)
    return left


def test_a_backup_killed_before_its_rename_is_removed_by_the_next(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w")
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD - timedelta(days=i), seed=i)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, str(KILLER), "-c", str(ws.config), "apply", "--yes"]
    for _ in range(2):  # one more whole copy per kill, before
        killed = subprocess.run(
            argv,
            env={**env, "RECONCILE_TEST_KILL_ON": r"os.rename|\.state-.*\.db\.tmp$|1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = ws.root / "state" / "backups"
    assert len(_unfinished(folder)) == 1  # the second kill's backup removed the first's
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _unfinished(folder) == []
    [copy] = backup.backups(folder)
    assert copy.stat().st_size > 0


def test_the_next_backup_removes_leftovers_even_when_no_copy_is_due(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path / "state")
    folder = tmp_path / "state" / "backups"
    try:
        made = backup.back_up(db.db.conn, folder, keep=3, interval_hours=24, now=T0)
        assert made is not None
        _leftover(folder, T0 + timedelta(hours=1))
        assert backup.back_up(db.db.conn, folder, keep=3, interval_hours=24, now=T0) is None
        assert _unfinished(folder) == []
        _leftover(folder, T0 + timedelta(hours=2))  # backups since turned off
        assert backup.back_up(db.db.conn, folder, keep=0, interval_hours=24, now=T0) is None
        assert _unfinished(folder) == [] and backup.backups(folder) == [made]
    finally:
        db.close()


def test_a_copy_another_process_is_writing_is_left_alone(tmp_path: Path) -> None:
    """The backup is made once the run lock is released (the run is being
    recorded), so it holds the backups folder's own lock while it writes."""
    db = StateDB.in_dir(tmp_path / "state")
    folder = tmp_path / "state" / "backups"
    writing = _leftover(folder, T0)
    holder = subprocess.Popen(  # another process, in the middle of its backup
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(folder / ".lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert backup.back_up(db.db.conn, folder, keep=3, interval_hours=0, now=T0) is None
        assert backup.remove_unfinished(folder) == []
        assert writing.exists() and backup.backups(folder) == []
    finally:
        holder.communicate("")
    assert backup.remove_unfinished(folder) == [writing]  # its writer was killed, say
    try:
        assert backup.back_up(db.db.conn, folder, keep=3, interval_hours=0, now=T0) is not None
    finally:
        db.close()


def test_the_sweep_after_a_killed_run_removes_leftovers(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    desired = config.load(ws.config)
    left = _leftover(desired.state_dir / backup.FOLDER, T0)
    assert left in sweep_debris(desired, connect(desired), before=0.0)
    assert not left.exists()
