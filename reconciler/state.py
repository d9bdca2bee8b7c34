"""The state database: SQLite in WAL mode, through sqlite-utils where it helps.

It remembers what is expensive to learn again (file hashes, which download
gave which SHA-256, which library file came from which original, which
deliveries the phone confirmed) and what must never be forgotten while it
exists (the journal, tombstones of what the tool removed from a source).
Everything here can be re-derived by observing again: deleting the database
loses time, not data.

Only the main thread touches the connection; workers hand results back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler import tree_listing
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


_CHUNK = 900  # below SQLite's default limit of host parameters


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ListingRow(NamedTuple):
    """One asset of a remembered iCloud listing; ``item`` is the encoded
    SourceItem (None: an asset listed but skipped, e.g. without an original)."""

    asset_id: str
    master_id: str
    zone: str
    pos: int
    item: str | None


class Cursor(NamedTuple):
    """Where an iCloud source's remembered listing stands: per zone, the sync
    token read before it; the Apple ID it is of; its last full listing."""

    account: str
    tokens: dict[str, str]
    full_at: datetime


class CachedHash(NamedTuple):
    """A hash cache row (a NamedTuple: a no-op run reads one per file)."""

    size: int
    mtime_ns: int
    inode: int
    sha256: str
    #: True once the capture date was looked for (captured_at may still be None).
    dated: bool
    captured_at: float | None
    #: When the bytes were last read (epoch seconds): old entries are re-read.
    hashed_at: float
    #: The file's ctime when it was read (None: a row from before it was
    #: kept); another ctime since means the file was rewritten, even with
    #: its size, mtime and inode kept, and it is read again.
    ctime_ns: int | None = None


#: A raw hash cache row: (path, size, mtime_ns, inode, sha256, dated,
#: captured_at, hashed_at, ctime_ns), the columns of CachedHash after the path.
HashRow = tuple[str, int, int, int, str, int, float | None, float, int | None]
#: CachedHash's columns of the hash cache, in its order.
_HASH_COLUMNS = "size, mtime_ns, inode, sha256, dated, captured_at, hashed_at, ctime_ns"


class DownloadedFile(NamedTuple):
    """A remote source's file as it was when downloaded and verified."""

    sha256: str
    size: int | None
    #: The source's checksum of it then; "" in rows older than the column.
    fingerprint: str

    def still(self, size: int, fingerprint: str) -> bool:
        """Is a file listed now with ``size`` and ``fingerprint`` still the
        one downloaded? An asset edited again keeps its refs (``edited``,
        ``sidecar``) for new bytes, so a ref alone proves nothing. Rows
        without a fingerprint compare by size alone."""
        return self.size == size and (not self.fingerprint or self.fingerprint == fingerprint)


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
    a held run lock), a read-only file or folder is fixed where it is.
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
    return StateError(damaged(path, e))


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


def _clamped(value: int) -> int:
    """``value`` in SQLite's range, for a row that must be written anyway
    (a library file's lineage); what it is compared with then differs, so
    whatever it keys is worked out again rather than trusted."""
    return max(-_INT64 - 1, min(_INT64, value))


