"""The planner: ``plan(desired, world, now) -> Plan``. Pure: no I/O, no clock,
no SQLite, so the same inputs always give the same plan.

For every item of every source, in order:

1. its original must be in the library (DownloadAsset for a remote source
   whose hash is not known yet, else CopyToLibrary),
2. every available backup target must hold a verified copy (CopyToTarget;
   a target that confirms later, the phone, is *waiting* until it does),
3. the library file must be encoded for the item's age tier (EncodeForTier,
   always from the original),
4. once enough verified copies exist, and the item is old enough, it leaves
   its source (RemoveFromSource) — within the per-run deletion budget.

The parts, each a class over the one before: ``context`` (inputs, shared
look-ups), ``conduit``, ``removal``, ``items`` (one source item), ``library``
(the library's own items), and here the order of it all.

The library copy never counts as a backup. Files are matched everywhere by
the SHA-256 of the original; the same content seen twice is handled once.
"""

from __future__ import annotations

import hashlib
import operator
from datetime import datetime

from reconciler.config import DesiredState
from reconciler.independence import SAME_FILE, disk_problems
from reconciler.model import (
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FreeStagingCopy,
    Plan,
    ReleaseFromPhone,
    RemoveFromSource,
    World,
    WriteSidecar,
)
from reconciler.plan.context import CANNOT_ENCODE, LIBRARY, ON_THE_LIBRARYS_DISK
from reconciler.plan.library import LibraryPlanner

__all__ = ["CANNOT_ENCODE", "LIBRARY", "ON_THE_LIBRARYS_DISK", "fingerprint", "plan"]

_ORDER = {
    DownloadAsset: 0,
    CopyToLibrary: 1,
    CopyToTarget: 2,
    WriteSidecar: 3,
    EncodeForTier: 4,
    RemoveFromSource: 5,
    FreeStagingCopy: 6,
    ReleaseFromPhone: 7,
}


def plan(desired: DesiredState, world: World, now: datetime) -> Plan:
    return _Planner(desired, world, now).run()


class _Planner(LibraryPlanner):
    """Every source's items, then the library's, then what is freed and released."""

    def run(self) -> Plan:
        for t in self.world.targets:
            if not t.available:
                self._note(
                    "unavailable", f"target {t.target_id}", f"{t.problem}; nothing is written there"
                )
            elif not t.alive:
                self._note(
                    "waiting",
                    f"target {t.target_id}",
                    f"not proven alive this run: {t.liveness}; none of its copies counts "
                    "for a removal",
                )
        if not self.world.library.available:
            self._note(
                "unavailable", "library", f"{self.world.library.problem}; nothing is imported"
            )
        for subject, reason in self.world.library.left_out:
            self._note("unreadable", subject, reason)  # the person's files, as a source's
        refused = {t.target_id: t.not_a_backup for t in self.targets if t.not_a_backup}
        for tid, why in disk_problems(self.groups).items():
            if tid in refused:
                why = f"not a backup: {refused[tid]}; its copies are written but count for nothing"
            self._note("shared-disk", f"target {tid}", why)
        for tid, held in self.elsewhere.items():
            linked = sum(1 for _, why in held.values() if why.startswith(SAME_FILE))
            if linked:
                self._note(
                    "shared-disk",
                    f"target {tid}",
                    f"its copies of {linked} {'file are' if linked == 1 else 'files are'} "
                    "the same file as another's (hard links, as a deduplicating tool makes "
                    "them) and count for nothing; a copy of its own in place "
                    "of each link counts",
                )
            lost = sum(1 for sha in held if self._groups(sha)[0].get(tid) is None) - linked
            if lost and tid not in refused:
                self._note(
                    "shared-disk",
                    f"target {tid}",
                    f"its copies of {lost} {'file' if lost == 1 else 'files'} are reached "
                    "through a mount below its folder and are no backup (see each item); "
                    "they are left there, not copied again",
                )
        for source in self.world.sources:
            if not source.trusted:
                self._note(
                    "blocked" if source.reachable else "unavailable",
                    f"source {source.source_id}",
                    f"{source.problem}; nothing is removed from it this run",
                )
            for subject, reason in source.remarks:
                self._note("skipped", subject, reason)
            oldest = self._oldest(source)
            for item in source.items:
                if self._planned(source, item, oldest):
                    self._item(source, item)
        self._library_items()
        self._free_staging()
        self._release_settled()
        actions = sorted(self.actions, key=lambda a: _ORDER[type(a)])
        return Plan(
            actions=tuple(actions),
            notes=tuple(self.notes),
            created_at=self.now,
            config_digest=self.desired.digest,
        )


def fingerprint(world: World) -> str:
    """A digest of what the plan was computed from, for saved plans (its
    ``basis``). Taken only for a plan that is written out: it reads every
    file of every store again (6% of a no-op plan of 100k items), and a
    plan only shown, or applied at once, has no use for it."""
    h = hashlib.sha256()
    for s in world.sources:
        h.update(f"S{s.source_id}|{s.trusted}\n".encode())
        for item in s.items:
            files = ";".join(f"{f.ref}:{f.size}:{f.sha256}" for f in item.files)
            h.update(f"{item.key}|{item.version}|{files}\n".encode())
    for t in world.targets:
        # The same bytes as one joined line, fed in pieces: a target of 100k
        # copies would otherwise make a 6.5 MB string (and its encoding).
        h.update(f"T{t.target_id}|{t.available}|".encode())
        held = sorted(c.sha256 for c in t.copies)
        for i in range(0, len(held), 4096):
            h.update((b"," if i else b"") + ",".join(held[i : i + 4096]).encode())
        h.update(b"\n")
    for f in sorted(world.library.files, key=operator.attrgetter("path")):
        h.update(f"L{f.path}|{f.original_sha256}|{f.tier}|{f.sha256}|{f.role}\n".encode())
    return h.hexdigest()
