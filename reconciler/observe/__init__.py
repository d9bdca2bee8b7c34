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
from typing import Any, Protocol, runtime_checkable

import attrs

from providers.base import (
    Confirmation,
    ConfirmingStore,
    Liveness,
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
    Delivery,
    FileCopy,
    LibraryState,
    SourceItem,
    SourceState,
    TargetState,
    World,
)
from reconciler.observe import hard_links
from reconciler.observe.hasher import CachedHasher, Progress, _quiet
from reconciler.observe.library import library_state, sidecars_missing
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
    known, superseded, wanted = _still_known(sources, db.source_files())
    _known_from_sidecars(wanted, superseded, library, targets, conn, known, db, hasher)
    targets = hard_links.judged(desired, db, conn, sources, targets, known)
    return World(
        observed_at=now,
        sources=sources,
        targets=targets,
        library=library,
        known_sha256=known,
        settled=db.settled(),
        tombstones=db.tombstones(),
        removed_sha256=db.tombstoned_sha256(),
        renditions=db.renditions(_not_originals(sources, known, library)),
        library_sidecars=sidecars_missing(library, targets, conn, parsed, hasher),
        unread=hasher.unread,
    )


def _not_originals(
    sources: tuple[SourceState, ...], known: Mapping[Key, str], library: LibraryState
) -> set[str]:
    """The SHA-256s sources hold that are no original in the library: only
    these can be a file the tool made by encoding, come back (the planner's
    ``_rendition``). A converged run has none, and reads no rendition."""
    found: set[str] = set()
    for source in sources:
        sid = source.source_id
        for item in source.items:
            for f in item.files:
                sha = f.sha256 or known.get((sid, item.key, f.ref))
                if sha is not None:
                    found.add(sha)
    if found:  # (an emptied source asks nothing of the library)
        found.difference_update(map(itemgetter(2), library.files))  # original_sha256
    return found


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
            return _conduit(tid, store, copies, db, now)
        return _confirming(tid, store, copies, db)
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


def _confirming(
    tid: str, store: ConfirmingStore, copies: tuple[FileCopy, ...], db: StateDB
) -> TargetState:
    """A target whose copies count only once the device confirms them.

    First the device must prove, this run, that it receives files (the
    phone's canary); without that nothing of it counts, though what it was
    sent is still known (so it is not sent again). Then every copy is asked
    about now: a record of an earlier confirmation alone never counts. A
    freed copy counts while the device still announces the version recorded
    when it was confirmed, by the same device and folder (``identity``).
    A delivery this machine's Syncthing ignores (a pattern of the person's,
    ``/2022``) never reaches the phone: it is remarked on, with the pattern,
    rather than left waiting in silence.

    A device that goes away during the run is not asked further: its store
    raises a transient ProviderError rather than answer "not held", and the
    device is observed as one not alive this run (``_gone_away``): waiting,
    nothing recorded forgotten, nothing sent again.
    """
    live = store.prove_alive()
    if not live.alive:
        # A fault of this machine's met on the way (its disk full, its
        # Syncthing refusing the folder) makes the store unavailable: a
        # person must act here, no phone is to be waited for.
        avail = store.availability()
        if not avail.available:
            return TargetState(
                target_id=tid, kind=store.kind, available=False, problem=avail.reason
            )
    try:
        return _confirming_as(tid, store, copies, db, live)
    except ProviderError as e:
        gone = _gone_away(store, live, e)
        if gone is None:
            raise
        return _confirming_as(tid, store, copies, db, gone)


def _gone_away(store: ConfirmingStore, live: Liveness, error: ProviderError) -> Liveness | None:
    """How to observe a device again after ``error`` was raised while asking
    about its copies (what was recorded meanwhile was rolled back): one
    shown alive this run that has gone away since (the error is transient
    and its store no longer holds it alive) is observed as a device not
    alive this run, like one offline from the start. None: the error stands
    (Syncthing itself not answering: the target is unavailable)."""
    if not (error.transient and live.alive):
        return None
    now = store.prove_alive()
    return now if not now.alive else None


