"""Observation: ask every provider for its actual state; return a World.

Hashing goes through the state DB's hash cache (``hasher``): an unchanged
file is never re-read, a changed one is re-hashed. The library's files and
their lineage are observed in ``library``.

Guards live here too: a source listing that failed, came back empty, or
shrank sharply since the last run is marked untrusted (the planner then
removes nothing from it), and a store without its marker is unavailable.

A source that keeps its listing (iCloud, ``RemembersListing``) is handed the
state DB first: between full listings it lists only what changed since the
last run, and the guards judge what it lists exactly as a full listing.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

import attrs

from providers.base import (
    ConfirmingStore,
    RemembersListing,
    Source,
    Store,
    WalksLocally,
)
from providers.mounts import Location, Mount, mount_table
from providers.physical_disks import root_of
from reconciler import places, sidecar, walk_ahead
from reconciler.config import (
    DesiredState,
    SyncthingTarget,
    TargetConfig,
)
from reconciler.connect import Connected
from reconciler.disks import Disks, disks_now
from reconciler.errors import LoginRequiredError, ProviderError
from reconciler.hashing import read_file
from reconciler.model import (
    FileCopy,
    LibraryState,
    SourceItem,
    SourceState,
    TargetState,
    World,
)
from reconciler.observe import hard_links, phone
from reconciler.observe.hasher import CachedHasher, Progress, _quiet
from reconciler.observe.library import library_state, rebuilt_from_targets, sidecars_missing
from reconciler.state import DownloadedFile, StateDB
from reconciler.walk_ahead import Prewalked, WalkAhead


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a block without the cyclic garbage collector (restored after).

    Observing and planning a large library makes millions of objects that
    all live to the end of the block and form no cycles; each automatic
    collection walks every one of them again (a quarter of a no-op plan's
    time at 100k items). Reference counting still frees everything else."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What the block made and kept goes straight to the oldest
        # generation (freeze, then unfreeze: two list splices), so enabling
        # the collector does not walk millions of young objects at once
        # (0.4 s at 100k items); a later full collection still sees them.
        gc.freeze()
        gc.unfreeze()
        if was:
            gc.enable()


def observe(
    desired: DesiredState,
    db: StateDB,
    conn: Connected,
    *,
    now: datetime | None = None,
    progress: Progress = _quiet,
    accept_shrink: bool = False,
    walked: Mapping[str, Prewalked] | None = None,
) -> World:
    """``walked``: trees already walked this run (``kept_plan.Check``), by
    root, each with the ``skip`` rule and folder it was walked with."""
    now = now or datetime.now(UTC)
    days = desired.guards.reverify_after_days
    hasher = CachedHasher(
        db, now=now.timestamp(), reverify_after_s=days * 86400 or None, progress=progress
    )
    for src in conn.sources.values():
        if isinstance(src, RemembersListing):
            src.remember_listing(db, now)  # iCloud: list only what changed since
    # The local trees in the order they are walked below; on a large library
    # a helper process walks them ahead while this one works: all of them
    # when a remote source is listed first (iCloud), else all but the first,
    # which this one walks meanwhile.
    # The library comes before the targets: its work after the walk is the
    # longest (each file's lineage row and capture time), so its walk is the
    # one the helper should have ready first.
    order = conn.in_order()
    trees = [p.local_tree for p in order if isinstance(p, WalksLocally)]
    # Listings are kept for the configured trees only, walked or not this run.
    db.forget_other_tree_listings([os.path.join(t.root, "") for t in trees])
    ahead = trees[1:] if isinstance(order[0], WalksLocally) else trees
    hasher.fences = places.fences(desired)
    if walked:
        hasher.prewalked = dict(walked)
        ahead = [t for t in ahead if os.fspath(t.root) not in walked]
    if ahead and db.size_bytes() >= walk_ahead.MIN_STATE_BYTES:
        hasher.ahead = WalkAhead(ahead, hasher.fences)
    try:
        sources = tuple(
            _source(sid, src, hasher, db, desired.guards.max_shrink_fraction, accept_shrink)
            for sid, src in conn.sources.items()
        )
        library, parsed = library_state(conn, hasher, db)
        disks = judged_disks(desired, conn)
        targets = tuple(
            _target(tid, store, hasher, db, desired.targets.get(tid), now, disks)
            for tid, store in conn.targets.items()
        )
    finally:
        if hasher.ahead is not None:
            hasher.ahead.close()
            hasher.ahead = None
    hasher.settle_changed()  # a target's or a source's: nothing more to record
    known, superseded, wanted = _still_known(sources, db.source_files())
    _known_from_sidecars(wanted, superseded, library, targets, conn, known, db, hasher)
    targets = hard_links.judged(desired, db, conn, sources, targets, known)
    in_sources = _in_sources(sources, known)
    library = rebuilt_from_targets(
        library, targets, in_sources, lambda: _listed(sources), conn, db, hasher
    )
    return World(
        observed_at=now,
        sources=sources,
        targets=targets,
        library=library,
        known_sha256=known,
        settled=db.settled(),
        tombstones=db.tombstones(),
        removed_sha256=db.tombstoned_sha256(),
        renditions=db.renditions(_not_originals(in_sources, library)),
        library_sidecars=sidecars_missing(library, targets, conn, parsed, hasher),
        unread=hasher.unread,
    )


def _in_sources(sources: tuple[SourceState, ...], known: Mapping[Key, str]) -> set[str]:
    """The SHA-256s the sources hold now (those known): built once a run."""
    found: set[str] = set()
    for source in sources:
        sid = source.source_id
        for item in source.items:
            for f in item.files:
                sha = f.sha256 or known.get((sid, item.key, f.ref))
                if sha is not None:
                    found.add(sha)
    return found


def _listed(sources: tuple[SourceState, ...]) -> set[tuple[str, str]]:
    """The items the sources list, as (source id, item key)."""
    return {(s.source_id, item.key) for s in sources for item in s.items}


def _not_originals(in_sources: set[str], library: LibraryState) -> set[str]:
    """The SHA-256s sources hold that are no original in the library: only
    these can be a file the tool made by encoding, come back (the planner's
    ``_rendition``). A converged run has none, and reads no rendition."""
    if not in_sources:  # (an emptied source asks nothing of the library)
        return set()
    return in_sources.difference(map(itemgetter(2), library.files))  # original_sha256


def _source(
    sid: str, src: Source, hasher: CachedHasher, db: StateDB, max_shrink: float, accept: bool
) -> SourceState:
    base = SourceState(source_id=sid, kind=src.kind, remote=src.remote, items=())
    try:
        items = tuple(src.list_items(hasher))
    except LoginRequiredError:
        raise
    except ProviderError as e:
        return attrs.evolve(base, trusted=False, reachable=False, problem=f"listing failed: {e}")
    base = attrs.evolve(base, remarks=tuple(src.remarks))  # left out on purpose
    before = db.listing_count(sid)
    expected = _expected_count(sid, before, items, db)
    problem = ""
    if expected and not items:
        problem = f"listing came back empty (last run: {before} items)"
    elif expected and len(items) < expected * (1 - max_shrink):
        problem = (
            f"listing shrank from {before} to {len(items)} items since the last run "
            f"(guards.max_shrink_fraction={max_shrink}); if that is right, run once "
            "with --accept-shrink"
        )
    if problem and not accept:
        return attrs.evolve(base, items=items, trusted=False, problem=problem)
    db.record_listing_count(sid, len(items))
    return attrs.evolve(base, items=items)


def _expected_count(
    sid: str, before: int | None, items: Sequence[SourceItem], db: StateDB
) -> int | None:
    """How many items the listing should hold at least as the tool knows
    it: the last count, less the tool's own removals whose answer was lost
    and which the source could not read back yet (``unheard_removals``):
    each one not listed now is a shrink the tool itself made. Nothing else
    lowers it: the guard stays as strict for every other item."""
    if not before:
        return before
    unheard = db.unheard_removals(sid)
    if not unheard:
        return before
    listed = {item.key for item in items}
    return max(0, before - sum(1 for key in unheard if key not in listed))


def _target(
    tid: str,
    store: Store,
    hasher: CachedHasher,
    db: StateDB,
    cfg: TargetConfig | None,
    now: datetime,
    disks: Disks,
) -> TargetState:
    avail = store.availability()
    if not avail.available:
        return TargetState(target_id=tid, kind=store.kind, available=False, problem=avail.reason)
    try:
        copies = tuple(store.list_copies(hasher))
    except LoginRequiredError:
        raise
    except ProviderError as e:
        return TargetState(
            target_id=tid, kind=store.kind, available=False, problem=f"listing failed: {e}"
        )
    if not isinstance(store, ConfirmingStore):
        device, elsewhere, why = _judged(tid, store, copies, disks)
        return TargetState(
            target_id=tid,
            kind=store.kind,
            available=True,
            copies=copies,
            device=device,
            elsewhere=elsewhere,
            not_a_backup=why,
        )
    try:
        if isinstance(cfg, SyncthingTarget) and cfg.role == "conduit":
            return phone.conduit(tid, store, copies, db, now)
        return phone.confirming(tid, store, copies, db)
    except LoginRequiredError:
        raise
    except ProviderError as e:
        # Syncthing gone, or one answer too slow, while its files were asked
        # about: the phone is unavailable this run, and the rest goes on.
        return TargetState(
            target_id=tid, kind=store.kind, available=False, problem=f"confirming failed: {e}"
        )


def judged_disks(desired: DesiredState, conn: Connected) -> Disks:
    """The disks each target's copies are judged by, as the removal gate
    judges them (``reconciler.disks``), from one reading of the mount table."""
    table = mount_table()
    roots = {tid: root_of(store, table) for tid, store in conn.targets.items()}
    return disks_now(desired, table, roots)


def _judged(
    tid: str, store: Store, copies: Sequence[FileCopy], disks: Disks
) -> tuple[int | None, dict[str, tuple[int | None, str]], str]:
    """The disk a target's copies count on (its root's, judged as the gate
    judges a copy: through an overlay, its layers' disk), the copies that
    count otherwise (``TargetState.elsewhere``): those reached through a
    mount below its root, each judged on its own file's location, or all of
    them when its root is judged no backup (an overlay over the library, a
    disk that cannot be told); and then why (``TargetState.not_a_backup``:
    the copies planned this run count for nothing either). Without such a
    mount (the common case) it costs nothing per copy."""
    root = root_of(store, disks.table)
    if root is None:
        return None, {}, ""
    device, why = disks.judge(tid, root)
    if why:
        return root.device, {c.sha256: (None, why) for c in copies}, why
    top = os.path.realpath(store.local_path(".") or ".")
    below = _mounts_below(top, disks.table)
    if not below:
        return device, {}, ""
    # deepest first: a mount below another shows its own files there
    mounts = sorted(below.items(), key=lambda found: len(found[0]), reverse=True)
    whole = {rel: _judged_whole(tid, top, mount, disks) for rel, mount in mounts}
    elsewhere: dict[str, tuple[int | None, str]] = {}
    for c in copies:
        path, own = c.path, (device, "")
        for rel, mount in mounts:
            if path.startswith(rel) and (len(path) == len(rel) or path[len(rel)] == "/"):
                judged = whole[rel]
                own = judged or _judge(tid, mount.location(os.path.join(top, path)), disks)
                break
        # (a SHA-256 held twice counts as the gate finds it: the last copy listed)
        if own != (device, ""):
            elsewhere[c.sha256] = own
        elif elsewhere:
            elsewhere.pop(c.sha256, None)
    return device, elsewhere, ""


def _judged_whole(tid: str, top: str, mount: Mount, disks: Disks) -> tuple[int | None, str] | None:
    """How every file below ``mount`` (strictly below the target's root
    ``top``) is judged, when that is one answer for all: unless a place
    lies strictly inside the folder the mount shows, it is (``Disks.judge``
    looks at a file's path only to find the place it lies in). None: judge
    each file."""
    shown = mount.location(mount.point)
    if shown is None:
        return None
    if any(p.within(shown) and p != shown for p in disks.places.values()):
        return None
    return _judge(tid, shown, disks)


def _judge(tid: str, where: Location | None, disks: Disks) -> tuple[int | None, str]:
    return disks.judge(tid, where) if where is not None else (None, "its file cannot be located")


def _mounts_below(top: str, table: Mapping[int, Mount]) -> dict[str, Mount]:
    """The mounts strictly below the folder ``top`` that a walk of it
    reaches (not one hidden under another on the same point), by their
    path relative to ``top``."""
    prefix = top.rstrip("/") + "/"
    found: dict[str, Mount] = {}
    for mount in table.values():
        if mount.point.startswith(prefix):
            reached = places.reached(Path(mount.point))  # what a walk meets there
            if reached is not None and reached[0] in (mount.id, None):
                found[mount.point[len(prefix) :]] = mount
    return found


Key = tuple[str, str, str]


def _still_known(
    sources: tuple[SourceState, ...], rows: Mapping[Key, DownloadedFile]
) -> tuple[dict[Key, str], dict[Key, str], dict[Key, tuple[int, str]]]:
    """The SHA-256 of each remote file downloaded before, where the source
    still lists that very file: same size and fingerprint as when it was
    downloaded (``DownloadedFile.still``). An asset edited again keeps its
    refs for new bytes; its old hash would pass the removal gate on the old
    version's copies, so it is dropped here, once, for the planner, the
    gate and the applier alike: the file is downloaded again. Returns the
    hashes still known, those superseded (ref -> the old hash), and the
    remote files whose hash is unknown, with their size and fingerprint
    (for the sidecars to prove)."""
    known = {key: row.sha256 for key, row in rows.items()}
    superseded: dict[Key, str] = {}
    wanted: dict[Key, tuple[int, str]] = {}
    for s in sources:
        if not s.remote:
            continue
        sid = s.source_id
        for item in s.items:
            for f in item.files:
                if f.sha256:
                    continue
                key = (sid, item.key, f.ref)
                row = rows.get(key)
                # An edit (or its adjustment data) re-made by the person
                # may keep its length: a row from before fingerprints were
                # kept cannot tell, so it is downloaded again, once.
                changeable = f.role in ("edited", "edit_sidecar")
                if (
                    row is not None
                    and row.still(f.size, f.fingerprint)
                    and (row.fingerprint or not changeable)
                ):
                    continue
                if row is not None:
                    del known[key]
                    superseded[key] = row.sha256
                wanted[key] = (f.size, f.fingerprint)
    return known, superseded, wanted


def _known_from_sidecars(
    wanted: dict[Key, tuple[int, str]],
    superseded: Mapping[Key, str],
    library: LibraryState,
    targets: tuple[TargetState, ...],
    conn: Connected,
    known: dict[Key, str],
    db: StateDB,
    hasher: CachedHasher,
) -> None:
    """Learn the SHA-256 of remote files from the sidecars archived beside
    them, so a lost state DB (or a fresh machine) downloads nothing the
    archive already proves: a sidecar names the item (its record ids are
    in the key), each file's size, the source's fingerprint and its hash.
    Read only while some remote file's hash is unknown (``wanted``: size
    and fingerprint as listed now); learned once.

    A sidecar's word counts only where it is consistent with what else is
    known: not the hash the state DB holds for an older version of that
    file (``superseded``: a sidecar rewritten by an older reconcile after
    a second edit paired the new size and fingerprint with the old hash),
    and only for content archived here with that very size."""
    if not wanted:
        return
    places: list[tuple[Store, list[str]]] = []
    sizes: dict[str, int] = {}  # archived content -> its size
    if library.available:
        places.append((conn.library, [f.path for f in library.files]))
        sizes.update((f.sha256, f.size) for f in library.files)
    for t in targets:
        if t.available:
            places.append((conn.targets[t.target_id], [c.path for c in t.copies]))
            sizes.update((c.sha256, c.size) for c in t.copies)
    learned: list[tuple[Key, sidecar.SidecarFile]] = []
    for store, paths in places:
        for rel in paths:
            if not wanted:
                break
            if not sidecar.is_sidecar(rel):
                continue
            path = store.local_path(rel)
            try:
                data = read_file(path, sidecar.MAX_BYTES) if path is not None else b""
                found = sidecar.parse(data) if data else None
            except OSError:
                hasher.unread += 1  # read again next run
                continue
            if found is None:
                continue
            for recorded in found.files:
                key = (found.source_id, found.item_key, recorded.ref)
                if (
                    recorded.fingerprint
                    and wanted.get(key) == (recorded.size, recorded.fingerprint)
                    and superseded.get(key) != recorded.sha256
                    and sizes.get(recorded.sha256) == recorded.size
                ):
                    del wanted[key]
                    known[key] = recorded.sha256
                    learned.append((key, recorded))
    with db.transaction():
        for (sid, item_key, ref), f in learned:
            db.record_source_file(sid, item_key, ref, f.sha256, f.size, f.fingerprint)
