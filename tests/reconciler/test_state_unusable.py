"""A state database SQLite cannot use is named for what it is: locked by
another program (exit 4: run again once it is done), read-only (fix the
permission where it is), or damaged (move it aside): only damage is worth
losing the tombstones and the run history for. A row no run of this tool
wrote (a schema version, a run's times) is damage, said in one line."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import state
from reconciler.errors import LockHeldError
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _applied(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=4)
    return ws


def _db(ws: Workspace) -> Path:
    return ws.root / "state" / "state.db"


def test_a_database_locked_by_another_program_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _applied(tmp_path)
    monkeypatch.setattr(state.connection, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(_db(ws), isolation_level=None)  # an sqlite3 shell, say
    other.execute("BEGIN EXCLUSIVE")
    try:
        r = ws.run("plan", now=NOW)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (r.code, r.out) == (4, "")
    assert r.err == (
        f"error: state database {_db(ws)} is locked by another program (database is "
        "locked): an sqlite3 shell left in a transaction, a backup tool, another reconcile; "
        "run again once it is done\n"
    )
    assert ws.run("plan", now=NOW).code == 0  # nothing to move aside


def test_a_lock_met_mid_run_is_a_lock_too(tmp_path: Path) -> None:
    ws = _applied(tmp_path)
    other = sqlite3.connect(_db(ws), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        mine = sqlite3.connect(_db(ws), isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as raised:
            mine.execute("insert into meta values ('mid-run', 'a write')")
        mine.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert isinstance(state.unusable(_db(ws), raised.value), LockHeldError)


def _chattr(flag: str, path: Path) -> None:
    """Root writes through any mode, so a read-only file is made immutable
    (e2fsprogs, on every Debian). Missing or refused, the test fails: it
    does not skip."""
    assert shutil.which("chattr") is not None, "chattr (e2fsprogs) is not installed"
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"chattr {flag} {path}: {done.stderr}"


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_is_named_not_called_damaged(tmp_path: Path, what: str) -> None:
    ws = _applied(tmp_path)
    db = _db(ws)
    if what == "folder":  # no -wal or -shm can be made beside it
        for companion in ("state.db-wal", "state.db-shm"):
            (db.parent / companion).unlink(missing_ok=True)
    stuck = db if what == "file" else db.parent
    _chattr("+i", stuck)
    try:
        r = ws.run("plan", now=NOW)
    finally:
        _chattr("-i", stuck)
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith(f"error: state database {db}: {stuck} is read-only for this user ("), (
        r.err
    )
    assert r.err.endswith(
        "); make it writable (its owner, its mode, chattr -i, or a disk mounted read-only), "
        "then run again\n"
    )
    assert ws.run("plan", now=NOW).code == 0


def test_a_schema_version_that_is_no_number_is_damage(tmp_path: Path) -> None:
    ws = _applied(tmp_path)
    with sqlite3.connect(_db(ws)) as conn:
        conn.execute("update meta set value = 'abc' where key = 'schema_version'")
    for command in (["plan"], ["apply", "--yes"]):
        r = ws.run(*command, now=NOW)
        assert (r.code, r.out) == (1, ""), command
        assert r.err.startswith(
            f"error: state database {_db(ws)} is damaged (meta.schema_version is 'abc', "
            "not a number); move it aside with its -wal and -shm files"
        ), r.err


def test_a_run_row_no_run_wrote_is_damage_said_after_the_work(tmp_path: Path) -> None:
    ws = _applied(tmp_path)
    with sqlite3.connect(_db(ws)) as conn:
        conn.execute("update runs set finished_at = 'x'")
    r = ws.run("plan", now=NOW)
    assert r.code == 0  # the plan was made and shown; its exit stands
    assert r.err.startswith(
        f"warning: the run could not be recorded: state database {_db(ws)} is damaged "
        "(Invalid isoformat string: 'x'); move it aside"
    ), r.err