class StateDB:
    """The tool's memory, one file under the state directory."""

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
        except sqlite3.DatabaseError as e:
            raise unusable(path, e) from e
        except OSError as e:
            raise StateError(f"state database {path}: {e.strerror}") from e
        self.path = path

    @property
    def db(self) -> sqlite_utils.Database:
        """The connection through sqlite-utils (loaded on first use)."""
        if self._db is None:
            self._db = _sqlite_utils().Database(self.conn)
        return self._db

    @classmethod
    def in_dir(cls, state_dir: Path) -> StateDB:
        return cls(state_dir / "state.db")

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

    # ------------------------------------------------------------ hash cache

    def cached_hashes(self, paths: Sequence[str]) -> dict[str, CachedHash]:
        # The hot path of a no-op run: plain sqlite3 rows, no dict per row.
        out: dict[str, CachedHash] = {}
        conn = self.conn
        if len(paths) > _CHUNK:
            # A whole tree: one scan of the primary key's range, kept where
            # wanted, is far cheaper than binding every path in IN chunks.
            wanted = frozenset(paths)
            sql = f"select path, {_HASH_COLUMNS} from hash_cache where path between ? and ?"
            for row in conn.execute(sql, (min(paths), max(paths))):
                if row[0] in wanted:
                    out[row[0]] = CachedHash._make(row[1:])
            return out
        for chunk in _chunks(paths):
            marks = ",".join("?" * len(chunk))
            sql = f"select path, {_HASH_COLUMNS} from hash_cache where path in ({marks})"
            for row in conn.execute(sql, chunk):
                out[row[0]] = CachedHash._make(row[1:])
        return out

    def hash_rows(self, first: str, last: str, *, last_included: bool = True) -> Iterator[HashRow]:
        """The cache rows from path ``first`` to ``last``, in path order: one
        range read of the (path-ordered) table, streamed. Rows are the plain
        tuples SQLite returns, (path, *CachedHash): a no-op run of a large
        library reads one per file, and a NamedTuple each costs more than
        the comparison it serves."""
        sql = (
            f"select path, {_HASH_COLUMNS} from hash_cache "
            f"where path >= ? and path {'<=' if last_included else '<'} ? "
            "order by path"
        )
        return iter(self.conn.execute(sql, (first, last)))

    def tree_listing(self, tree: str) -> tree_listing.TreeListing | None:
        """``tree``'s last listing, if it is still exact (``tree_listing``)."""
        return tree_listing.read(self.conn, tree)

    def forget_other_tree_listings(self, trees: Sequence[str]) -> int:
        """Drop the listings of trees not in ``trees`` (``tree_listing``)."""
        return tree_listing.forget_others(self.conn, trees)

    def keep_tree_listing(
        self,
        tree: str,
        walk: bytes,
        results: Sequence[tuple[str | None, float | None, Any]],
        stamps: Sequence[float],
        *,
        dated: bool,
        changes: int,
    ) -> bool:
        """Keep ``tree``'s listing, made from what this connection read and
        wrote, if ``changes()`` is still ``changes``: no other writer (an
        apply beside this plan) changed a row in the meantime. Inside a
        transaction of the caller's, nothing is kept (its writes are not
        settled yet)."""
        if self.conn.in_transaction:
            return False
        with self.transaction(immediate=True):  # the count read and the write, one
            same = self.changes() == changes
            if same:
                tree_listing.keep(self.conn, tree, walk, results, stamps, dated=dated)
        return same

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

    def store_hashes(self, rows: Iterable[tuple[str, CachedHash]]) -> None:
        """Write cache rows; a file whose size, mtime or inode no 64-bit
        integer holds (an mtime past 2262) gets none: it is read every run."""
        records = [(p, *h) for p, h in rows if storable(h.size, h.mtime_ns, h.inode)]
        if records:
            with self.transaction():
                self.conn.executemany(
                    "insert or replace into hash_cache (path, size, mtime_ns, inode, sha256, "
                    "dated, captured_at, hashed_at, ctime_ns) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    records,
                )

    def set_ctimes(self, rows: Sequence[tuple[int, str]]) -> None:
        """Give cache rows kept by an older version, without a ctime, the
        ctime their file has now ((ctime_ns, path) each): trusted as they
        were, from now on a rewrite in place is seen."""
        if rows:
            with self.transaction():
                self.conn.executemany(
                    "update hash_cache set ctime_ns = ? where path = ? and ctime_ns is null", rows
                )

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

    # -------------------------------------------------------- source files

    def known_sha256(self) -> dict[tuple[str, str, str], str]:
        """Every row's SHA-256, whatever the file is now (``source_files``
        says whether it still counts)."""
        rows = self.query("select source_id, item_key, ref, sha256 from source_files")
        return {(r["source_id"], r["item_key"], r["ref"]): r["sha256"] for r in rows}

    def source_files(self) -> dict[tuple[str, str, str], DownloadedFile]:
        """(source, item key, ref) -> what was downloaded there: one read of
        the table, plain rows (a no-op run reads one per remote file)."""
        sql = "select source_id, item_key, ref, sha256, size, fingerprint from source_files"
        return {
            (r[0], r[1], r[2]): DownloadedFile(r[3], r[4], r[5] or "")
            for r in self.conn.execute(sql)
        }

    def record_source_file(
        self, source_id: str, item_key: str, ref: str, sha256: str, size: int, fingerprint: str
    ) -> None:
        """``fingerprint``: the source's own checksum of the file downloaded
        ("" where the source gives none)."""
        self._put(
            "source_files",
            {
                "source_id": source_id,
                "item_key": item_key,
                "ref": ref,
                "sha256": sha256,
                "size": size,
                "fingerprint": fingerprint,
            },
        )

    # ------------------------------------------------------------- library

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
            row.path: row._replace(size=_clamped(row.size), mtime_ns=_clamped(row.mtime_ns))
            for row in rows
        }
        if latest:
            roles = self.roles_of({row.original_sha256 for row in latest.values() if not row.role})
            if roles:
                latest = {
                    path: row if row.role else row._replace(role=roles.get(row.original_sha256, ""))
                    for path, row in latest.items()
                }
            now = _now()
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

    def roles_of(self, shas: set[str]) -> dict[str, str]:
        """The role recorded for each of these originals' library files
        (those with one)."""
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(shas), _CHUNK // 2):  # each bound twice
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
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            try:
                conn.execute(
                    "insert or ignore into renditions (sha256, original_sha256, tier, made_at) "
                    "values (?, ?, ?, ?)",
                    (sha256, original_sha256, tier, _now()),
                )
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
        for chunk in _chunks(sorted(set(shas))):
            marks = ", ".join("?" * len(chunk))
            found.update(self.conn.execute(f"{sql} where sha256 in ({marks})", chunk))
        return found

    def settled(self) -> dict[tuple[str, str], str]:
        rows = self.query("select original_sha256, tier, reason from settled")
        return {(r["original_sha256"], r["tier"]): r["reason"] for r in rows}

    def record_settled(self, original_sha256: str, tier: str, reason: str) -> None:
        self._put("settled", {"original_sha256": original_sha256, "tier": tier, "reason": reason})

    # ---------------------------------------------------------- deliveries

    def deliveries(self, store_id: str) -> dict[str, dict[str, Any]]:
        rows = self.query("select * from deliveries where store_id = ?", [store_id])
        return {r["path"]: dict(r) for r in rows}

    def record_delivery(self, store_id: str, path: str, sha256: str, size: int) -> None:
        existing = self.deliveries_for(store_id, path)
        if existing and existing["sha256"] == sha256:
            return
        self._put(
            "deliveries",
            {
                "store_id": store_id,
                "path": path,
                "sha256": sha256,
                "size": size,
                "delivered_at": _now(),
                "confirmed_at": None,
                "freed_at": None,
            },
        )

    def record_freed(self, store_id: str, path: str, evidence: str = "") -> None:
        """The local staging copy is gone; the phone's copy counts while the
        phone still announces the version recorded here (``evidence``)."""
        self.conn.execute(
            "update deliveries set freed_at = ?, evidence = coalesce(nullif(?, ''), evidence) "
            "where store_id = ? and path = ?",
            (_now(), evidence, store_id, path),
        )

    def deliveries_for(self, store_id: str, path: str) -> dict[str, Any] | None:
        rows = list(
            self.query("select * from deliveries where store_id = ? and path = ?", [store_id, path])
        )
        return dict(rows[0]) if rows else None

    def record_confirmation(
        self,
        store_id: str,
        path: str,
        sha256: str,
        size: int,
        *,
        identity: str = "",
        evidence: str = "",
        at: datetime | None = None,
    ) -> None:
        # Keeps delivered_at when the row exists (a delivery this tool made).
        when = at.isoformat() if at is not None else _now()
        self.conn.execute(
            "insert into deliveries (store_id, path, sha256, size, confirmed_at, identity, "
            "evidence) values (?, ?, ?, ?, ?, ?, ?) on conflict (store_id, path) do update set "
            "sha256 = excluded.sha256, size = excluded.size, confirmed_at = "
            "excluded.confirmed_at, identity = excluded.identity, evidence = excluded.evidence",
            (store_id, path, sha256, size, when, identity, evidence),
        )

    def restart_settling(self, store_id: str, path: str, at: datetime) -> None:
        """The confirmation of a delivery counts from ``at``: its recorded
        time is later than now (a clock that ran ahead), so the settle
        period starts again rather than lasting until that time comes."""
        self.conn.execute(
            "update deliveries set confirmed_at = ? "
            "where store_id = ? and path = ? and confirmed_at is not null",
            (at.isoformat(), store_id, path),
        )

    def unconfirm_delivery(self, store_id: str, path: str) -> None:
        """The device was asked and no longer holds this copy (changed or
        lost there, or confirmed by another phone or folder): it is a
        delivery again, waiting, and no census counts it as a copy."""
        self.conn.execute(
            "update deliveries set confirmed_at = null, evidence = null "
            "where store_id = ? and path = ? and confirmed_at is not null",
            (store_id, path),
        )

    def forget_delivery(self, store_id: str, path: str) -> None:
        """A freed copy the phone no longer holds, or a staging copy gone from
        here without being freed: nothing of it is left to count."""
        self.conn.execute(
            "delete from deliveries where store_id = ? and path = ?", (store_id, path)
        )

    def record_liveness(
        self, store_id: str, alive: bool, reason: str, round_trip_s: float | None
    ) -> None:
        self._put(
            "liveness",
            {
                "store_id": store_id,
                "at": _now(),
                "alive": int(alive),
                "reason": reason,
                "round_trip_s": round_trip_s,
            },
        )

    def liveness(self, store_id: str) -> dict[str, Any] | None:
        rows = list(self.query("select * from liveness where store_id = ?", [store_id]))
        return dict(rows[0]) if rows else None

    def size_bytes(self) -> int:
        """The database's size (pages in use and free), read from its header:
        how large a library it records, known without counting any table."""
        (pages,) = self.conn.execute("pragma page_count").fetchone()
        (size,) = self.conn.execute("pragma page_size").fetchone()
        return int(pages) * int(size)

    # --------------------------------------------------------- listing guard

    def listing_count(self, store_id: str) -> int | None:
        rows = list(self.query("select count from listing_counts where store_id = ?", [store_id]))
        return int(rows[0]["count"]) if rows else None

    def record_listing_count(self, store_id: str, count: int) -> None:
        # Rewritten only when it moved: an unchanged world leaves the state
        # database unchanged (a converged plan is kept only then).
        self.conn.execute(
            "insert into listing_counts (store_id, count, observed_at) values (?, ?, ?) "
            "on conflict (store_id) do update set count = excluded.count, "
            "observed_at = excluded.observed_at where count != excluded.count",
            (store_id, count, _now()),
        )

    # --------------------------------------------------------- runs, journal

    def start_run(self, command: str) -> int:
        table = self.db.table("runs")
        table.insert({"command": command, "started_at": _now(), "status": "running"})
        assert table.last_pk is not None
        return int(table.last_pk)

    def finish_run(self, run_id: int, status: str, summary: dict[str, int]) -> None:
        self.db.table("runs").update(
            run_id, {"finished_at": _now(), "status": status, "summary": json.dumps(summary)}
        )

    def unfinished_runs(self) -> list[int]:
        """Runs still ``running``: under the run lock, killed ones."""
        rows = self.conn.execute("select id from runs where status = ?", ["running"])
        return [int(r[0]) for r in rows]

    def mark_crashed(self) -> list[int]:
        """Call under the run lock: a run still ``running`` then is not alive
        (it would hold the lock), so it was killed; say so, once."""
        ids = self.unfinished_runs()
        if ids:
            self.conn.execute(
                "update runs set status = 'crashed', finished_at = ? where status = 'running'",
                [_now()],
            )
        return ids

    def last_run_status(self) -> str | None:
        rows = list(self.conn.execute("select status from runs order by id desc limit 1"))
        return str(rows[0][0]) if rows else None

    def journal(
        self,
        run_id: int,
        action_id: str,
        kind: str,
        status: str,
        detail: str = "",
        *,
        subject: str = "",
    ) -> None:
        self.conn.execute(
            "insert into journal (run_id, action_id, kind, status, detail, at, subject) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            (run_id, action_id, kind, status, detail, _now(), subject or None),
        )

    def journal_rows(self, run_id: int | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            return [dict(r) for r in self.query("select * from journal order by id")]
        sql = "select * from journal where run_id = ? order by id"
        return [dict(r) for r in self.query(sql, [run_id])]

    def record_exit(
        self,
        run_id: int | None,
        *,
        command: str,
        started_at: str,
        status: str,
        exit_code: int,
        reason: str,
        summary: dict[str, int] | None = None,
    ) -> int:
        """Give run ``run_id`` (the apply's own row) its exit code and reason,
        or record a run that made no row of its own (a plan, an apply that
        stopped before acting): every run is in the history."""
        if run_id is not None:
            row = self.db.table("runs").get(run_id)
            merged = json.loads(row["summary"] or "{}") | (summary or {})
            self.db.table("runs").update(
                run_id, {"exit_code": exit_code, "reason": reason, "summary": json.dumps(merged)}
            )
            return run_id
        # Plain SQL: every plan ends here, and sqlite-utils is not loaded for it.
        cur = self.conn.execute(
            "insert into runs (command, started_at, finished_at, status, summary, exit_code, "
            "reason) values (?, ?, ?, ?, ?, ?, ?)",
            (command, started_at, _now(), status, json.dumps(summary or {}), exit_code, reason),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def figures(self, *, compression: bool = True) -> dict[str, Any]:
        """What ``status`` and the metrics tell beyond the runs, from this
        database alone (no provider is asked): the library by tier, bytes
        compression saved (each encoded file against its original's size;
        with ``compression=False`` left out, as 0: it groups the whole hash
        cache, and the census has it cheaper), and what the tool off-loaded,
        per source."""
        tiers = {
            str(r["tier"]): int(r["n"])
            for r in self.query("select tier, count(*) as n from library group by tier")
        }
        saved_sql = (
            "select coalesce(sum(o.size - l.size), 0) from library l join "
            # Only the originals of encoded files: grouping the whole hash
            # cache (every file of every store) cost a no-op plan 8%.
            "(select sha256, max(size) as size from hash_cache where sha256 in "
            "(select original_sha256 from library where sha256 != original_sha256) "
            "group by sha256) o "
            "on o.sha256 = l.original_sha256 "
            "where l.sha256 != l.original_sha256 and o.size > l.size"
        )
        saved = int(self.conn.execute(saved_sql).fetchone()[0]) if compression else 0
        removed = {
            str(r["source_id"]): {"items": int(r["n"]), "bytes": int(r["b"] or 0)}
            for r in self.query(
                "select source_id, count(*) as n, sum(size) as b from tombstones "
                "group by source_id order by source_id"
            )
        }
        good = list(
            self.query(
                "select finished_at from runs where command = 'apply' and exit_code = 0 "
                "order by id desc limit 1"
            )
        )
        return {
            "library_tiers": dict(sorted(tiers.items())),
            "bytes_saved_by_compression": saved,
            "removed": removed,
            "last_good_apply": good[0]["finished_at"] if good else None,
        }

    def last_run_of(self, command: str) -> dict[str, Any] | None:
        sql = "select * from runs where command = ? order by id desc limit 1"
        rows = [dict(r) for r in self.query(sql, [command])]
        return rows[0] if rows else None

    def unconfirmed_counts(self) -> dict[str, int]:
        """Per store, deliveries the device has not confirmed yet."""
        sql = (
            "select store_id, count(*) as n from deliveries "
            "where confirmed_at is null group by store_id"
        )
        return {r["store_id"]: int(r["n"]) for r in self.query(sql)}

    def record_census(self, run_id: int, census: dict[str, Any], key: str | None = None) -> None:
        """Keep the census taken at the end of run ``run_id`` (runs.census),
        with what it was taken at (``key``: see ``census_at``)."""
        self.conn.execute(
            "update runs set census = ?, census_key = ? where id = ?",
            (json.dumps(census), key, run_id),
        )

    def census_at(self, key: str) -> dict[str, Any] | None:
        """The newest stored census taken at ``key``, if any."""
        sql = "select census from runs where census_key = ? and census is not null "
        row = self.conn.execute(sql + "order by id desc limit 1", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def census_history(self, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """(finished_at, census) of the last ``limit`` runs that have one, oldest first."""
        sql = (
            "select finished_at, census from runs where census is not null order by id desc limit ?"
        )
        rows = self.conn.execute(sql, (limit,)).fetchall()
        return [(str(at), json.loads(text)) for at, text in reversed(rows)]

    def last_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        sql = "select * from runs order by id desc limit ?"
        return [dict(r) for r in self.query(sql, [limit])]

    # ----------------------------------------------------------- tombstones

    def record_tombstone(
        self, source_id: str, item_key: str, sha256s: Sequence[str], size: int, run_id: int
    ) -> None:
        self._put(
            "tombstones",
            {
                "source_id": source_id,
                "item_key": item_key,
                "sha256s": json.dumps(list(sha256s)),
                "size": size,
                "removed_at": _now(),
                "run_id": run_id,
            },
        )

    def tombstones(self) -> dict[tuple[str, str], frozenset[str]]:
        """(source, item key) -> the SHA-256s of the content removed there.
        A key alone never says an item is done: a folder path the tool emptied
        may hold a new photo tomorrow (a camera counter reset)."""
        rows = self.query("select source_id, item_key, sha256s from tombstones")
        return {(r["source_id"], r["item_key"]): frozenset(json.loads(r["sha256s"])) for r in rows}

    def tombstoned_sha256(self) -> frozenset[str]:
        """Every original whose item this tool removed from a source."""
        out: set[str] = set()
        for r in self.query("select sha256s from tombstones"):
            out.update(json.loads(r["sha256s"]))
        return frozenset(out)

    def forget_hashes(self, paths: Iterable[str]) -> None:
        """Drop cache rows whose file is gone or proved wrong: the next
        observation reads those paths again instead of trusting the cache."""
        rows = [(p,) for p in paths]
        if rows:
            with self.transaction():
                self.conn.executemany("delete from hash_cache where path = ?", rows)

    # -------------------------------------------------- seed pipeline import

    def record_legacy(self, rows: Iterable[dict[str, Any]]) -> None:
        """Store imported seed rows: a re-import replaces them whole (rows
        the new media.db lacks are gone too)."""
        with self.transaction():
            self.conn.execute("delete from legacy_media")
            for row in rows:
                self._put("legacy_media", row | {"imported_at": _now()})

    def legacy_counts(self) -> dict[str, int]:
        """How many seed rows were imported, adopted, and deleted from iCloud by it."""
        sql = (
            "select count(*), count(sha256), coalesce(sum(deleted_icloud = 1), 0) from legacy_media"
        )
        rows, adopted, deleted = self.conn.execute(sql).fetchone()
        return {"rows": int(rows), "adopted": int(adopted), "deleted_from_icloud": int(deleted)}

    def tombstone_count(self) -> int:
        return int(self.conn.execute("select count(*) from tombstones").fetchone()[0])

    # ------------------------------------------- remembered iCloud listing

    def icloud_cursor(self, source_id: str) -> Cursor | None:
        rows = list(
            self.conn.execute(
                "select zone, account, token, full_at from icloud_cursor where source_id = ?",
                [source_id],
            )
        )
        if not rows:
            return None
        return Cursor(
            account=rows[0][1],
            tokens={r[0]: r[2] for r in rows},
            full_at=min(datetime.fromisoformat(r[3]) for r in rows),
        )

    def icloud_listing(self, source_id: str) -> list[ListingRow]:
        sql = (
            "select asset_id, master_id, zone, pos, item from icloud_listing "
            "where source_id = ? order by pos"
        )
        return [ListingRow._make(r) for r in self.conn.execute(sql, [source_id])]

    def save_icloud_listing(
        self,
        source_id: str,
        *,
        account: str,
        tokens: dict[str, str],
        full_at: datetime,
        rows: Iterable[ListingRow],
        gone: Iterable[str] = (),
        replace: bool,
    ) -> None:
        """Record a listing (``replace``: a whole one) or the rows a run of
        changes touched, with the tokens to read changes from next time."""
        with self.transaction():
            conn = self.conn
            if replace:
                conn.execute("delete from icloud_listing where source_id = ?", [source_id])
            conn.execute("delete from icloud_cursor where source_id = ?", [source_id])
            conn.executemany(
                "delete from icloud_listing where source_id = ? and asset_id = ?",
                [(source_id, a) for a in gone],
            )
            conn.executemany(
                "insert or replace into icloud_listing (source_id, asset_id, master_id, zone, "
                "pos, item) values (?, ?, ?, ?, ?, ?)",
                [(source_id, *r) for r in rows],
            )
            conn.executemany(
                "insert into icloud_cursor (source_id, zone, account, token, full_at) "
                "values (?, ?, ?, ?, ?)",
                [(source_id, z, account, t, full_at.isoformat()) for z, t in tokens.items()],
            )


def _chunks(seq: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
