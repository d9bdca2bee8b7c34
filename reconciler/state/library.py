"""The library's lineage: which original (and tier) each library file was
made from, its role in its item, the renditions the tool made, and the
encodes settled for good."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from reconciler.model import DAMAGED_ROLE
from reconciler.state import connection
from reconciler.state.connection import (
    CHUNK,
    Connection,
    chunks,
    clamped,
    now_text,
    unusable,
)


class LineageRow(NamedTuple):
    """Which original (and tier) a library file was made from."""

    path: str
    original_sha256: str
    sha256: str
    tier: str
    size: int
    mtime_ns: int
    #: The item's capture time (UTC epoch seconds), recorded at import.
    captured_at: float | None = None
    #: What the file is in its item (``LibraryFile.role``); "" when not
    #: known: a row written so keeps the role its content had.
    role: str = ""


class Library(Connection):
    """The library's rows: lineage, roles, renditions, settled encodes."""

    def lineage_in_order(self) -> Generator[LineageRow, None, None]:
        """Every library row in path order, streamed: one ordered read, for
        a merge with a walk put in the same order (as the hash cache's)."""
        sql = (
            "select path, original_sha256, sha256, tier, size, mtime_ns, captured_at, role "
            "from library order by path"
        )
        new = tuple.__new__
        for row in self.conn.execute(sql):
            yield new(LineageRow, row)

    def lineage(self) -> dict[str, LineageRow]:
        """Every library row, by path (observation merges them in order
        instead: ``lineage_in_order``)."""
        return {row.path: row for row in self.lineage_in_order()}

    def forget_lineage(self, paths: Iterable[str], *, gone: bool = False) -> None:
        """Library rows of files no longer at these paths (moved within the
        library: their content is known at its new path); ``gone``: rows set
        aside (``set_aside_lineage``) whose content is back."""
        rows = [(p,) for p in paths]
        if rows:
            table = "library_gone" if gone else "library"
            with self.transaction():
                self.conn.executemany(f"delete from {table} where path = ?", rows)

    def set_aside_lineage(self, rows: Sequence[LineageRow], *, move: bool = True) -> None:
        """Rows of library files gone, their content nowhere else in the
        library, kept in ``library_gone`` until put back; ``move``: taken
        out of ``library`` too (their path holds nothing now)."""
        if rows:
            cols = ", ".join(LineageRow._fields)
            with self.transaction():
                self.conn.executemany(
                    f"insert or replace into library_gone ({cols}) "
                    f"values ({', '.join('?' * len(LineageRow._fields))})",
                    rows,
                )
                if move:
                    self.conn.executemany(
                        "delete from library where path = ?", [(r.path,) for r in rows]
                    )

    def gone_lineage(self) -> list[LineageRow]:
        """The rows set aside (``set_aside_lineage``), in path order."""
        sql = f"select {', '.join(LineageRow._fields)} from library_gone order by path"
        return [LineageRow(*r) for r in self.conn.execute(sql)]

    def record_lineage(self, row: LineageRow) -> None:
        self.record_lineages([row])

    def record_lineages(self, rows: Iterable[LineageRow]) -> None:
        """Many library rows in one statement (after a lost state DB, a
        large library's every file): a row per path, the last one given.
        A row that does not say what its file is (role "": a file placed,
        encoded, or hashed again) keeps the role its content had: what a
        file is in its item outlives the item's presence in a source."""
        latest = {
            row.path: row._replace(size=clamped(row.size), mtime_ns=clamped(row.mtime_ns))
            for row in rows
        }
        if latest:
            roles = self.roles_of({row.original_sha256 for row in latest.values() if not row.role})
            if roles:
                latest = {
                    path: row if row.role else row._replace(role=roles.get(row.original_sha256, ""))
                    for path, row in latest.items()
                }
            now = now_text()
            made = [
                (row.sha256, row.original_sha256, row.tier, now)
                for row in latest.values()
                if row.sha256 != row.original_sha256
            ]
            with self.transaction():
                self.conn.executemany(
                    f"insert or replace into library ({', '.join(LineageRow._fields)}) "
                    f"values ({', '.join('?' * len(LineageRow._fields))})",
                    latest.values(),
                )
                # A file made by encoding stays known by its bytes after the
                # library file is encoded again (``renditions``); the first
                # record of those bytes is kept.
                self.conn.executemany(
                    "insert or ignore into renditions (sha256, original_sha256, tier, made_at) "
                    "values (?, ?, ?, ?)",
                    made,
                )

    def damaged_files(self) -> list[str]:
        """The library's files damaged in place (``DAMAGED_ROLE``), by path."""
        sql = "select path from library where role = ? order by path"
        return [r[0] for r in self.conn.execute(sql, (DAMAGED_ROLE,))]

    def roles_of(self, shas: set[str]) -> dict[str, str]:
        """The role recorded for each of these originals' library files
        (those with one)."""
        found: dict[str, str] = {}
        for chunk in chunks(sorted(shas), CHUNK // 2):  # each bound twice
            marks = ", ".join("?" * len(chunk))
            # (and of rows set aside: a file gone that comes back by other
            # hands than the tool's, from the trash, is what it was)
            found.update(
                self.conn.execute(
                    "select original_sha256, role from library_gone "
                    f"where original_sha256 in ({marks}) and role != '' "
                    "union all select original_sha256, role from library "
                    f"where original_sha256 in ({marks}) and role != ''",
                    [*chunk, *chunk],
                )
            )
        return found

    def record_roles(self, roles: Mapping[str, str]) -> None:
        """What each original's library file is in its item (original SHA-256
        -> role), as the item's sidecar in the library says. A role other
        than an original's is never taken back: content that was some item's
        rendered edit is never encoded, even if it is another's original too
        (a duplicate)."""
        rows = [(role, sha) for sha, role in roles.items()]
        if rows:
            with self.transaction():
                self.conn.executemany(
                    "update library set role = ? "
                    "where original_sha256 = ? and role in ('', 'original')",
                    rows,
                )

    def born_at(self) -> float:
        """When this database began (epoch seconds): what is older than it
        was never recorded in it. Databases made before this was kept: when
        their first run started."""
        found = self._meta("created_at")
        if found is None:
            first = self.conn.execute("select min(started_at) from runs").fetchone()[0]
            return datetime.fromisoformat(first).timestamp() if first else time.time()
        return float(found)

    def made_any(self) -> bool:
        """Has the tool ever recorded a file it made by encoding? (No: a new
        or lost state database, which knows its renditions only from the
        lineage the files carry.)"""
        return self.conn.execute("select 1 from renditions limit 1").fetchone() is not None

    def record_made(self, sha256: str, original_sha256: str, tier: str) -> None:
        """A file the tool made by encoding, recorded before it replaces its
        library file, from the encode's own thread, on a connection of its
        own, committed at once: a run killed between the replace and its
        record leaves a file still known for the tool's. Bytes recorded and
        never placed (the replace refused) are the tool's all the same."""
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=connection.BUSY_TIMEOUT_S
            )
            try:
                conn.execute(
                    "insert or ignore into renditions (sha256, original_sha256, tier, made_at) "
                    "values (?, ?, ?, ?)",
                    (sha256, original_sha256, tier, now_text()),
                )
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise unusable(self.path, e) from e

    def every_made(self) -> Iterator[tuple[str, str, str]]:
        """Every file the tool recorded making by encoding, as (SHA-256,
        the original's, tier), oldest first, streamed: the library's own
        journal of them is begun with these (``renditions_journal``). On a
        connection of its own, as ``record_made``: read from an encode's
        thread."""
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=connection.BUSY_TIMEOUT_S
            )
            try:
                sql = "select sha256, original_sha256, tier from renditions order by made_at"
                yield from conn.execute(sql)
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise unusable(self.path, e) from e

    def renditions(self, shas: Iterable[str] | None = None) -> dict[str, str]:
        """Files the tool made by encoding, now or earlier: their SHA-256 ->
        the original's. Only those of ``shas`` (None: every one): a large
        library's history is never read whole on a run that needs none of it."""
        sql = "select sha256, original_sha256 from renditions"
        if shas is None:
            return dict(self.conn.execute(sql))
        found: dict[str, str] = {}
        for chunk in chunks(sorted(set(shas))):
            marks = ", ".join("?" * len(chunk))
            found.update(self.conn.execute(f"{sql} where sha256 in ({marks})", chunk))
        return found

    def settled(self) -> dict[tuple[str, str], str]:
        rows = self.query("select original_sha256, tier, reason from settled")
        return {(r["original_sha256"], r["tier"]): r["reason"] for r in rows}

    def record_settled(self, original_sha256: str, tier: str, reason: str) -> None:
        self._put("settled", {"original_sha256": original_sha256, "tier": tier, "reason": reason})
