"""Copies of the state database, kept a few deep (``[state] backup_count``).

The database can be re-derived by observing again, but not cheaply: a large
library's hashes take hours to read, and the run history and tombstones are
the only record of what the tool did. A copy is made with SQLite's online
backup API, so it is consistent even while another connection writes, at the
end of an apply, at most once per ``backup_interval_hours``.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

FOLDER = "backups"
_PREFIX, _SUFFIX = "state-", ".db"
_STAMP = "%Y%m%dT%H%M%S.%fZ"


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
    Returns the new copy, or None when none was due (or ``keep`` is 0)."""
    if keep <= 0:
        return None
    existing = backups(folder)
    newest = made_at(existing[-1]) if existing else None
    if newest is not None and now - newest < timedelta(hours=interval_hours):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_PREFIX}{now.astimezone(UTC).strftime(_STAMP)}{_SUFFIX}"
    tmp = folder / f".{path.name}.tmp"
    tmp.unlink(missing_ok=True)  # a copy an earlier run did not finish
    dest = sqlite3.connect(tmp)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a copy under its final name is always whole
    for old in backups(folder)[:-keep]:
        old.unlink()
    return path
