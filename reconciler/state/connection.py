"""The state database's connection: opening (and migrating) it, transactions,
and what every table's module shares."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from reconciler.errors import LockHeldError, ReconcileError, StateError
from reconciler.schema import MIGRATIONS, SCHEMA_VERSION, install_triggers

if TYPE_CHECKING:
    import sqlite_utils


def _sqlite_utils() -> ModuleType:
    """sqlite-utils, loaded on first use: a no-op plan reads and writes its
    rows through the plain connection and never needs it, and loading it
    (with click, pluggy and dateutil's parser, which it imports at its top)
    was a tenth of such a run's start.

    It imports numpy when that is installed (matplotlib, for the report,
    brings it), for numpy column types this tool never stores: 0.15 s and
    11 MiB more. numpy is hidden while sqlite-utils loads, and importable
    as usual afterwards."""
    hide = "numpy" not in sys.modules
    if hide:
        sys.modules["numpy"] = None  # type: ignore[assignment]  # "import numpy" fails
    try:
        import sqlite_utils
    finally:
        if hide:
            del sys.modules["numpy"]
    return sqlite_utils


CHUNK = 900  # below SQLite's default limit of host parameters


def now_text() -> str:
    return datetime.now(UTC).isoformat()


def chunks(seq: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def damaged(path: Path, e: Exception) -> str:
    """What to tell a person whose state database SQLite cannot read (or
    holds a row no run of this tool wrote). Its -wal and -shm files go with
    it: SQLite would replay a stale WAL into the new database made under the
    same name."""
    return (
        f"state database {path} is damaged ({e}); move it aside with its -wal and -shm "
        f"files (cd {path.parent} && mkdir -p damaged-state && mv {path.name}* damaged-state/) "
        "and run again: the next run rebuilds it from the sources and targets"
    )


def unusable(path: Path, e: sqlite3.Error) -> ReconcileError:
    """Why SQLite cannot use the state database at ``path``, as the error to
    show. Only damage is worth moving it aside for (the tombstones and the
    run history go with it): a lock another program holds passes (exit 4, as
    a held run lock), a read-only file or folder, a full disk or one that
    fails to read or write is fixed where it is.
    Classified by SQLite's result code, never by the message."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF  # the primary code
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return LockHeldError(
            f"state database {path} is locked by another program ({e}): an sqlite3 shell "
            "left in a transaction, a backup tool, another reconcile; run again once it is done"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        stuck = _read_only(path)
        if stuck is not None or code == sqlite3.SQLITE_READONLY:
            where = stuck or path
            return StateError(
                f"state database {path}: {where} is read-only for this user ({e}); make it "
                "writable (its owner, its mode, chattr -i, or a disk mounted read-only), "
                "then run again"
            )
    if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        return StateError(_disk_problem(path, code, e))
    return StateError(damaged(path, e))


def _disk_problem(path: Path, code: int, e: sqlite3.Error) -> str:
    """A full disk (SQLite could not grow the database, its -wal or its
    -shm: an I/O error of the -shm is that too, on a full tmpfs) or a disk
    that failed a read or write. The file is not damaged by either: SQLite
    rolls back what it could not write. Moving it aside would lose it."""
    free = _free_bytes(path.parent)
    if code == sqlite3.SQLITE_FULL or free == 0:
        return (
            f"state database {path}: its disk is full ({e}); free space on it (or raise the "
            "quota), then run again: the database is kept as it is"
        )
    return (
        f"state database {path}: the disk failed to read or write it ({e}); check the disk "
        "(its free space, dmesg), then run again: do not move the database aside for this"
    )


def _free_bytes(folder: Path) -> int | None:
    """Bytes this user may still write in ``folder``'s filesystem (None: unknown)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _read_only(path: Path) -> Path | None:
    """The first of the database, its -wal and -shm files and its folder
    that this process may not write (what SQLite must write to open it)."""
    companions = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]
    for candidate in [*companions, path.parent]:
        if candidate.exists() and not os.access(candidate, os.W_OK):
            return candidate
    return None


#: How long a statement waits for a lock another connection holds.
BUSY_TIMEOUT_S = 30.0


_INT64 = (1 << 63) - 1


def storable(*values: int) -> bool:
    """Whether SQLite can hold each of ``values`` (64-bit signed integers):
    a file's mtime past 2262, or an inode with the top bit set, cannot."""
    return all(-_INT64 - 1 <= v <= _INT64 for v in values)


def clamped(value: int) -> int:
    """``value`` in SQLite's range, for a row that must be written anyway
    (a library file's lineage); what it is compared with then differs, so
    whatever it keys is worked out again rather than trusted."""
    return max(-_INT64 - 1, min(_INT64, value))


class Connection:
    """The connection to the state database, and what every table's methods use."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            #: The connection itself, for every read and write of a run's
            #: hot path; ``db`` wraps it in sqlite-utils where that helps.
            self.conn = conn
            self._db: sqlite_utils.Database | None = None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as e:
            # Closed now, not when collected: an open database keeps its
            # filesystem busy (a disk to be unmounted, a full one to clean).
            if "conn" in locals():
                conn.close()
            if isinstance(e, sqlite3.DatabaseError):
                raise unusable(path, e) from e
            raise StateError(f"state database {path}: {e.strerror}") from e
        self.path = path

    @property
    def db(self) -> sqlite_utils.Database:
        """The connection through sqlite-utils (loaded on first use)."""
        if self._db is None:
            self._db = _sqlite_utils().Database(self.conn)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        sql = "select name from sqlite_master where type = 'table'"
        if "meta" not in {r[0] for r in self.conn.execute(sql)}:
            self.db.table("meta").create({"key": str, "value": str}, pk="key")
            self._set_meta("created_at", str(time.time()))
        row = self._meta("schema_version")
        try:
            version = int(row) if row else 0
        except ValueError:  # only this tool writes it: the file is not what it wrote
            raise sqlite3.DatabaseError(f"meta.schema_version is {row!r}, not a number") from None
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state database has schema {version}, newer than this reconcile "
                f"({SCHEMA_VERSION}); upgrade reconcile"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():  # a migration lands whole or not at all
                MIGRATIONS[v](self.db)
                self._set_meta("schema_version", str(v))
        with self.transaction():
            install_triggers(self.conn)

    def changes(self) -> int:
        """How many rows were ever written to the census's tables (CENSUS_TABLES)."""
        return int(self.conn.execute("select n from change_counter").fetchone()[0])

    def world_count(self) -> int:
        """How many rows were ever written to the tables a plan reads
        (``schema.NOT_WORLD`` are not): the same count, the same state."""
        sql = "select (select n from world_counter) + (select n from change_counter)"
        return int(self.conn.execute(sql).fetchone()[0])

    def _meta(self, key: str) -> str | None:
        rows = list(self.query("select value from meta where key = ?", [key]))
        return str(rows[0]["value"]) if rows else None

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows as dicts, as sqlite-utils' ``Database.query`` gives them."""
        cursor = self.conn.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))

    def _set_meta(self, key: str, value: str) -> None:
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """One commit for many writes. The connection is in autocommit mode,
        so without this every row would be a transaction of its own."""
        if self.conn.in_transaction:  # nested: the outer one commits
            if immediate:
                raise RuntimeError("an immediate transaction cannot be nested")
            yield
            return
        # immediate: the write lock from the start, so what is read in it
        # stays true until it commits
        self.conn.execute("begin immediate" if immediate else "begin")
        try:
            yield
        except BaseException:
            self.conn.execute("rollback")
            raise
        self.conn.execute("commit")

    def _put(self, table: str, row: dict[str, Any]) -> None:
        """Insert or replace one whole row. Plain SQL: the applier writes a few
        rows per action, and sqlite-utils' insert re-reads the schema each time."""
        cols = ", ".join(row)
        marks = ", ".join("?" * len(row))
        self.conn.execute(
            f"insert or replace into {table} ({cols}) values ({marks})", list(row.values())
        )

    def counted(self, write: Callable[[], object]) -> int:
        """Run ``write`` in a transaction of its own, holding the write lock
        from the start; return how far it moved ``changes()`` (no other
        writer could meanwhile). Inside a transaction of the caller's it
        just writes, and says 0: no listing is kept there anyway, and a
        count too low can only keep a listing from being kept."""
        if self.conn.in_transaction:
            write()
            return 0
        with self.transaction(immediate=True):
            before = self.changes()
            write()
            return self.changes() - before

    def size_bytes(self) -> int:
        """The database's size (pages in use and free), read from its header:
        how large a library it records, known without counting any table."""
        (pages,) = self.conn.execute("pragma page_count").fetchone()
        (size,) = self.conn.execute("pragma page_size").fetchone()
        return int(pages) * int(size)