def _confirming_as(
    tid: str, store: ConfirmingStore, copies: tuple[FileCopy, ...], db: StateDB, live: Liveness
) -> TargetState:
    """``_confirming`` with the device's liveness as ``live``."""
    identity = store.identity
    known = db.deliveries(tid)
    seen = {c.path for c in copies}
    confirmed: list[FileCopy] = []
    pending: list[Delivery] = []
    remarks: list[tuple[str, str]] = []
    freed: dict[str, dict[str, Any]] = {}
    with db.transaction():
        db.record_liveness(tid, live.alive, live.reason, live.round_trip_s)
        for c in copies:
            row = known.get(c.path)
            ours = row is not None and row["sha256"] == c.sha256
            recorded = ours and row is not None and bool(row["confirmed_at"])
            if not live.alive:
                if recorded and row is not None and row["identity"] == identity:
                    confirmed.append(c)  # known, not counted: the target is not alive
                else:
                    pending.append(_delivery(c, row if ours else None))
                continue
            answer = store.confirm(c.path)
            if not answer.held and ours and row is not None and not row["freed_at"]:
                answer = _unfinished_freeing(store, c.path, answer)
            if answer.held:
                if not (
                    recorded
                    and row is not None
                    and row["identity"] == identity
                    and row["evidence"] == answer.evidence
                ):
                    db.record_confirmation(
                        tid, c.path, c.sha256, c.size, identity=identity, evidence=answer.evidence
                    )
                confirmed.append(c)
            else:
                if store.ignored_here(c.path):
                    remarks.append((f"{tid}:{c.path}", f"{answer.reason}; it does not count"))
                pending.append(_delivery(c, row if ours else None))
        # Freed staging copies are gone from here; the device holds them.
        for path, row in known.items():
            if path in seen or not (row["freed_at"] and row["confirmed_at"]):
                continue
            if row["identity"] != identity:
                continue  # confirmed by another phone or folder: not a copy here
            # A "no" comes only from a device that can be asked now: one gone
            # away meanwhile raises (see ``_gone_away``), as forgetting the
            # copy would send the file to it a second time.
            if live.alive and not store.confirm_freed(path, row["evidence"] or "").held:
                db.forget_delivery(tid, path)  # lost on the phone: sent again
                continue
            freed[path] = row
        waiting = _freed_unrecorded(tid, store, db, known, seen, live, freed)
        pending.extend(waiting)
        # A confirmation stands only while this run saw the copy held (or, the
        # phone away, recorded by this phone and folder): one the device no
        # longer holds is a waiting delivery again, and one whose staging file
        # is gone here (not freed by us) is no delivery at all, confirmed or
        # not. The census counts these rows, so they must say what the phone
        # holds now.
        kept = {c.path for c in confirmed} | set(freed) | {d.path for d in waiting}
        for path, row in known.items():
            if path in kept or (row["freed_at"] and row["confirmed_at"]):
                continue  # (a freed row: judged above)
            if path in seen or not _gone_here(store, path):
                if row["confirmed_at"]:  # (unlisted, but there: unreadable this run)
                    db.unconfirm_delivery(tid, path)
            else:
                db.forget_delivery(tid, path)
    confirmed.extend(
        FileCopy(store_id=tid, path=path, size=row["size"] or 0, mtime_ns=0, sha256=row["sha256"])
        for path, row in freed.items()
    )
    how = f"canary round trip {live.round_trip_s or 0:.2f} s" if live.alive else live.reason
    return TargetState(
        target_id=tid,
        kind=store.kind,
        available=True,
        copies=tuple(confirmed),
        pending=tuple(pending),
        freed=frozenset(freed),
        alive=live.alive,
        liveness=how,
        remarks=tuple(remarks),
    )


@runtime_checkable
class _TakesBack(Protocol):
    """A confirming store whose freeing of a staging copy can stop half-way
    (``providers.syncthing``: ``freed_here``, ``take_back``)."""

    def freed_here(self, rel_path: str) -> bool: ...

    def take_back(self, rel_path: str) -> Confirmation: ...


def _unfinished_freeing(store: ConfirmingStore, path: str, answer: Confirmation) -> Confirmation:
    """A delivery whose staging copy (these very bytes: the caller checked)
    is still here, under one of the tool's freed paths, while no row records
    it freed: a freeing stopped between its ignore line and the deletion (a
    run killed there). Ignored here, the phone's copy could never be shown
    held again, and the delivery would wait for ever: the freeing is taken
    back (the store un-ignores the path) and the phone asked afresh, so it
    counts again on this run's proof and the freeing is planned anew."""
    if not isinstance(store, _TakesBack) or not store.freed_here(path):
        return answer
    return store.take_back(path)


