"""Copies of the state database, kept a few deep (``[state] backup_count``).

The database can be re-derived by observing again, but not cheaply: a large
library's hashes take hours to read, and the run history and tombstones are
the only record of what the tool did. A copy is made with SQLite's online
backup API, so it is consistent even while another connection writes, at the
end of an apply, at most once per ``backup_interval_hours``.

A copy is written under a temporary name (``.state-<time>.db.tmp``, with
SQLite's ``-journal`` beside it while it is written), then renamed. A backup
that fails (its disk full, most often) removes its own at once, and raises
for the caller to say why. A run killed in between (cron's timeout, a reboot)
leaves that whole copy of the database behind; the next backup, or the sweep
after a killed run, removes it. Both hold the backups folder's own lock
(``.lock``) meanwhile, as every backup does while it writes: the backup is
made once the run lock is released, so the run lock alone would not keep
them from removing the copy another process is still writing.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

FOLDER = "backups"
_PREFIX, _SUFFIX = "state-", ".db"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_UNFINISHED_PREFIX, _UNFINISHED_SUFFIX = f".{_PREFIX}", f"{_SUFFIX}.tmp"
#: What SQLite keeps beside a copy while it writes it (the copy's rollback
#: journal): left too by a backup killed, or failed, mid-copy.
_JOURNAL = "-journal"
_LOCK = ".lock"


def backups(folder: Path) -> list[Path]:
    """The copies in ``folder``, oldest first (their names sort by time)."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name.startswith(_PREFIX) and p.name.endswith(_SUFFIX)
    )


def made_at(path: Path) -> datetime | None:
    try:
        stamp = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX)
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def back_up(
    conn: sqlite3.Connection, folder: Path, *, keep: int, interval_hours: float, now: datetime
) -> Path | None:
    """Copy the database behind ``conn`` into ``folder`` unless the newest
    copy is younger than the interval; then keep only the ``keep`` newest.
    Returns the new copy, or None when none was due (or ``keep`` is 0, or
    another process is making one right now)."""
    existing = backups(folder)
    newest = made_at(existing[-1]) if existing else None
    if keep <= 0 or (newest is not None and now - newest < timedelta(hours=interval_hours)):
        remove_unfinished(folder)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder) as mine:
        if not mine:
            return None  # another process is copying it this moment: one is enough
        _remove_unfinished(folder)
        path = folder / f"{_PREFIX}{now.astimezone(UTC).strftime(_STAMP)}{_SUFFIX}"
        tmp = folder / f".{path.name}.tmp"
        try:
            _write_copy(conn, tmp)
            os.replace(tmp, path)  # a copy under its final name is always whole
        except BaseException:
            # Most often its disk filled: the half-made copy would hold the
            # last of the space the database itself needs until the next
            # backup. The caller says why no copy was made.
            _remove_half_copy(tmp)
            raise
        for old in backups(folder)[:-keep]:
            old.unlink()
        return path


def _write_copy(conn: sqlite3.Connection, tmp: Path) -> None:
    """The database behind ``conn``, whole and on the disk, at ``tmp``."""
    dest = sqlite3.connect(tmp)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())


def _remove_half_copy(tmp: Path) -> None:
    """Remove the copy at ``tmp`` a backup failed to finish, with the rollback
    journal SQLite leaves beside it. One that cannot be removed now is the
    next backup's to remove, as a killed backup's is: the failure that
    stopped this one is what the caller says."""
    for path in (tmp, tmp.with_name(f"{tmp.name}{_JOURNAL}")):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue


def remove_unfinished(folder: Path) -> list[Path]:
    """Remove the copies killed backups left half made in ``folder``; return
    them. None while another process is making a copy (its own is not done)."""
    if not folder.is_dir():
        return []
    with _locked(folder) as mine:
        return _remove_unfinished(folder) if mine else []


def _remove_unfinished(folder: Path) -> list[Path]:
    """Only with the folder's lock held: every temporary copy is then a
    killed backup's."""
    removed = []
    for p in folder.iterdir():
        name = p.name.removesuffix(_JOURNAL)
        if name.startswith(_UNFINISHED_PREFIX) and name.endswith(_UNFINISHED_SUFFIX):
            try:
                p.unlink()
            except OSError:
                continue  # debris is never worth failing a backup for
            removed.append(p)
    return removed


def _locked(folder: Path) -> AbstractContextManager[bool]:
    """Hold the backups folder's lock if no other process does."""
    return locked_if_free(folder / _LOCK)


@contextmanager
def locked_if_free(path: Path, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the lock file ``path`` if no other process does, or lets go of
    it within ``wait`` seconds: True when held. For writers that run after
    the run lock is let go (a backup of the state database, the metrics
    textfile): with it held, any temporary of theirs is a killed writer's.
    The kernel releases a ``flock`` when its holder dies, so a killed writer
    never leaves it locked."""
    # O_NONBLOCK: a pipe at its name is never waited on.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        yield _flock_within(fd, wait)
    finally:
        os.close(fd)


#: How often a waiting writer tries the lock again.
_RETRY_S = 0.05


def _flock_within(fd: int, wait: float) -> bool:
    """Take ``fd``'s ``flock``, trying again until ``wait`` seconds passed:
    polled, never blocked on, so a holder stuck for good cannot hold this
    run for ever (nor a signal find it in a call that cannot be left)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_RETRY_S)
