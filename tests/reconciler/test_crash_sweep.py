"""The sweep after a killed run is done in full, once: a Ctrl-C during it
left the killed run marked "crashed" with its debris still there, and no
later run looked again (the killed run's temporaries stayed on the targets
for good)."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.commands import apply as apply_command
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def test_a_sweep_cut_short_is_done_again_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    db = StateDB.in_dir(tmp_path / "state")
    db.start_run("apply")  # a run killed mid-copy: still "running"...
    db.close()
    debris = next(ws.target("nas").rglob("IMG_1.JPG")).with_name(".reconcile-tmp-IMG_7.JPG")
    debris.write_bytes(b"x" * 100_000)  # ...and the temporary it left
    hour_ago = time.time() - 3600
    os.utime(debris, (hour_ago, hour_ago))

    def cut_short(*_: object, **__: object) -> list[Path]:
        raise KeyboardInterrupt  # Ctrl-C, before the handlers of the run are in place

    monkeypatch.setattr(apply_command, "sweep_debris", cut_short)
    stopped = ws.run("apply", "--yes", now=NOW)
    assert stopped.code != 0, stopped.out + stopped.err
    monkeypatch.undo()
    assert debris.exists()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "never finished (killed?)" in r.out and "removed 1 temporary file" in r.out, r.out
    assert not debris.exists()


def test_the_sweep_holds_no_lock_on_the_state_db_while_it_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It walks every tree (minutes on a large NAS): a plan beside it, which
    takes no run lock, must not wait on the state DB's write lock, and time
    out calling it locked."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    db = StateDB.in_dir(tmp_path / "state")
    db.start_run("apply")  # a killed run
    db.close()
    real = apply_command.sweep_debris
    writable: list[bool] = []

    def sweeping(*args: object, **kwargs: object) -> list[Path]:
        other = sqlite3.connect(tmp_path / "state/state.db", timeout=0)
        try:
            other.execute("begin immediate")  # a plan's first write, meanwhile
            other.execute("rollback")
            writable.append(True)
        except sqlite3.OperationalError:
            writable.append(False)
        finally:
            other.close()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_command, "sweep_debris", sweeping)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0 and "never finished (killed?)" in r.out, r.out + r.err
    assert writable == [True]