@runtime_checkable
class _RecognisesFreed(Protocol):
    """A confirming store that can tell its own freed paths and prove, with
    no record of the freeing left, that the device holds what was freed
    there (``providers.syncthing``: ``freed_here``, ``recognise_freed``)."""

    def freed_here(self, rel_path: str) -> bool: ...

    def recognise_freed(self, rel_path: str, size: int, evidence: str) -> Confirmation: ...


def _freed_unrecorded(
    tid: str,
    store: ConfirmingStore,
    db: StateDB,
    known: Mapping[str, dict[str, Any]],
    seen: set[str],
    live: Liveness,
    freed: dict[str, dict[str, Any]],
) -> list[Delivery]:
    """Deliveries gone from here that no row records freed, at one of the
    tool's freed paths: the state DB restored from a backup older than the
    freeing (or lost, and the delivery taken back by ``put``). The tool
    freed them all the same, and the phone may hold them: sending them
    again would put a second copy there, for every freed file. Each is
    recorded confirmed and freed again once the device proves, this run,
    that it holds that very copy (added to ``freed``: it counts); the
    device not alive, it waits (returned: pending, not sent again); the
    device's "no" forgets it, as a freed copy lost there (sent again)."""
    if not isinstance(store, _RecognisesFreed):
        return []
    identity = store.identity
    waiting: list[Delivery] = []
    for path, row in known.items():
        if path in seen or (row["freed_at"] and row["confirmed_at"]):
            continue
        mine = bool(row["confirmed_at"]) and row["identity"] == identity
        if (row["confirmed_at"] and not mine) or not store.freed_here(path):
            continue  # another phone's confirmation, or deleted here: no delivery
        if not _gone_here(store, path):
            continue  # something at its path after all: not the freed copy
        size = row["size"] or 0
        if not live.alive:
            copy = FileCopy(store_id=tid, path=path, size=size, mtime_ns=0, sha256=row["sha256"])
            waiting.append(_delivery(copy, row))
            continue
        answer = store.recognise_freed(path, size, (row["evidence"] or "") if mine else "")
        if not answer.held:
            db.forget_delivery(tid, path)  # not on the phone (any more): sent again
            continue
        db.record_confirmation(
            tid, path, row["sha256"], size, identity=identity, evidence=answer.evidence
        )
        db.record_freed(tid, path, answer.evidence)
        freed[path] = row
    return waiting


def _gone_here(store: Store, path: str) -> bool:
    """Nothing at ``path`` in the store's folder now. A file there that the
    listing left out (unreadable this run: read again next run) is not gone."""
    local = store.local_path(path)
    return local is not None and not os.path.lexists(local)


def _conduit(
    tid: str, store: ConfirmingStore, copies: tuple[FileCopy, ...], db: StateDB, now: datetime
) -> TargetState:
    """A phone that passes files on to Google Photos and lets them go.

    Only what the tool itself put there is its business: a file counts as
    a delivery only at the path where ``put`` wrote it (its deliveries row,
    made then) and with the bytes it wrote. Anything else in the folder is
    the person's (a PDF, a photo copied there by hand, the tool's photo
    copied under another name): never confirmed, released or counted.

    Every delivery ever confirmed (by this device and folder) is
    *delivered*, with the time of that confirmation, and is never sent
    again, whether the tool released it or the phone removed it. Deliveries
    still here are settling (``copies``: what may be released); one the
    phone no longer holds is remarked on, not resent; one this machine's
    Syncthing ignores (the person's own ``.stignore`` pattern) is remarked
    on and kept, as a release would never reach the phone. Only a phone
    that answers now says it removed a file: one gone away during the run
    makes ``confirm`` raise, and is observed as not alive this run
    (``_gone_away``).
    """
    live = store.prove_alive()
    try:
        return _conduit_as(tid, store, copies, db, now, live)
    except ProviderError as e:
        gone = _gone_away(store, live, e)
        if gone is None:
            raise
        return _conduit_as(tid, store, copies, db, now, gone)


