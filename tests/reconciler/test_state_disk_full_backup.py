"""A backup of the state database that cannot be made (``[state]
backup_count``): its disk filled while the copy was written, or its folder
cannot be made. The run's work was done and its exit stands, but the
failure is said (stderr and the log), and the half-written copy does not
stay behind to hold the last of the space the database itself needs."""

from __future__ import annotations

import gc
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import backup
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, mounted

OLD = datetime(2022, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _fill_leaving(folder: Path, spare: int) -> None:
    """Another program fills ``folder``'s disk, all but ``spare`` bytes."""
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - spare))


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    return ws


def _this_runs_log(state: Path) -> str:
    return (state / "reconcile.log").read_text().split("reconcile apply (config")[-1]


def test_a_backup_its_full_disk_refuses_is_said_and_leaves_no_half_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    state = tmp_path / "state"
    folder = state / "backups"
    with mounted(state, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        assert ws.run("apply", "--yes").code == 0
        [first] = backup.backups(folder)
        real = backup.back_up

        def filled_meanwhile(conn, folder, *, keep, interval_hours, now):  # type: ignore[no-untyped-def]
            # room for the log's lines, none for a copy; a copy due at once
            _fill_leaving(state, 64 << 10)
            return real(conn, folder, keep=keep, interval_hours=0, now=now)

        monkeypatch.setattr(backup, "back_up", filled_meanwhile)
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        r = ws.run("apply", "--yes")
        left = sorted(p.name for p in folder.iterdir())
        log = _this_runs_log(state)
        gc.collect()
    said = (
        f"warning: no backup of the state database was made in {folder}: its disk is full "
        "(database or disk is full); free space on it (or raise the quota): the next apply "
        "tries again, the run's exit is not changed\n"
    )
    assert (r.code, r.err) == (0, said)
    assert said in log
    assert not (ws.incoming / "IMG_1.JPG").exists()  # the work itself was done
    assert left == [".lock", first.name]  # neither the half copy nor its journal


def test_a_copy_that_fails_removes_itself_and_its_journal(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path / "state")
    db.conn.execute("create table filler(x)")
    db.conn.executemany("insert into filler values (?)", [(os.urandom(1000),) for _ in range(600)])
    try:
        with mounted(tmp_path / "backups", "-t", "tmpfs", "-o", "size=256k", "tmpfs") as folder:
            with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
                backup.back_up(db.conn, folder, keep=3, interval_hours=0, now=T0)
            left = sorted(p.name for p in folder.iterdir())
    finally:
        db.close()
    assert left == [".lock"]


def test_a_killed_backups_journal_goes_with_its_copy(tmp_path: Path) -> None:
    """A backup killed mid-copy leaves SQLite's journal beside its copy."""
    folder = tmp_path / "backups"
    folder.mkdir()
    name = f".state-{(T0 - timedelta(days=1)).strftime('%Y%m%dT%H%M%S.%fZ')}.db.tmp"
    for left in (name, f"{name}-journal"):
        (folder / left).write_bytes(b"half a copy")
    removed = backup.remove_unfinished(folder)
    assert sorted(p.name for p in removed) == [name, f"{name}-journal"]
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]


def test_a_backups_folder_that_cannot_be_made_is_said(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    folder = tmp_path / "state" / "backups"
    folder.parent.mkdir()
    folder.write_text("not a folder")
    r = ws.run("apply", "--yes")
    said = (
        f"warning: no backup of the state database was made in {folder} (File exists); "
        "fix that: the next apply tries again, the run's exit is not changed\n"
    )
    assert (r.code, r.err) == (0, said)
    assert said in _this_runs_log(folder.parent)
    assert not (ws.incoming / "IMG_0.JPG").exists()
