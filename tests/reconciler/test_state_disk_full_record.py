"""The run's record (its exit, its census, the metrics) refused as the run
ends, its work done: the state disk filled meanwhile, or counting failed.
Recording never raises and never changes the run's exit, but a record lost
is said, as README names a full state disk (``state database …: its disk
is full …``): otherwise status shows the run as never ended, in silence."""

from __future__ import annotations

import gc
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import history
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, mounted

OLD = datetime(2022, 1, 1, tzinfo=UTC)


def _fill(folder: Path) -> None:
    """Another program fills ``folder``'s disk."""
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize))


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    return ws


def _full(db: Path, cause: str) -> str:
    return (
        f"state database {db}: its disk is full ({cause}); free space on it (or raise the "
        "quota), then run again: the database is kept as it is"
    )


#: Said too when the first apply's backup meets the full disk.
_NO_BACKUP = (
    "warning: no backup of the state database was made in {state}/backups: its disk is full "
    "(database or disk is full); free space on it (or raise the quota): the next apply tries "
    "again, the run's exit is not changed"
)


def test_a_record_the_full_disk_refuses_as_it_is_opened_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    state = tmp_path / "state"
    with mounted(state, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        assert ws.run("apply", "--yes").code == 0
        real = history.record

        def filled_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
            _fill(state)  # the disk fills as the apply ends
            return real(*args, **kwargs)

        monkeypatch.setattr(history, "record", filled_meanwhile)
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        r = ws.run("apply", "--yes")
        monkeypatch.undo()
        (state / "filler").unlink()
        status = ws.run("status")
        gc.collect()
    # SQLite calls the -shm it could not grow an I/O error; the free space says why
    said = f"warning: the run could not be recorded: {_full(state / 'state.db', 'disk I/O error')}"
    assert (r.code, r.err) == (0, said + "\n")  # the work's exit
    assert not (ws.incoming / "IMG_1.JPG").exists()  # the work itself was done
    assert "run 2: apply done, exit -" in status.out  # what was lost


def test_a_record_the_full_disk_refuses_as_it_is_written_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    state = tmp_path / "state"
    with mounted(state, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        real = StateDB.record_exit

        def filled_meanwhile(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            _fill(state)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(StateDB, "record_exit", filled_meanwhile)
        r = ws.run("apply", "--yes")
        log = (state / "reconcile.log").read_text()
        gc.collect()
    said = "warning: the run could not be recorded: " + _full(
        state / "state.db", "database or disk is full"
    )
    assert (r.code, r.err) == (0, f"{_NO_BACKUP.format(state=state)}\n{said}\n")
    assert said in log
    assert not (ws.incoming / "IMG_0.JPG").exists()


def test_a_census_the_full_disk_refuses_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    state = tmp_path / "state"
    with mounted(state, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        real = history.census_key

        def filled_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
            _fill(state)  # once the run's exit is written, before its census
            return real(*args, **kwargs)

        monkeypatch.setattr(history, "census_key", filled_meanwhile)
        r = ws.run("apply", "--yes")
        gc.collect()
    census = (
        f"warning: this run's census could not be stored: "
        f"{_full(state / 'state.db', 'database or disk is full')}; status and the report "
        "show no counts for it, the run's exit is not changed"
    )
    metrics = (
        f"warning: the metrics file: {state / 'reconcile.prom'}: cannot be written (No space "
        "left on device); fix the folder or the setting (reconcile validate checks it); the "
        "run's exit is not changed"
    )
    assert (r.code, r.err) == (0, f"{census}\n{metrics}\n{_NO_BACKUP.format(state=state)}\n")


def test_a_census_that_fails_to_count_is_said_with_its_traceback_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)

    def broken(*_: object) -> None:
        raise ZeroDivisionError("division by zero")  # a bug in counting

    monkeypatch.setattr(history, "census", broken)
    r = ws.run("plan")
    said = (
        "warning: this run's census could not be taken (ZeroDivisionError: division by "
        "zero; the log has its traceback); status and the report show no counts for it, "
        "the run's exit is not changed"
    )
    assert (r.code, r.err) == (0, said + "\n")
    log = (tmp_path / "state" / "reconcile.log").read_text()
    assert said in log
    assert "Traceback (most recent call last)" in log
    assert 'raise ZeroDivisionError("division by zero")' in log


def test_a_state_disk_full_before_the_run_is_said_once(tmp_path: Path) -> None:
    """The command says it; the record, refused the same way, adds nothing."""
    ws = _ws(tmp_path)
    state = tmp_path / "state"
    with mounted(state, "-t", "tmpfs", "-o", "size=8m", "tmpfs"):
        assert ws.run("apply", "--yes").code == 0
        _fill(state)
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        r = ws.run("apply", "--yes")
        gc.collect()
    assert r.code == 1
    assert r.err.count("its disk is full") == 1, r.err