def _conduit_as(
    tid: str,
    store: ConfirmingStore,
    copies: tuple[FileCopy, ...],
    db: StateDB,
    now: datetime,
    live: Liveness,
) -> TargetState:
    """``_conduit`` with the device's liveness as ``live``."""
    identity = store.identity
    known = db.deliveries(tid)
    delivered: dict[str, datetime] = {}
    held: list[FileCopy] = []
    pending: list[Delivery] = []
    remarks: list[tuple[str, str]] = []
    unsettled = 0
    with db.transaction():
        db.record_liveness(tid, live.alive, live.reason, live.round_trip_s)
        for path, found in list(known.items()):
            if not found["delivered_at"]:
                # A confirmation of a file the tool never put here (recorded
                # by an earlier version): no delivery of ours.
                db.forget_delivery(tid, path)
                del known[path]
        for c in copies:
            row = known.get(c.path) or {}
            if row.get("sha256") != c.sha256:
                continue  # the person's file (or bytes changed here): not ours
            unsettled += c.size
            recorded = bool(row["confirmed_at"]) and row["identity"] == identity
            answer = store.confirm(c.path) if live.alive else None
            if answer is not None and not answer.held and store.ignored_here(c.path):
                unsettled -= c.size
                remarks.append(
                    (
                        f"{tid}:{c.path}",
                        "ignored by this machine's .stignore (a pattern of yours): a release "
                        "would not reach the phone, so it is kept here and there",
                    )
                )
                if not recorded:
                    pending.append(_delivery(c, row))
                continue
            if recorded:
                held.append(c)
                if answer is not None and not answer.held:
                    remarks.append(
                        (f"{tid}:{c.path}", "the phone removed it before it settled; not resent")
                    )
            elif answer is not None and answer.held:
                db.record_confirmation(
                    tid,
                    c.path,
                    c.sha256,
                    c.size,
                    identity=identity,
                    evidence=answer.evidence,
                    at=now,
                )
                known[c.path] = {**row, "confirmed_at": now.isoformat(), "identity": identity}
                held.append(c)
            else:
                pending.append(_delivery(c, row))
        _retire_gone(tid, store, copies, db, known, now)
        latest = max(now, datetime.now(UTC))  # as ``CachedHasher.latest``
        for path, row in known.items():
            if row["confirmed_at"] and row["identity"] == identity:
                when = datetime.fromisoformat(row["confirmed_at"])
                if when > latest:
                    # Confirmed "later than now": a clock ran ahead when it
                    # was recorded. The settle period starts again from now
                    # (kept, so later runs count from here): a release is
                    # never earlier than a right clock would make it.
                    when = now
                    db.restart_settling(tid, path, now)
                # The same bytes delivered twice (another phone's row taken
                # over): settled once the later one has.
                delivered[row["sha256"]] = max(when, delivered.get(row["sha256"], when))
    how = f"canary round trip {live.round_trip_s or 0:.2f} s" if live.alive else live.reason
    return TargetState(
        target_id=tid,
        kind=store.kind,
        available=True,
        copies=tuple(held),
        pending=tuple(pending),
        alive=live.alive,
        liveness=how,
        role="conduit",
        delivered=delivered,
        on_phone_bytes=unsettled,
        remarks=tuple(remarks),
    )


def _retire_gone(
    tid: str,
    store: ConfirmingStore,
    copies: tuple[FileCopy, ...],
    db: StateDB,
    known: dict[str, dict[str, Any]],
    now: datetime,
) -> None:
    """A conduit's delivery whose bytes are no longer at its path here
    (deleted or changed here before its release, or released by a run the
    state DB, restored from a backup, does not remember) has left the
    phone with them: Syncthing announces the deletion or the change. A
    confirmed one is delivered still (never sent again) and no longer
    settling: recorded released, so that the census and ``status`` do not
    count it on the phone, with a release due, for ever. Nothing is
    released for it: a release is only ever of a file here (``copies``).
    One never confirmed is no delivery at all (as an archive's). A file
    there that the listing left out (unreadable this run) is not gone."""
    here = {c.path: c.sha256 for c in copies}
    for path, row in list(known.items()):
        if row["freed_at"] or here.get(path) == row["sha256"]:
            continue
        if path not in here and not _gone_here(store, path):
            continue
        if row["confirmed_at"]:
            db.record_freed(tid, path)
            known[path] = {**row, "freed_at": now.isoformat()}
        else:
            db.forget_delivery(tid, path)
            del known[path]


def _delivery(c: FileCopy, row: dict[str, Any] | None) -> Delivery:
    since = row["delivered_at"] if row else None
    return Delivery(
        sha256=c.sha256,
        path=c.path,
        delivered_at=datetime.fromisoformat(since) if since else datetime.now(UTC),
    )


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
