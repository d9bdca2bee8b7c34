"""Each walked tree's last listing, kept beside the hash cache: a walk that
finds the tree exactly as it was takes every file's SHA-256 in one read.

A no-op run matches every file of every store against the hash cache, row
by row: at 100k items that is 400k rows read out of SQLite, most of a no-op
plan's time once the walks run ahead. A tree's listing is the same rows
held as columns (the SHA-256s, capture times and hash times, in walk
order), keyed by a digest of the walk they were matched against (every
path, size, mtime and inode, in order). When today's walk has that digest,
each file's row is known to be the listing's, with no row read.

It is exact, never a guess:
- it is written only where the hash cache's rows under the tree are
  exactly the walk's files (after the walk was matched, the gone files
  forgotten and the new ones hashed, with no file unreadable);
- triggers on ``hash_cache`` (``schema.install_triggers``) mark it stale
  on any row written or deleted under its tree, by any code (the
  applier's copies and removals, a tree nested in it, a rehash), and a
  stale listing is never read;
- a file due to be read again (``guards.reverify_after_days``) is still
  read again: the listing keeps each file's hash time.
So what a listing gives is what matching row by row would have given.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from array import array
from collections.abc import Sequence
from typing import Any, NamedTuple


class TreeListing(NamedTuple):
    """One tree's listing: ``shas`` 32 bytes per file; ``captured`` and
    ``hashed_at`` arrays of doubles (NaN: no capture time), in walk order."""

    walk: bytes
    shas: bytes
    captured: array[float]
    hashed_at: array[float]
    #: every file's capture time was looked for
    dated: bool


def walk_digest(entries: Sequence[tuple[str, str, int, int, int, int]]) -> bytes | None:
    """The digest of a walk: its files' paths, sizes, mtimes, inodes and
    ctimes, in order (None: a value no column can hold, so no listing is
    kept). A ctime changed makes another walk: its files are matched row by
    row, where a row whose file changed since it was hashed is read again."""
    try:
        columns = (
            array("q", [e[2] for e in entries]),
            array("q", [e[3] for e in entries]),
            array("Q", [e[4] for e in entries]),
            array("q", [e[5] for e in entries]),
        )
    except OverflowError:  # an mtime past 2262, say
        return None
    return _digest(len(entries), "\0".join([e[0] for e in entries]), *columns)


def columns_digest(
    top: str,
    rels: Sequence[str],
    sizes: array[int],
    mtimes: array[int],
    inodes: array[int],
    ctimes: array[int],
) -> bytes:
    """``walk_digest`` of a walk held in columns (the walk ahead's): the
    files ``top + rel``, sizes, mtimes and ctimes as arrays of "q", inodes
    of "Q"."""
    paths = top + ("\0" + top).join(rels) if rels else ""
    return _digest(len(rels), paths, sizes, mtimes, inodes, ctimes)


def _digest(n: int, paths: str, *columns: array[int]) -> bytes:
    h = hashlib.sha256(n.to_bytes(8, "little"))
    h.update(paths.encode("utf-8", "surrogateescape"))
    for column in columns:
        h.update(column)
    return h.digest()


def tree_end(tree: str) -> str:
    """The first path past every path under ``tree`` (which ends in "/")."""
    return tree[:-1] + "0"


def read(conn: sqlite3.Connection, tree: str) -> TreeListing | None:
    """``tree``'s listing, unless there is none or it went stale."""
    row = conn.execute(
        "select walk, shas, captured, hashed_at, dated from tree_listings "
        "where tree = ? and stale = 0",
        (tree,),
    ).fetchone()
    if row is None:
        return None
    walk, shas, captured_b, hashed_b, dated = row
    captured, hashed_at = array("d"), array("d")
    try:
        captured.frombytes(captured_b)
        hashed_at.frombytes(hashed_b)
    except (TypeError, ValueError):
        return None
    if not (len(shas) == 32 * len(captured) and len(captured) == len(hashed_at)):
        return None  # not one we wrote: the rows are read instead
    return TreeListing(bytes(walk), bytes(shas), captured, hashed_at, bool(dated))


def keep(
    conn: sqlite3.Connection,
    tree: str,
    walk: bytes,
    results: Sequence[tuple[str | None, float | None, Any]],
    stamps: Sequence[float],
    *,
    dated: bool,
) -> None:
    """Keep ``tree``'s listing: ``results`` and ``stamps`` (hash times), one
    per file of the walk ``walk`` digests, exactly as the cache now holds
    them. Call only once every write of the match is done."""
    try:
        shas = bytes.fromhex("".join([r[0] for r in results]))  # type: ignore[misc]
    except (TypeError, ValueError):  # an unreadable file (no SHA-256): no listing
        shas = b""
    if len(shas) != 32 * len(results):
        conn.execute("delete from tree_listings where tree = ?", (tree,))
        return
    captured = array("d", [math.nan if r[1] is None else r[1] for r in results])
    conn.execute(
        "insert or replace into tree_listings "
        "(tree, tree_end, stale, walk, shas, captured, hashed_at, dated) "
        "values (?, ?, 0, ?, ?, ?, ?, ?)",
        (tree, tree_end(tree), walk, shas, captured.tobytes(), array("d", stamps).tobytes(), dated),
    )


def forget_others(conn: sqlite3.Connection, trees: Sequence[str]) -> int:
    """Drop the listing of every tree but ``trees`` (the configured ones): a
    target removed from the configuration, or a store moved, would keep its
    listing (5 MB per 100k files) for ever. Returns how many were dropped.
    Only a cache is lost: a tree configured again is matched row by row once.
    Looked for first, so a run with nothing to drop writes nothing (a plan
    beside an apply does not wait on its write lock)."""
    configured = set(trees)
    listed = conn.execute("select tree from tree_listings")
    others = [(t,) for (t,) in listed if t not in configured]
    if others:
        conn.executemany("delete from tree_listings where tree = ?", others)
    return len(others)
