"""Full disks under what a run writes beside its work: the log (README lets
it be a link to a file elsewhere, /var/log say), the state directory, and
stdout (cron's ``>> /var/log/reconcile.out``). Each is named as what is
full; the work goes on where it can, and the exit is the work's."""

from __future__ import annotations

import errno
import gc
import io
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.state import unusable
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, mounted

REPO = Path(__file__).resolve().parents[1]
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _ws(tmp_path: Path, n: int = 1) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    for i in range(n):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    return ws


def _fill(folder: Path) -> None:
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={folder / 'filler'}", "bs=4k"], capture_output=True, check=False
    )


def _program(ws: Workspace, *command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), *command],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("command", [["apply", "--yes"], ["plan"]])
def test_a_log_on_a_full_disk_is_said_once_and_keeps_the_exit(
    tmp_path: Path, command: list[str]
) -> None:
    ws = _ws(tmp_path)
    (tmp_path / "state").mkdir()
    log = tmp_path / "state" / "reconcile.log"
    with mounted(tmp_path / "var-log", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as var_log:
        (var_log / "reconcile.log").touch()
        log.symlink_to(var_log / "reconcile.log")
        _fill(var_log)
        p = _program(ws, *command, stdout=subprocess.DEVNULL)
    # not a traceback per record ("--- Logging error ---"), nor one from
    # closing the log, nor exit 1 after the run's work was done
    assert (p.returncode, p.stderr) == (
        0,
        f"warning: the log {log} cannot be written (No space left on device); "
        "this run goes on without it\n",
    )
    if command[0] == "apply":
        assert not (ws.incoming / "IMG_0.JPG").exists()  # the work itself was done


@pytest.mark.parametrize("command", [["plan"], ["status"], ["apply", "--yes"]])
def test_a_full_state_disk_is_named_as_such_never_damage(
    tmp_path: Path, command: list[str]
) -> None:
    """Moving the database aside, as for damage, would throw away the run
    history and the tombstones: the only record of what the tool did."""
    ws = _ws(tmp_path)
    db = tmp_path / "state" / "state.db"
    with mounted(tmp_path / "state", "-t", "tmpfs", "-o", "size=4m", "tmpfs"):
        assert ws.run("apply", "--yes").code == 0
        _fill(tmp_path / "state")
        make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
        r = ws.run(*command)
        gc.collect()  # a connection SQLite could not open, let go before the unmount
    assert r.code == 1, r
    assert r.err.startswith(f"error: state database {db}: its disk is full ("), r.err
    assert r.err.endswith(
        "); free space on it (or raise the quota), then run again: the database is kept as it is\n"
    ), r.err
    assert "move it aside" not in r.err, r.err


def test_an_io_error_of_the_state_database_is_not_called_damage(tmp_path: Path) -> None:
    e = sqlite3.OperationalError("disk I/O error")
    e.sqlite_errorcode = sqlite3.SQLITE_IOERR | (4 << 8)  # type: ignore[attr-defined]  # IOERR_WRITE
    problem = str(unusable(tmp_path / "state.db", e))
    assert problem == (
        f"state database {tmp_path / 'state.db'}: the disk failed to read or write it "
        "(disk I/O error); check the disk (its free space, dmesg), then run again: do not move "
        "the database aside for this"
    )


class _FillsUp(io.StringIO):
    """A file whose disk fills once ``at`` is written to it (ENOSPC)."""

    def __init__(self, at: str) -> None:
        super().__init__()
        self.at, self.full = at, False

    def write(self, s: str) -> int:
        if self.full or self.at in s:
            self.full = True
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)


def test_stdout_filling_up_mid_apply_does_not_stop_the_apply(tmp_path: Path) -> None:
    ws = _ws(tmp_path, 3)
    out, err = _FillsUp("stage copy-to-target: started"), io.StringIO()
    code = main(
        ["-c", str(ws.config), "apply", "--yes"], stdout=out, stderr=err, stdin=io.StringIO("")
    )
    said = (
        "warning: stdout cannot be written (No space left on device); the rest of this run's "
        "output there is dropped; the run goes on, its exit is the work's\n"
    )
    assert (code, err.getvalue()) == (0, said)
    nas = sorted(p.name for p in (tmp_path / "nas").rglob("*.JPG"))
    assert nas == ["IMG_0.JPG", "IMG_1.JPG", "IMG_2.JPG"]
    assert not list(ws.incoming.iterdir())  # every stage ran, the removals too
    with sqlite3.connect(tmp_path / "state" / "state.db") as conn:
        runs = conn.execute("select command, status, exit_code from runs").fetchall()
    assert runs == [("apply", "done", 0)]
    assert said in (tmp_path / "state" / "reconcile.log").read_text()


def test_apply_with_stdout_on_a_full_device_does_its_work(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    with open("/dev/full", "w") as full:
        p = _program(ws, "apply", "--yes", stdout=full)
    assert (p.returncode, p.stderr) == (
        0,
        "warning: stdout cannot be written (No space left on device); the rest of this run's "
        "output there is dropped; the run goes on, its exit is the work's\n",
    )
    assert [p.name for p in (tmp_path / "nas").rglob("*.JPG")] == ["IMG_0.JPG"]
