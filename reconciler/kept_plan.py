"""A converged plan, kept: cron's nightly ``reconcile plan`` of a library
where nothing changed is answered by walking the trees, not by observing
and planning again.

The planner is a pure function of the configuration, the observed world
and the clock (``plan(desired, world, now)``), and for a library whose
every store and source is a folder on this machine the world is a function
of the files under those folders and of the state database. So a plan
with nothing to do (its notes are the world's, and said again) is kept
with what it was made from, and given again while all of it is the same
(none is kept when a file, a listing or a store could not be read: that
may pass with nothing on disk changed):

- the trees, walked again (every file's path, size, mtime, inode and
  ctime, in order: ``tree_listing.walk_digest``); a file rewritten in place
  moves its ctime whatever its size and mtime say;
- each store's root and marker as ``lstat`` and ``stat`` see them, and
  the marker's bytes (a disk swapped or unmounted, a marker rewritten, or
  the file a marker's link leads to: the walk skips the marker);
- the state database: the world counter (``StateDB.world_count``) moves
  with every row written to any table a plan reads, by triggers, by any
  writer; a plan is kept only if it did not move while the plan was made;
- the configuration as resolved, the mount table and the disks the copies
  are judged by, this program's own code (its files' sizes and mtimes),
  and the machine's time zone;
- the clock: until the first moment an item's age reaches a span the
  planner measures (``plan.bounds``) or a file is due to be read again
  (``guards.reverify_after_days``), never past a week, never before it was
  made (a clock set back).

The walks are taken before anything is observed, so what the plan saw is
no older than the walks it is kept with: a file changed after its walk
moves its ctime, and the next walk differs. A tree with a file changed
within ``RACY_S`` of its walk (by its ctime: an mtime is whatever its
writer set) is not kept: a change inside one tick of a coarse clock, or of
FAT's 2-second times, can leave the times as they were. When the kept plan
does not hold, the walks are handed to the observer: nothing is walked
twice. (exFAT and FAT keep no ctime: there, as
for the hash cache, a file rewritten in place with its size and mtime put
back is found only when it is due to be read again.)

Walking every tree first costs the observer its walks ahead (done while it
works), about a third of a plan's time at 100k items. So a run walks first
only where the kept plan may hold: the last plan was converged, and the
state database and the rest are as they were then. A converged plan made
without walking first keeps only a mark, so the next run walks first and
keeps what it makes; the one after that is answered.

Only for libraries large enough to walk ahead (``walk_ahead``); never for
``apply``, which always observes (and whose removal gate re-checks every
copy anyway), nor for a phone (Syncthing's answers are not files here) or
iCloud.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import providers
import reconciler
from providers.base import ColumnWalk, ConfirmingStore, LocalTree, RemembersListing, WalksLocally
from providers.filesystem import MARKER, MARKER_LIMIT
from providers.physical_disks import root_of
from reconciler import places, planfile, walk_ahead
from reconciler.config import DesiredState
from reconciler.connect import Connected
from reconciler.disks import Disks
from reconciler.errors import StalePlanError
from reconciler.hashing import read_file
from reconciler.model import Plan, World
from reconciler.observe import judged_disks
from reconciler.plan import bounds, fingerprint
from reconciler.state import StateDB
from reconciler.walk_ahead import Prewalked

log = logging.getLogger("reconcile")

#: A file changed less than this before its tree was walked could change
#: again without moving its times (FAT keeps mtimes to 2 s; the kernel's
#: clock for file times ticks every few ms).
RACY_S = 2.0
#: The longest a kept plan is given again, whatever else holds.
LONGEST = timedelta(days=7)

#: Notes of what could not be read this run (a disk's error, a listing
#: that failed, a file held by another program): it may be read on the
#: next, with nothing on disk changed, so a plan saying one is not kept.
PASSING = frozenset({"unavailable", "unreadable"})


@attrs.frozen(kw_only=True)
class Check:
    """What was found before observing: the plan kept, if it still holds;
    else the walks (for the observer) and what keeping this run's plan needs."""

    kept: Plan | None
    walks: dict[str, Prewalked]
    key: bytes
    digests: bytes
    counter: int
    #: the newest ctime the walks met (ns), and when they began (s)
    newest_ns: int
    began: float


