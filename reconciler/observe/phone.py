"""Observation of a phone target (``ConfirmingStore``): what the phone
confirms holding this run, proven alive, as an archive or as a conduit to
Google Photos; and what the state database remembers of its deliveries,
re-learned from the world where it went back in time (freed copies, a
freeing cut short, a delivery gone here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from providers.base import (
    Confirmation,
    ConfirmingStore,
    Liveness,
    Store,
)
from reconciler.errors import ProviderError
from reconciler.model import (
    Delivery,
    FileCopy,
    TargetState,
)
from reconciler.state import StateDB


def confirming(
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


def conduit(
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
