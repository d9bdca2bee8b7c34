"""The hash cache: each file's SHA-256 (and capture date) by its path, size,
mtime and ctime, so an unchanged file is not read again; and the trees'
last listings (``tree_listing``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from reconciler import tree_listing
from reconciler.state.connection import (
    CHUNK,
    Connection,
    chunks,
    storable,
)

#: The ``hashed_at`` of a row a reader found wrong (``suspect_hashes``): its
#: file is read on the next walk whatever ``reverify_after_days`` says, and
#: compared as any file due to be verified is.
SUSPECT = -1.0


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


class HashCache(Connection):
    """The hash cache's rows and the trees' listings."""

    def cached_hashes(self, paths: Sequence[str]) -> dict[str, CachedHash]:
        # The hot path of a no-op run: plain sqlite3 rows, no dict per row.
        out: dict[str, CachedHash] = {}
        conn = self.conn
        if len(paths) > CHUNK:
            # A whole tree: one scan of the primary key's range, kept where
            # wanted, is far cheaper than binding every path in IN chunks.
            wanted = frozenset(paths)
            sql = f"select path, {_HASH_COLUMNS} from hash_cache where path between ? and ?"
            for row in conn.execute(sql, (min(paths), max(paths))):
                if row[0] in wanted:
                    out[row[0]] = CachedHash._make(row[1:])
            return out
        for chunk in chunks(paths):
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

    def inodes_under(self, folder: str) -> Iterator[tuple[str, str, int]]:
        """(path, sha256, inode) of each file hashed under ``folder`` (ending
        in "/"), as the last walk of it found it: a range of the primary key
        ("0" is the character after "/")."""
        sql = (
            "select path, sha256, inode from hash_cache "
            "where path >= ? and path < ? and sha256 is not null"
        )
        return iter(self.conn.execute(sql, (folder, folder[:-1] + "0")))

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

    def set_inodes(self, rows: Sequence[tuple[int, str]]) -> None:
        """Give cache rows trusted by this walk the inode their file has now
        ((inode, path) each): a row says what the last walk saw of its
        file, as a reader of its inode (``reconciler.links``) takes it. A
        file whose inode no 64-bit integer holds loses its row, as
        ``store_hashes`` gives it none."""
        kept = [r for r in rows if storable(r[0])]
        lost = [(p,) for i, p in rows if not storable(i)]
        if rows:
            with self.transaction():
                self.conn.executemany("update hash_cache set inode = ? where path = ?", kept)
                self.conn.executemany("delete from hash_cache where path = ?", lost)

    def suspect_hashes(self, paths: Iterable[str]) -> None:
        """Files a reader found not to hold the bytes their rows name (a copy
        or an encode reading an original): kept, with their stat, but read
        on the next walk (``SUSPECT``), which tells a file rewritten from
        one damaged in place; forgotten, rot would read as a new file."""
        rows = [(SUSPECT, p) for p in paths]
        if rows:
            with self.transaction():
                self.conn.executemany("update hash_cache set hashed_at = ? where path = ?", rows)

    def forget_hashes(self, paths: Iterable[str]) -> None:
        """Drop cache rows whose file is gone or proved wrong: the next
        observation reads those paths again instead of trusting the cache."""
        rows = [(p,) for p in paths]
        if rows:
            with self.transaction():
                self.conn.executemany("delete from hash_cache where path = ?", rows)