def check(
    desired: DesiredState, db: StateDB, conn: Connected, now: datetime, accept_shrink: bool
) -> Check | None:
    """The kept plan if it holds now (``Check.kept``), or the trees walked
    for this run's observation; None when no plan of this library is kept
    (a phone or iCloud, a small library, ``--accept-shrink``)."""
    if accept_shrink or not _all_local(conn) or db.size_bytes() < walk_ahead.MIN_STATE_BYTES:
        return None
    counter = db.world_count()  # before the walks: a write after them shows at keeping
    began = time.time()
    key = _key(desired, conn)
    found = Check(
        kept=None, walks={}, key=key, digests=b"", counter=counter, newest_ns=0, began=began
    )
    row = _kept_row(db)
    at = now.timestamp()
    if row is None or row[:2] != (key, counter) or not row[3] <= at < row[4]:
        # No kept plan can hold: observe as usual (walking first would only
        # cost the observer its walks ahead).
        return found
    got = _walk_all([p.local_tree for p in _order(conn)], places.fences(desired))
    if got is None:
        return found
    walks, digests, newest_ns = got
    found = attrs.evolve(found, walks=walks, digests=digests, newest_ns=newest_ns)
    if row[2] == found.digests and row[5]:
        try:
            kept = attrs.evolve(planfile.loads(row[5]), created_at=now)
        except StalePlanError:  # not what this program wrote there: plan again
            return found
        log.info("nothing changed since the converged plan of %s", _when(row[3]))
        return attrs.evolve(found, kept=kept)
    return found


def keep(
    found: Check, desired: DesiredState, db: StateDB, world: World, plan: Plan, now: datetime
) -> bool:
    """Keep ``plan`` for the runs after this one, if it is converged and
    nothing it was made from changed while it was made. A run that did not
    walk first keeps only a mark: the next run walks first (if nothing
    changed in the state database meanwhile), and keeps the plan it makes."""
    if plan.actions:
        if found.walks:  # walked first for nothing: the next run observes as usual
            _forget(db)
        return False
    if world.unread or any(n.status in PASSING for n in plan.notes):
        return False  # what could not be read may be read tomorrow, its times unchanged
    if not found.digests:
        mark = (now.timestamp(), float("inf"))
        return _write(db, found.key, found.counter, b"", mark, "")
    if found.newest_ns >= (found.began - RACY_S) * 1e9:
        return False  # a file changed just before its walk
    until = min(bounds.stable_until(desired, world, now), now + LONGEST)
    due = _first_due(desired, db, now)
    if due is not None:
        until = min(until, due)
    if until <= now:
        return False
    return _write(
        db,
        found.key,
        found.counter,
        found.digests,
        (now.timestamp(), until.timestamp()),
        # with its basis, for a plan given again with --json or --out
        planfile.dumps(attrs.evolve(plan, basis=fingerprint(world))),
    )


def _kept_row(db: StateDB) -> tuple[Any, ...] | None:
    """The kept plan's row: (key, counter, walks, valid_from, valid_until,
    plan text; "" for a mark), or None."""
    row = db.conn.execute(
        "select key, counter, walks, valid_from, valid_until, plan from converged_plan"
    ).fetchone()
    return tuple(row) if row is not None else None


