"""The run history: every plan and apply recorded with its exit and the
census taken at its end (reconciler.census, for the report's plots), then
the metrics textfile rewritten from them, and after an apply a copy of the state
database when one is due (reconciler.backup).

Called by the CLI once a command's exit code is known, whatever it is. A run
that cannot be recorded (a damaged database, a full disk) is not made worse
by trying: recording never raises, and never changes the run's exit (the
work it stands for was done). Nor is it silent: it returns what a person
must do about a state database that refused the run's record (its disk
full, its rows not what this tool writes), for the CLI to say, and tells
the CLI's ``warn`` of the rest (a census, a metrics file, a backup lost).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import backup, leftover, metrics, visible
from reconciler.census import census, census_key
from reconciler.config import DesiredState
from reconciler.errors import ReconcileError
from reconciler.logfile import LOGGER
from reconciler.state import StateDB, damaged, unusable

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
    be written, a backup that could not be made); without it that goes to
    the log alone. Returns why the run's record was lost, if it was."""
    try:
        db = StateDB.in_dir(desired.state_dir)
    except ReconcileError as e:
        return _news(str(e), reason)
    problem = None
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
        _census(db, desired, run_id, warn)
        _write_metrics(desired, db, warn)
    except (sqlite3.Error, OSError) as e:
        # Most often the state disk filled as the run ended: its work is
        # done and its exit stands, but the record is lost, which status
        # would otherwise show as a run that never ended, in silence.
        problem = _news(_unrecorded(db.path, e), reason)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        # A row that is not what this tool writes (a run's finished_at that is
        # no time, a summary that is no JSON object), read back for the
        # metrics: the file was damaged.
        db.close()
        return damaged(db.path, e)
    try:
        if command == "apply":  # apart: its failure says nothing of the rows
            _back_up(db, desired, warn)
    finally:
        db.close()
    return problem


def _news(problem: str, reason: str) -> str | None:
    """``problem``, unless it is what the command itself said last
    (``reason``: the database it could not open or use, the same way); it
    is news when the disk filled once the work was done."""
    said = visible.escape_controls(problem).splitlines()[0].strip()
    return None if said == reason else problem


def _unrecorded(path: Path, e: sqlite3.Error | OSError) -> str:
    """What to tell of a state database at ``path`` that refused the run's
    record: named as any command names it (a full disk, a failing one, a
    lock, damage: ``unusable``)."""
    if isinstance(e, sqlite3.Error):
        return str(unusable(path, e))
    if e.errno in _FULL:
        return f"state database {path}: its disk is full ({e.strerror}); free space on it"
    where = f"{e.filename}: " if e.filename else ""
    return f"state database {path}: {where}{e.strerror or e}"


#: errno of a disk with no room left for this user (no space, over its quota).
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _back_up(db: StateDB, desired: DesiredState, warn: Callable[[str], None] | None) -> None:
    """A copy of the state database when one is due (``backup.back_up``).
    One that cannot be made does not change the run's exit (its work was
    done), but is said: the person counts on the copies README promises,
    and the same cause (a full disk, most often) stops the next run."""
    folder = desired.state_dir / backup.FOLDER
    try:
        backup.back_up(
            db.conn,
            folder,
            keep=desired.state.backup_count,
            interval_hours=desired.state.backup_interval_hours,
            now=datetime.now(UTC),
        )
    except (sqlite3.Error, OSError) as e:
        if _is_full(e):
            why = f": its disk is full ({_cause(e, folder)}); free space on it (or raise the quota)"
        else:
            why = f" ({_cause(e, folder)}); fix that"
        _tell(
            warn,
            f"warning: no backup of the state database was made in {folder}{why}: "
            "the next apply tries again, the run's exit is not changed",
        )


def _is_full(e: sqlite3.Error | OSError) -> bool:
    """Whether ``e`` came of a full disk, as SQLite or the kernel says (not
    by the free space now: the failed copy, removed, gave it back)."""
    if isinstance(e, OSError):
        return e.errno in _FULL
    return bool(getattr(e, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL)


def _cause(e: sqlite3.Error | OSError, folder: Path) -> str:
    """``e`` in a few words, with the file it names unless that is ``folder``."""
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename and Path(e.filename) != folder else ""
        return f"{where}{e.strerror or e}"
    return str(e)


def _tell(warn: Callable[[str], None] | None, said: str) -> None:
    """``said`` to the CLI's ``warn`` (its log and stderr), else to the log."""
    said = visible.escape_controls(said)
    if warn is None:
        logging.getLogger(LOGGER).warning(said)
    else:
        warn(said)


def _census(
    db: StateDB, desired: DesiredState, run_id: int, warn: Callable[[str], None] | None
) -> dict[str, Any] | None:
    """The census of the state this run left, stored with the run. A census
    that cannot be taken or stored (a bug in counting, a damaged row, the
    disk filling) must not turn a run that finished into a crash: the run
    keeps its exit, without one, and the person is told why.
    A run that left the counted rows as an earlier run did takes its census
    (``census_key``): the same count, done again, gives the same figures."""
    try:
        key = census_key(db, desired)
        counted = db.census_at(key)
        if not counted:
            leftover.reclaim()  # counting needs the memory the plan's world holds
            counted = census(db, desired).to_json()
        db.record_census(run_id, counted, key)
    except Exception as e:  # recording never raises (module docstring)
        if isinstance(e, (sqlite3.Error, OSError)):
            why = f"could not be stored: {_unrecorded(db.path, e)}"
        else:  # not the database's doing: its traceback is for a bug report
            logging.getLogger(LOGGER).info("the census failed:", exc_info=True)
            why = f"could not be taken ({type(e).__name__}: {e}; the log has its traceback)"
        _tell(
            warn,
            f"warning: this run's census {why}; status and the report show no counts "
            "for it, the run's exit is not changed",
        )
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
        _tell(warn, said)


def metrics_path(desired: DesiredState) -> Path:
    configured = desired.log.metrics_file
    return Path(configured) if configured else desired.state_dir / metrics.PROM_NAME
