"""Tree listings (``reconciler.tree_listing``): a walk the same as the last
takes every file's row from its tree's listing, and what that gives is
always what matching the walk row by row against the hash cache gives.

The property drives two state DBs through the same changes (files added,
edited, renamed, deleted, rotted in place; rows written or forgotten by
other code; the clock moving past the re-read window; capture dates asked
or not) and hashes the tree with each after every change: one keeps its
listings, the other has them dropped before every run, so it always
matches row by row. Results and the cache's rows must be the same.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.filesystem import scan_tree
from reconciler.observe.hasher import CachedHasher
from reconciler.state import CachedHash, StateDB
from tests.helpers import make_jpeg

DAY = 86400.0
WINDOW = 10 * DAY
FILES = 5


def _name(root: Path, i: int) -> Path:
    return root / f"d{i % 2}" / f"IMG_{i:04d}.JPG"


def _hash(db: StateDB, root: Path, now: float, dates: bool) -> tuple[CachedHasher, list]:
    hasher = CachedHasher(db, now=now, reverify_after_s=WINDOW, workers=1)
    entries = list(scan_tree(root))
    got = hasher.hash_entries(entries, dates=dates, tree=os.path.join(root, ""))
    hasher.settle_changed()  # as observation does once the library has judged
    return hasher, [(e.rel, *h) for e, h in zip(entries, got, strict=True)]


def _rows(db: StateDB) -> list[tuple]:
    return list(db.db.conn.execute("select * from hash_cache order by path"))


class _Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = 1_700_000_000 * 10**9  # mtimes set by hand: no two edits alike

    def _stamp(self, path: Path) -> None:
        self.clock += 10**9
        os.utime(path, ns=(self.clock, self.clock))

    def do(self, op: str, i: int, j: int) -> None:
        src, dest = _name(self.root, i), _name(self.root, j)
        if op == "add" and not src.exists():
            make_jpeg(src, datetime(2020, 1, 1 + i, tzinfo=UTC), seed=i + 7 * j, size=16)
            self._stamp(src)
        elif op == "edit" and src.exists():
            src.write_bytes(src.read_bytes() + b"\0")
            self._stamp(src)
        elif op == "rot" and src.exists():  # bit rot: same size, mtime, inode
            before = src.stat()
            data = bytearray(src.read_bytes())
            data[-3] ^= 0xFF
            with open(src, "r+b") as f:
                f.write(data)
            os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
        elif op == "delete" and src.exists():
            src.unlink()
        elif op == "rename" and src.exists() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest)


OPS = st.tuples(
    st.sampled_from(["add", "edit", "rot", "delete", "rename", "record", "forget", "tick"]),
    st.integers(0, FILES - 1),
    st.integers(0, FILES - 1),
    st.booleans(),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=14))
def test_a_listing_gives_what_matching_row_by_row_gives(ops: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        tree = _Tree(base / "store")
        for i in range(0, FILES, 2):
            tree.do("add", i, i)
        listed = StateDB(base / "listed.db")
        matched = StateDB(base / "matched.db")
        now = 1_800_000_000.0
        try:
            for op, i, j, dates in ops:
                path = str(_name(tree.root, i))
                if op == "tick":
                    now += (j + 1) * 4 * DAY
                elif op in ("record", "forget"):
                    # Another writer of the cache (the applier recording a copy,
                    # a removal forgetting one), the same in both DBs.
                    for db in (listed, matched):
                        if op == "forget":
                            db.forget_hashes([path])
                        elif os.path.exists(path):
                            st_ = os.stat(path)
                            row = CachedHash(
                                st_.st_size,
                                st_.st_mtime_ns,
                                st_.st_ino,
                                "ab" * 32,
                                dates,
                                None,
                                now,
                            )
                            db.store_hashes([(path, row)])
                else:
                    tree.do(op, i, j)
                matched.db.conn.execute("delete from tree_listings")
                hasher, got = _hash(listed, tree.root, now, dates)
                _, want = _hash(matched, tree.root, now, dates)
                assert got == want, (op, i, j, dates)
                assert _rows(listed) == _rows(matched)
            # A run with nothing changed takes the listing, whatever came
            # before: once the run after the ops has recorded what it found
            # (bytes changed with no write seen, kept out of any listing
            # until recorded: a "rot", or a row "record"ed with other bytes).
            _hash(listed, tree.root, now, True)
            hasher, got = _hash(listed, tree.root, now, True)
            hasher, again = _hash(listed, tree.root, now, True)
            assert hasher.listed_trees == 1 and again == got
        finally:
            listed.close()
            matched.close()


def test_an_unchanged_tree_reads_no_cache_row(tmp_path: Path) -> None:
    root = tmp_path / "store"
    for i in range(4):
        make_jpeg(_name(root, i), datetime(2021, 3, 1 + i, tzinfo=UTC), seed=i, size=16)
    db = StateDB(tmp_path / "state.db")
    try:
        first, want = _hash(db, root, 1e9, True)
        assert first.hashed_files == 4 and first.listed_trees == 0
        read: list[str] = []
        db.db.conn.set_trace_callback(read.append)
        again, got = _hash(db, root, 1e9, True)
        db.db.conn.set_trace_callback(None)
        assert got == want
        assert all(r[2] is not None for r in got)  # capture times kept
        assert again.listed_trees == 1 and again.hashed_files == 0
        assert not [q for q in read if "from hash_cache" in q], read
        assert not [
            q for q in read if q.lstrip().lower().startswith(("insert", "update", "delete"))
        ]
    finally:
        db.close()


def _keep(db: StateDB, tree: str) -> None:
    kept = db.keep_tree_listing(
        tree, b"w" * 32, [("00" * 32, None, "")], [1.0], dated=False, changes=db.changes()
    )
    assert kept


def test_a_row_another_run_writes_meanwhile_keeps_the_listing_from_being_kept(
    tmp_path: Path,
) -> None:
    """``plan`` takes no lock: an apply beside it may forget a row under the
    tree (its removal gate found that copy rotten) while the plan is at the
    tree. The plan's listing, made from what it read before, must not then
    be kept as exact, or the next run would take the rotten copy's old
    SHA-256 from it instead of reading the file again."""
    root = tmp_path / "store"
    for i in range(2):
        make_jpeg(_name(root, i), None, seed=i, size=16)
    db = StateDB(tmp_path / "state.db")
    apply_beside = StateDB(tmp_path / "state.db")
    tree = os.path.join(root, "")
    rotten = str(_name(root, 0))
    try:
        _hash(db, root, 1e9, False)
        make_jpeg(_name(root, 2), None, seed=2, size=16)  # a new file: read this run

        def meanwhile(label: str, done: int, total: int) -> None:
            apply_beside.forget_hashes([rotten])

        plan = CachedHasher(db, now=1e9, workers=1, progress=meanwhile)
        plan.hash_entries(list(scan_tree(root)), tree=tree)
        assert plan.hashed_files == 1
        assert db.tree_listing(tree) is None
        again, _ = _hash(db, root, 1e9, False)
        assert again.listed_trees == 0 and again.hashed_files == 1  # the rotten copy, read again
        last, _ = _hash(db, root, 1e9, False)
        assert last.listed_trees == 1 and last.hashed_files == 0
    finally:
        apply_beside.close()
        db.close()


def test_any_write_under_a_tree_makes_its_listing_stale_and_only_its(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    row = CachedHash(1, 2, 3, "cd" * 32, False, None, 4.0)
    try:
        for write in (
            lambda p: db.store_hashes([(p, row)]),
            lambda p: db.forget_hashes([p]),
            lambda p: db.db.conn.execute("update hash_cache set size = 9 where path = ?", (p,)),
        ):
            db.store_hashes([("/s/tree/a.jpg", row)])
            for tree in ("/s/tree/", "/s/tree/in/", "/s/tre/", "/s/tree2/", "/s/"):
                _keep(db, tree)
            write("/s/tree/a.jpg")
            kept = {
                t
                for t in ("/s/tree/", "/s/tree/in/", "/s/tre/", "/s/tree2/", "/s/")
                if db.tree_listing(t)
            }
            # the tree and every tree it is in; not a neighbour sharing a prefix
            assert kept == {"/s/tree/in/", "/s/tre/", "/s/tree2/"}, write
        # A row moved out of a tree leaves it stale as much as one moved in.
        _keep(db, "/s/tree/")
        _keep(db, "/s/tree2/")
        db.db.conn.execute(
            "update hash_cache set path = '/s/tree2/a.jpg' where path = '/s/tree/a.jpg'"
        )
        assert db.tree_listing("/s/tree/") is None and db.tree_listing("/s/tree2/") is None
    finally:
        db.close()


def test_a_lost_trigger_is_put_back_on_open(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.db.conn.execute("drop trigger listing_stale_insert")
    db.close()
    db = StateDB(tmp_path / "state.db")
    try:
        _keep(db, "/s/")
        db.store_hashes([("/s/x", CachedHash(1, 2, 3, "cd" * 32, False, None, 4.0))])
        assert db.tree_listing("/s/") is None
    finally:
        db.close()


def test_a_listing_not_of_our_making_is_not_read(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        _keep(db, "/s/")
        db.db.conn.execute("update tree_listings set shas = x'00'")  # not 32 bytes a file
        assert db.tree_listing("/s/") is None
    finally:
        db.close()


def test_an_unreadable_file_keeps_no_listing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    for i in range(3):
        make_jpeg(_name(root, i), None, seed=i, size=16)
    db = StateDB(tmp_path / "state.db")
    try:
        entries = list(scan_tree(root))
        gone = Path(entries[1].path)
        gone.unlink()
        gone.mkdir()  # unreadable as a file, even to root (IsADirectoryError)
        hasher = CachedHasher(db, workers=1)
        got = hasher.hash_entries(entries, tree=os.path.join(root, ""))
        assert got[1].sha256 is None and got[0].sha256 and got[2].sha256
        assert db.tree_listing(os.path.join(root, "")) is None
    finally:
        db.close()


def test_inside_a_transaction_of_the_callers_files_are_hashed_and_no_listing_is_kept(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    for i in range(3):
        make_jpeg(_name(root, i), None, seed=i, size=16)
    db = StateDB(tmp_path / "state.db")
    tree = os.path.join(root, "")
    try:
        with db.transaction():
            inside, got = _hash(db, root, 1e9, False)
            assert inside.hashed_files == 3 and all(r[1] for r in got)
            assert db.tree_listing(tree) is None  # its writes are not settled yet
        after, again = _hash(db, root, 1e9, False)
        assert after.hashed_files == 0 and again == got  # the rows it wrote stand
        assert after.listed_trees == 0 and db.tree_listing(tree) is not None
    finally:
        db.close()


def test_only_configured_trees_keep_a_listing(tmp_path: Path) -> None:
    """A target taken out of the configuration leaves no listing behind (5 MB
    per 100k files); one configured but not there this run (unmounted) keeps
    its own, as do the rest."""
    from tests.helpers import KEEP_ORIGINALS, make_workspace

    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2020, 1, 1, tzinfo=UTC), seed=1)
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan").code == 0

    def listed() -> set[str]:
        db = StateDB.in_dir(ws.root / "state")
        try:
            return {r[0] for r in db.db.conn.execute("select tree from tree_listings")}
        finally:
            db.close()

    trees = {os.path.join(ws.root, n, "") for n in ("incoming", "library", "nas", "usb")}
    assert listed() == trees
    ws.config.write_text(
        ws.config.read_text().replace(
            '[targets.usb]\nkind = "filesystem"\npath = "usb"\nsame_disk_ok = true\n', ""
        )
    )
    (ws.root / "nas").rename(ws.root / "nas-away")
    (ws.root / "nas").mkdir()  # an unmounted disk's bare mount point
    ws.run("plan")
    assert listed() == trees - {os.path.join(ws.root, "usb", "")}


def test_dropping_unconfigured_listings_writes_only_when_there_is_one(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        for tree in ("/a/", "/b/", "/ab/"):
            _keep(db, tree)
        statements: list[str] = []
        db.db.conn.set_trace_callback(statements.append)
        assert db.forget_other_tree_listings(["/a/", "/b/", "/ab/", "/never-walked/"]) == 0
        assert not [q for q in statements if "delete" in q.lower()]  # no write lock taken
        assert db.forget_other_tree_listings(["/a/"]) == 2
        db.db.conn.set_trace_callback(None)
        left = {r[0] for r in db.db.conn.execute("select tree from tree_listings")}
        assert left == {"/a/"}  # not "/ab/", which shares its prefix
    finally:
        db.close()