def _write(
    db: StateDB, key: bytes, counter: int, walks: bytes, valid: tuple[float, float], plan: str
) -> bool:
    """Keep a plan made at world count ``counter``, if the count is still
    that (no writer changed what it was made from meanwhile)."""
    if db.conn.in_transaction:
        return False
    try:
        with db.transaction(immediate=True):  # the count read and the write, one
            same = db.world_count() == counter
            if same:
                db.conn.execute(
                    "insert or replace into converged_plan (id, key, counter, walks, "
                    "valid_from, valid_until, plan) values (0, ?, ?, ?, ?, ?, ?)",
                    (key, counter, walks, valid[0], valid[1], plan),
                )
    except sqlite3.OperationalError as e:
        _not_kept(e)
        return False
    return same


def _forget(db: StateDB) -> None:
    if not db.conn.in_transaction:
        try:
            with db.transaction():
                db.conn.execute("delete from converged_plan")
        except sqlite3.OperationalError as e:
            _not_kept(e)  # (a row kept stays only as good as its digests)


def _not_kept(e: sqlite3.OperationalError) -> None:
    """What a plan keeps for the next is no part of its answer: a database
    another program holds locked (past the busy timeout) costs only that."""
    log.info("the converged plan was not kept (%s); the next plan is made as usual", e)


def _first_due(desired: DesiredState, db: StateDB, now: datetime) -> datetime | None:
    """When the first file in the hash cache is due to be read again. (One
    hashed "later than now" is read again this run, by the observer: its
    row rewritten moves the world count, and nothing is kept.)"""
    days = desired.guards.reverify_after_days
    if not days:
        return None
    (oldest,) = db.conn.execute("select min(hashed_at) from hash_cache").fetchone()
    if oldest is None:
        return None
    return now + timedelta(seconds=oldest + days * 86400 - now.timestamp())


def _order(conn: Connected) -> list[WalksLocally]:
    return [p for p in conn.in_order() if isinstance(p, WalksLocally)]


def _all_local(conn: Connected) -> bool:
    """Every source and store a folder here: what they hold is their files."""
    return all(
        isinstance(p, WalksLocally) and not isinstance(p, ConfirmingStore | RemembersListing)
        for p in conn.in_order()
    )


def _key(desired: DesiredState, conn: Connected) -> bytes:
    """Everything but the trees, the state and the clock a plan is made from."""
    h = hashlib.sha256()
    disks = judged_disks(desired, conn)
    # (the disks as read, before judging fills their caches)
    for value in (desired, disks, _judged_roots(disks, conn)):
        h.update(repr(_canonical(value)).encode("utf-8", "surrogateescape"))
    for p in _order(conn):
        root = os.fspath(p.local_tree.root)
        marker = os.path.join(root, MARKER)
        # Each as it is, and where it leads (the walk and the marker's
        # reader follow a link there); the marker's words too.
        for path, look in (
            (root, os.lstat),
            (root, os.stat),
            (marker, os.lstat),
            (marker, os.stat),
        ):
            h.update(f"{look.__name__} ".encode() + path.encode("utf-8", "surrogateescape") + b"\0")
            try:
                st = look(path)
            except OSError as e:
                h.update(f"{e.errno}\n".encode())
                continue
            h.update(
                f"{st.st_mode} {st.st_dev} {st.st_ino} {st.st_size} "
                f"{st.st_mtime_ns} {st.st_ctime_ns}\n".encode()
            )
        try:
            h.update(read_file(marker, MARKER_LIMIT))
        except OSError as e:
            h.update(f"{e.errno}\n".encode())
    h.update(_code())
    # capture times without a zone are read in the machine's
    h.update(f"{time.timezone} {time.altzone} {time.tzname}".encode())
    return h.digest()


def _judged_roots(disks: Disks, conn: Connected) -> dict[str, tuple[int | None, str] | None]:
    """Each target's disk as the observer judges it (``Disks.judge``): read
    from sysfs, which the mount table does not show (a disk image's file
    moved into the library or out of it, or deleted; a volume moved to
    another disk), so a plan kept on the old judgement is not given again."""
    return {
        tid: disks.judge(tid, where) if (where := root_of(store, disks.table)) else None
        for tid, store in conn.targets.items()
    }


