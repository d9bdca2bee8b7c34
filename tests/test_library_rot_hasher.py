"""The hash cache tells the library's observer which files, read again with
their whole stat as when hashed, hold other bytes (``changed_unseen``):
damage, where the ctime is real. A file a reader found wrong
(``StateDB.suspect_hashes``) is read again on the next walk whatever
``reverify_after_days`` says."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from providers.base import ScanEntry
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB

NOW = 1_800_000_000.0


def _entry(path: Path) -> ScanEntry:
    st = path.stat()
    return ScanEntry(str(path), path.name, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_due_read_from_its_trees_listing_reports_other_bytes(tmp_path: Path) -> None:
    """The tree's walk is its listing's (every stat as it was): the file
    due to be verified is read, and its other bytes are reported with the
    hash recorded."""
    tree = tmp_path / "lib"
    tree.mkdir()
    f = tree / "a.jpg"
    f.write_bytes(b"x" * 100)
    walk = [_entry(f)]  # the walk of before the rot: the disk's rot moves nothing
    db = StateDB(tmp_path / "state.db")
    for _ in range(2):  # hashed, then its listing kept
        CachedHasher(db, now=NOW, reverify_after_s=100).hash_entries(walk, tree=f"{tree}/")
    f.write_bytes(b"y" * 100)
    h = CachedHasher(db, now=NOW + 1000, reverify_after_s=100)
    (got,) = h.hash_entries(walk, tree=f"{tree}/")
    assert h.listed_trees == 1
    assert got.sha256 == _sha(b"y" * 100)
    assert h.changed_unseen == {str(f): _sha(b"x" * 100)}


def test_a_suspect_file_is_read_again_with_reverification_off(tmp_path: Path) -> None:
    """``reverify_after_days = 0``: nothing is ever due, but a file a reader
    found wrong is read on the next walk; with its stat unchanged its new
    bytes are reported, and a file rewritten (its ctime moved) is not."""
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 100)
    db = StateDB(tmp_path / "state.db")
    CachedHasher(db, now=NOW).hash_entries([_entry(f)])
    walk = [_entry(f)]
    with open(f, "r+b") as out:  # the rot, under the walk's stat
        out.write(b"y" * 100)
    h = CachedHasher(db, now=NOW)
    assert h.hash_entries(walk)[0].sha256 == _sha(b"x" * 100)  # trusted: not due
    db.suspect_hashes([str(f)])
    h = CachedHasher(db, now=NOW)
    assert h.hash_entries(walk)[0].sha256 == _sha(b"y" * 100)
    assert h.changed_unseen == {str(f): _sha(b"x" * 100)}
    # A rewrite moves the ctime: read again as a changed file, no damage.
    st = f.stat()
    f.write_bytes(b"z" * 100)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    h = CachedHasher(db, now=NOW)
    assert h.hash_entries([_entry(f)])[0].sha256 == _sha(b"z" * 100)
    assert h.changed_unseen == {}
