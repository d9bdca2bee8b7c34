"""The run history: every plan and apply recorded with its exit and the
census taken at its end (reconciler.census, for the report's plots), then
the metrics textfile rewritten from them, and after an apply a copy of the state
database when one is due (reconciler.backup).

Called by the CLI once a command's exit code is known, whatever it is. A run
that cannot be recorded (a damaged database, a full disk) is not made worse
by trying: recording never raises. It returns what a person must do about a
state database whose rows no run of this tool wrote, for the CLI to say.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import backup, leftover, metrics
from reconciler.census import census, census_key
from reconciler.config import DesiredState
from reconciler.errors import ReconcileError
from reconciler.logfile import LOGGER
from reconciler.state import StateDB, damaged

#: The status word of a run that made no row of its own, by exit code (DESIGN.md).
RUN_STATUS = {0: "ok", 1: "error", 2: "changes", 3: "person-needed", 4: "locked"}


def record(
    desired: DesiredState,
    *,
    run_id: int | None,
    command: str,
    started_at: datetime,
    exit_code: int,
    reason: str,
    summary: dict[str, int],
    warn: Callable[[str], None] | None = None,
) -> str | None:
    """Record the run; ``warn`` (the CLI's: to the log and stderr) is told
    of what the run still needs a person to know (a metrics file that cannot
    be written); without it that goes to the log alone."""
    try:
        db = StateDB.in_dir(desired.state_dir)
    except ReconcileError:
        return None  # the command itself said why it could not open it
    try:
        run_id = db.record_exit(
            run_id,
            command=command,
            started_at=started_at.isoformat(),
            status=RUN_STATUS.get(exit_code, "interrupted" if exit_code >= 128 else "error"),
            exit_code=exit_code,
            reason=reason,
            summary=summary,
        )
        _census(db, desired, run_id)
        _write_metrics(desired, db, warn)
    except (sqlite3.Error, OSError):
        pass
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        # A row that is not what this tool writes (a run's finished_at that is
        # no time, a summary that is no JSON object), read back for the
        # metrics: the file was damaged.
        db.close()
        return damaged(db.path, e)
    try:
        if command == "apply":  # apart: its failure says nothing of the rows
            backup.back_up(
                db.conn,
                desired.state_dir / backup.FOLDER,
                keep=desired.state.backup_count,
                interval_hours=desired.state.backup_interval_hours,
                now=datetime.now(UTC),
            )
    except (sqlite3.Error, OSError):
        pass
    finally:
        db.close()
    return None


def _census(db: StateDB, desired: DesiredState, run_id: int) -> dict[str, Any] | None:
    """The census of the state this run left, stored with the run. A census
    that cannot be taken (a bug in counting, a damaged row) must not turn a
    run that finished into a crash: the run keeps its exit, without one.
    A run that left the counted rows as an earlier run did takes its census
    (``census_key``): the same count, done again, gives the same figures."""
    try:
        key = census_key(db, desired)
        counted = db.census_at(key)
        if not counted:
            leftover.reclaim()  # counting needs the memory the plan's world holds
            counted = census(db, desired).to_json()
        db.record_census(run_id, counted, key)
    except Exception:  # recording never raises (module docstring)
        return None
    return counted


def _write_metrics(desired: DesiredState, db: StateDB, warn: Callable[[str], None] | None) -> None:
    """Rewrite the Prometheus textfile from ``db`` (``metrics.rewrite``: read
    with the textfile's lock held, so a plan ending beside an apply cannot
    leave figures older than the apply's). A file that cannot be written
    does not change the run's exit, but is never passed over in silence: a
    dashboard fed by it would show the last run that could, for ever."""
    path = metrics_path(desired)
    try:
        if not metrics.rewrite(path, db):
            logging.getLogger(LOGGER).warning(
                f"{path}: another run kept it locked for {metrics.WAIT_SECONDS:.0f} s; "
                "not rewritten by this one"
            )
    except OSError as e:
        key = "log.metrics_file" if desired.log.metrics_file else "the metrics file"
        why = e.strerror or str(e)
        if isinstance(e, (FileExistsError, NotADirectoryError)):  # mkdir of its folder
            why = "a file is where its folder should be"
        said = (
            f"warning: {key}: {path}: cannot be written ({why}); fix the folder "
            "or the setting (reconcile validate checks it); the run's exit is not changed"
        )
        if warn is None:
            logging.getLogger(LOGGER).warning(said)
        else:
            warn(said)


def metrics_path(desired: DesiredState) -> Path:
    configured = desired.log.metrics_file
    return Path(configured) if configured else desired.state_dir / metrics.PROM_NAME