def _canonical(value: object) -> object:
    """``value`` as plain tuples and strings, the same in every process: a
    set's order (and so its ``repr``) follows the process's hash seed."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))  # type: ignore[arg-type]
        return (
            type(value).__name__,
            *((f.name, _canonical(getattr(value, f.name))) for f in fields),
        )
    if isinstance(value, set | frozenset):
        return ("set", *sorted(repr(_canonical(v)) for v in value))
    if isinstance(value, Mapping):
        items = ((repr(_canonical(k)), _canonical(v)) for k, v in value.items())
        return ("map", *sorted(items, key=lambda kv: kv[0]))
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(_canonical(v) for v in value))
    return repr(value)


def _code() -> bytes:
    """This program's own files, as they are (an upgrade plans anew): every
    module under its packages' folders (sources, compiled modules without
    their source, extensions), or, run from an archive (a zipapp), the
    archive's own file."""
    h = hashlib.sha256()
    for package in (reconciler, providers):
        where = os.path.dirname(os.fspath(package.__file__ or ""))
        if os.path.isdir(where):
            for folder, dirs, files in os.walk(where):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith((".py", ".pyc", ".so")):
                        st = os.stat(os.path.join(folder, name))
                        h.update(f"{folder}/{name} {st.st_size} {st.st_mtime_ns}\n".encode())
            continue
        while where and not os.path.exists(where) and os.path.dirname(where) != where:
            where = os.path.dirname(where)  # up to the archive that holds the package
        st = os.stat(where or ".")
        h.update(f"{where} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n".encode())
    return h.digest()


def _walk_all(
    trees: Sequence[LocalTree], fences: Mapping[tuple[int, int], str]
) -> tuple[dict[str, Prewalked], bytes, int] | None:
    """Every tree walked, the first here and the rest by the helper, except
    those it has not begun when this process is done with the first: taken
    from the last, so the two share the trees. Each with the folder it is
    of (device, inode): the observer takes a walk only of the folder there
    when it looks (a card swapped at its mount point meanwhile is walked
    again), and the digest holds it. None: a tree could not be walked (the
    observer meets that error itself), its root changed while it was
    walked, or it holds a value no digest can (an mtime past 2262)."""
    walks: dict[str, Prewalked] = {}
    ahead = walk_ahead.WalkAhead(trees[1:], fences) if len(trees) > 1 else None
    try:
        for tree in (*trees[:1], *reversed(trees[1:])):
            key = os.fspath(tree.root)
            if key in walks:
                continue
            try:
                before = os.stat(key)
                taken = ahead.take(tree.root, tree.skip) if ahead and tree is not trees[0] else None
                # in columns, as the helper's: every tree is held at once
                got = taken or walk_ahead.walk_here(key, tree.skip, fences)
                after = os.stat(key)
            except Exception:  # (a nested place too) the observer meets it, and says it
                return None
            folder = (after.st_dev, after.st_ino)
            if (before.st_dev, before.st_ino) != folder:
                return None  # (the helper's walk is of the folder there at ``take``)
            walks[key] = (tree.skip, folder, got)
    finally:
        if ahead is not None:
            ahead.close()
    h = hashlib.sha256()
    newest = 0
    for tree in trees:
        key = os.fspath(tree.root)
        _, folder, (entries, odd_names, linked, digest) = walks[key]
        h.update(key.encode("utf-8", "surrogateescape") + b"\0" + digest)
        h.update(pickle.dumps((folder, sorted(odd_names), sorted(linked))))
        newest = max(newest, _newest(entries))
    return walks, h.digest(), newest


def _newest(entries: ColumnWalk) -> int:
    """The latest ctime (ns) among a walk's files: set by the kernel's clock
    at every change (an mtime is whatever the writer set: a copy tool's
    from the camera, in the future as often as not)."""
    return max(entries.ctimes, default=0)


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
