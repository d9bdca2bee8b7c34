"""The hash cache after its no-op fast path: still exact.

A tree's walk is merged, in path order, with one streamed range read of
the path-ordered table, compared as plain tuples; none of that may let a
changed file through, or keep the row of a file that is gone.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from providers.filesystem import scan_tree
from reconciler.layout import extension
from reconciler.media.kinds import is_archivable
from reconciler.observe.hasher import CachedHasher
from reconciler.schema import MIGRATIONS, _migrate_hash_cache_clustered
from reconciler.state import StateDB


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path, n: int) -> list[Path]:
    files = []
    for i in range(n):
        p = root / f"d{i % 3}" / f"IMG_{i:04d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"photo {i:04d}".encode())
        files.append(p)
    return files


def test_a_changed_file_is_read_again_wherever_it_lies_in_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "store"
    files = _tree(root, 10)
    db = StateDB(tmp_path / "state.db")
    try:
        first = CachedHasher(db)
        entries = list(scan_tree(root))
        got = {e.path: h.sha256 for e, h in zip(entries, first.hash_entries(entries), strict=True)}
        assert first.hashed_files == 10
        assert got == {str(p): _sha(p) for p in files}

        again = CachedHasher(db)
        assert [h.sha256 for h in again.hash_entries(list(scan_tree(root)))] == [
            got[e.path] for e in scan_tree(root)
        ]
        assert again.hashed_files == 0  # every row found, first to last

        # Same size, another mtime: read again, first or last in path order.
        for changed in (files[0], files[9]):
            before = changed.stat().st_mtime_ns
            changed.write_bytes(changed.read_bytes().replace(b"photo", b"PHOTO"))
            os.utime(changed, ns=(before + 1_000_000, before + 1_000_000))
        third = CachedHasher(db)
        entries = list(scan_tree(root))
        now = {e.path: h.sha256 for e, h in zip(entries, third.hash_entries(entries), strict=True)}
        assert third.hashed_files == 2
        assert now == {str(p): _sha(p) for p in files}
        assert now[str(files[0])] != got[str(files[0])]

        # A new file (its path between cached ones) is a miss, not a neighbour's row.
        (root / "d1" / "IMG_0004a.JPG").write_bytes(b"new")
        fourth = CachedHasher(db)
        entries = list(scan_tree(root))
        hashed = dict(zip([e.path for e in entries], fourth.hash_entries(entries), strict=True))
        assert fourth.hashed_files == 1
        assert (
            hashed[str(root / "d1" / "IMG_0004a.JPG")].sha256 == hashlib.sha256(b"new").hexdigest()
        )
    finally:
        db.close()


def _cached(db: StateDB) -> set[str]:
    return {r[0] for r in db.db.conn.execute("select path from hash_cache")}


@pytest.mark.parametrize("gone_at", [[0], [4, 5], [3], [9], [0, 9], list(range(10))])
def test_a_file_gone_from_a_tree_leaves_the_cache_wherever_it_was(
    tmp_path: Path, gone_at: list[int]
) -> None:
    """First, last, in the middle, side by side, all: every row of a
    vanished file goes (the walk and the cache are merged in path order);
    rows of a sibling tree sharing the name's start ("store-old",
    "store2") stay."""
    root = tmp_path / "store"
    files = sorted(_tree(root, 10))
    siblings = [*_tree(tmp_path / "store-old", 2), *_tree(tmp_path / "store2", 2)]
    db = StateDB(tmp_path / "state.db")
    try:
        hasher = CachedHasher(db)
        for tree in (root, tmp_path / "store-old", tmp_path / "store2"):
            hasher.hash_entries(list(scan_tree(tree)), tree=os.path.join(tree, ""))
        assert _cached(db) == {str(p) for p in files + siblings}
        for i in gone_at:
            files[i].unlink()
        entries = list(scan_tree(root))
        hashed = CachedHasher(db).hash_entries(entries, tree=os.path.join(root, ""))
        assert [h.sha256 for h in hashed] == [_sha(Path(e.path)) for e in entries]
        kept = [p for i, p in enumerate(files) if i not in gone_at]
        assert _cached(db) == {str(p) for p in kept + siblings}
    finally:
        db.close()


def test_the_hash_cache_migrates_to_a_path_ordered_table_keeping_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    # An older database: the cache as a rowid table, schema from before its migration.
    conn = sqlite3.connect(path)
    conn.execute("drop table hash_cache")
    conn.execute(
        "create table hash_cache (path text primary key, size integer, mtime_ns integer, "
        "inode integer, sha256 text, dated integer, captured_at real, hashed_at real)"
    )
    conn.execute("insert into hash_cache values ('/a/b.jpg', 3, 4, 5, 'ab', 1, 6.5, 7.5)")
    before = next(v for v, m in MIGRATIONS.items() if m is _migrate_hash_cache_clustered) - 1
    conn.execute("update meta set value = ? where key = 'schema_version'", (str(before),))
    conn.commit()
    conn.close()

    db = StateDB(path)
    try:
        sql = db.db.execute("select sql from sqlite_master where name = 'hash_cache'").fetchone()
        assert "without rowid" in sql[0].lower()
        # (a row from before ctimes were kept has none)
        assert list(db.hash_rows("/a/", "/a0")) == [("/a/b.jpg", 3, 4, 5, "ab", 1, 6.5, 7.5, None)]
    finally:
        db.close()


_NAMES = ["a.jpg", "d/IMG_1.HEIC", ".DS_Store", "d/.x", "d/..x", "d/...jpg", "d/b..jpg"]
_NAMES += ["a.b/c", "a.b/c.MOV", "x", "d/", "...", ".a.b", "d/.a.b", "d/b.", "."]


@pytest.mark.parametrize("name", _NAMES)
def test_extension_is_splitext_for_every_kind_of_name(name: str) -> None:
    assert extension(name) == os.path.splitext(name)[1]


def test_hidden_files_and_folders_and_os_caches_are_not_archived() -> None:
    keep = ["IMG_1.JPG", "d/IMG_1.DNG", "a.b/c", "d\\IMG_2.JPG"]
    drop = [".DS_Store", "d/._IMG_1.JPG", ".Trashes/501/x.jpg", "d/.hidden/x.jpg"]
    drop += ["d\\.hidden\\x.jpg", "d/Thumbs.db", "DESKTOP.INI", "d/"]
    assert [n for n in keep + drop if is_archivable(n)] == keep


def test_the_walk_sees_what_a_plain_lstat_walk_sees(tmp_path: Path) -> None:
    """The descriptor-relative walk against os.walk + os.lstat: every regular
    file once, with its own size, mtime, inode and ctime; no symlink (to a file or a
    folder), no dot-folder, no marker or temporary; the same paths whether
    the root is named with a trailing slash or not."""
    from providers.filesystem import MARKER, TMP_PREFIX

    root = tmp_path / "store"
    _tree(root, 7)
    (root / "deep" / "er" / "est").mkdir(parents=True)
    (root / "deep" / "er" / "est" / "clip.MOV").write_bytes(b"x" * 123)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "IMG_9.JPG").write_bytes(b"no")
    (root / MARKER).write_text("{}")
    (root / "d0" / f"{TMP_PREFIX}abc").write_bytes(b"partial")
    (root / "d1" / "link.JPG").symlink_to(root / "d0" / "IMG_0000.JPG")
    (root / "d1" / "dirlink").symlink_to(root / "deep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "IMG_OUT.JPG").write_bytes(b"outside")
    (root / "escape").symlink_to(outside)

    want = set()
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            if name == MARKER or name.startswith(TMP_PREFIX):
                continue
            rel = os.path.relpath(path, root)
            want.add((path, rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    assert len(want) == 8
    for named in (str(root), f"{root}/"):
        got = [tuple(e) for e in scan_tree(named)]
        assert len(got) == len(set(got))
        assert set(got) == want


def test_small_files_are_hashed_here_and_large_ones_on_the_pool_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread per small file costs far more than hashing it; large files
    gain from every core. Whichever way a file goes, its result is its own,
    in its place, an unreadable file of either size is that file's error,
    and the progress counts every file once."""
    from reconciler.hashing import HASH_CHUNK
    from reconciler.observe import hasher as cached_hasher

    root = tmp_path / "store"
    sizes = [10, HASH_CHUNK - 1, HASH_CHUNK, 3 * HASH_CHUNK + 5, 0, 700, HASH_CHUNK + 1]
    files = []
    for i, size in enumerate(sizes):
        p = root / f"d{i % 2}" / f"IMG_{i}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
        files.append(p)
    entries = list(scan_tree(root))
    gone = {next(e.path for e in entries if e.size == 700)}
    gone.add(next(e.path for e in entries if e.size == 3 * HASH_CHUNK + 5))
    for path in gone:
        os.unlink(path)  # vanished between the walk and the read
    where: dict[str, str] = {}
    real = cached_hasher.sha256_file

    def spy(path: str | Path) -> str:
        where[str(path)] = threading.current_thread().name
        return real(path)

    monkeypatch.setattr(cached_hasher, "sha256_file", spy)
    seen: list[tuple[int, int]] = []
    db = StateDB.in_dir(tmp_path / "state")
    try:
        hasher = CachedHasher(db, progress=lambda _, done, total: seen.append((done, total)))
        got = hasher.hash_entries(entries, tree=os.path.join(root, ""))
    finally:
        db.close()
    for e, h in zip(entries, got, strict=True):
        if e.path in gone:
            assert h.sha256 is None and h.error
        else:
            assert h.sha256 == _sha(Path(e.path)) and not h.error
        on_main = where[e.path] == threading.main_thread().name
        assert on_main == (e.size < HASH_CHUNK), (e.size, where[e.path])
    assert seen[-1] == (len(entries), len(entries))
    assert hasher.hashed_files == len(entries)
