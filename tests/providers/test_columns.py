"""Values held in columns must read as the values themselves.

- A walk handed over in columns (``ColumnWalk``, the walk-ahead helper's
  form) reads as the very walk made here, and a store listed from it holds
  the same copies as one listed from the walk's entries: on a first plan,
  from a tree's listing, and when a file changed and cannot be read.
- A tree's hashes taken from its listing (``HashedColumns``) read as the
  ``Hashed`` of each file, and a file read again in place (due to be
  verified, or now unreadable) changes that file's result only.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.base import ColumnWalk, Hashed, HashedColumns, LocalTree, ScanEntry
from providers.filesystem import hashed_tree, scan_tree
from reconciler.hashing import sha256_file
from reconciler.model import FileCopy
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB
from reconciler.walk_ahead import WalkAhead


def _tree(root: Path) -> None:
    for rel, data in (
        ("2020/01/IMG_1.JPG", b"one"),
        ("2020/01/IMG_1.MOV", b"its live video"),
        ("2021/b/IMG_2.JPG", b"two"),
        ("top level.png", b"three"),
        ("Thumbs.db", b"not media, still a file"),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _columns(root: Path, entries: list[ScanEntry]) -> ColumnWalk:
    return ColumnWalk(
        str(root),  # no trailing slash: the walk's paths still join with one
        [e.rel for e in entries],
        array("q", [e.size for e in entries]),
        array("q", [e.mtime_ns for e in entries]),
        array("Q", [e.inode for e in entries]),
        array("q", [e.ctime_ns for e in entries]),
    )


def test_a_walk_in_columns_reads_as_the_walk_itself(tmp_path: Path) -> None:
    _tree(tmp_path)
    entries = list(scan_tree(tmp_path))
    walk = _columns(tmp_path, entries)
    assert len(walk) == len(entries) == 5
    assert list(walk) == entries
    assert [walk[i] for i in range(-5, 5)] == entries + entries
    assert walk[1:4] == entries[1:4] and walk[::-2] == entries[::-2]
    assert all(type(e) is ScanEntry for e in (*walk, walk[0], *walk[:2]))
    with pytest.raises(IndexError):
        walk[5]
    bad = array("q", [e.size for e in entries[:-1]])  # one size short
    with pytest.raises(ValueError):
        ColumnWalk(str(tmp_path), walk.rels, bad, walk.mtimes, walk.inodes, walk.ctimes)


def _listed(root: Path, db: StateDB, *, ahead: bool) -> tuple[list[FileCopy], type, int]:
    """The store's copies through the observer's hasher, its walk from the
    helper (in columns) or made here (entries)."""
    hasher = CachedHasher(db, now=2_000_000_000.0)
    walked: list[type] = []
    if ahead:
        hasher.ahead = WalkAhead([LocalTree(root)])
        hasher.ahead._hear(until=0)  # walked there (one not begun yet is walked here)
    walk = hasher.walk

    def spy(root: Path, **kw: Callable[[str], bool] | None) -> object:
        got = walk(root, **kw)  # type: ignore[arg-type]
        walked.append(type(got))
        return got

    hasher.walk = spy  # type: ignore[method-assign,assignment]
    try:
        copies = list(hashed_tree("nas", root, hasher))
    finally:
        if hasher.ahead is not None:
            hasher.ahead.close()
    return copies, walked[0], hasher.listed_trees


def test_a_store_lists_the_same_copies_from_columns_as_from_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "nas"
    _tree(root)
    dbs = {mode: StateDB(tmp_path / f"{mode}.db") for mode in ("columns", "entries")}
    try:

        def both() -> tuple[list[FileCopy], int]:
            cols, kind, listed = _listed(root, dbs["columns"], ahead=True)
            ents, kind_here, listed_here = _listed(root, dbs["entries"], ahead=False)
            assert (kind, kind_here) == (ColumnWalk, list)
            assert cols == ents and listed == listed_here
            assert all(type(c) is FileCopy for c in cols)
            return cols, listed

        # a first plan: every file matched against an empty cache, then hashed
        first, listed = both()
        assert listed == 0
        assert {c.path for c in first} == {
            "2020/01/IMG_1.JPG",
            "2020/01/IMG_1.MOV",
            "2021/b/IMG_2.JPG",
            "top level.png",
            "Thumbs.db",
        }
        one = next(c for c in first if c.path == "2021/b/IMG_2.JPG")
        st = os.stat(root / one.path)
        assert (one.store_id, one.size, one.mtime_ns) == ("nas", 3, st.st_mtime_ns)
        # unchanged: every file's row from the tree's listing
        again, listed = both()
        assert again == first and listed == 1

        # a file changed and now unreadable: no copy of it, the rest as before
        changed = root / "2021/b/IMG_2.JPG"
        changed.write_bytes(b"two, edited")

        def locked(path: str | Path) -> str:
            if Path(path) == changed:
                raise PermissionError(13, "Permission denied", str(path))
            return sha256_file(path)

        monkeypatch.setattr("reconciler.observe.hasher.sha256_file", locked)
        unreadable, listed = both()
        assert listed == 0
        assert unreadable == [c for c in first if c.path != "2021/b/IMG_2.JPG"]
    finally:
        for db in dbs.values():
            db.close()


def test_hashes_in_columns_read_as_each_file_s_result_and_change_in_place() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    got = HashedColumns([a, b, c], [1.5, None, 3.0])
    want = [Hashed(a, 1.5), Hashed(b, None), Hashed(c, 3.0)]
    assert len(got) == 3 and list(got) == want
    assert [got[i] for i in range(-3, 3)] == want + want and got[::2] == want[::2]
    assert all(type(h) is Hashed for h in (*got, got[0], *got[:1]))
    with pytest.raises(IndexError):
        got[3]
    got[1] = Hashed(None, None, "Permission denied")  # read again: unreadable now
    got[-1] = Hashed("d" * 64, 4.0)  # read again: changed
    want[1:] = [Hashed(None, None, "Permission denied"), Hashed("d" * 64, 4.0)]
    assert list(got) == want and [got[i] for i in range(3)] == want
    assert got.shas == [a, None, "d" * 64]  # what a store's copies read
    got[1] = Hashed(b, 2.0)  # readable again: its error is gone
    assert list(got) == [want[0], Hashed(b, 2.0), want[2]] and not got.errors
    with pytest.raises(ValueError):
        HashedColumns([a], [])


def test_a_listed_tree_with_a_file_due_and_unreadable_lists_every_other_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's path with a file read again in place: the one due to
    be verified and now unreadable is no copy, and says why; the others
    come from the listing, and the next run reads it again."""
    root = tmp_path / "nas"
    _tree(root)
    db = StateDB(tmp_path / "state.db")
    try:
        day = 86400.0
        first = CachedHasher(db, now=2_000_000_000.0, reverify_after_s=10 * day)
        copies = list(hashed_tree("nas", root, first))
        again = CachedHasher(db, now=2_000_000_000.0 + day, reverify_after_s=10 * day)
        assert list(hashed_tree("nas", root, again)) == copies and again.listed_trees == 1

        locked = root / "2021/b/IMG_2.JPG"

        def unreadable(path: str | Path) -> str:
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return sha256_file(path)

        monkeypatch.setattr("reconciler.observe.hasher.sha256_file", unreadable)
        late = CachedHasher(db, now=2_000_000_000.0 + 40 * day, reverify_after_s=10 * day)
        entries = list(scan_tree(root))
        hashed = late.hash_entries(entries, tree=os.path.join(root, ""))
        assert isinstance(hashed, HashedColumns) and late.listed_trees == 1
        assert late.hashed_files == len(entries)  # all due again, read in place
        by_rel = {e.rel: h for e, h in zip(entries, hashed, strict=True)}
        assert by_rel["2021/b/IMG_2.JPG"] == Hashed(None, None, "Permission denied")
        assert all(h.sha256 for rel, h in by_rel.items() if rel != "2021/b/IMG_2.JPG")
        later = CachedHasher(db, now=2_000_000_000.0 + 40 * day, reverify_after_s=10 * day)
        listed = list(hashed_tree("nas", root, later))
        assert listed == [c for c in copies if c.path != "2021/b/IMG_2.JPG"]
    finally:
        db.close()
