"""The census: how many items are in each state, from the state database alone.

``reconcile status``, the metrics textfile and the run history (one census
per run, for the report's plots) all count the same way, here. No provider
is asked: only SQLite and a stat of each store's root (which disk it is on,
so two targets on one disk count once, as the removal gate counts them; two
folders of one phone count once too), and the few library sidecars that
alone say which item a file is part of (``items_by_sidecar``).

An *item* is what the planner treats as one: an iCloud asset (every file
of it: the still, its Live Photo video, the edit, the RAW), a folder
source's files sharing a stem (a Live Photo pair), and what a tombstone
names as removed together; a library file no source speaks for is grouped
as the item's sidecar in the library lists its files (read from the
library only then: a state DB lost, a library put back, an edit named
unlike its still), else with those sharing its stem. Its XMP sidecar in the library
(``<original>.xmp``, read as ours or not read yet) is part of it, as the
removal gate holds it: an item is on a target only while the target holds
its sidecar too. A library file gone (deleted, a disk
replaced; its row set aside in ``library_gone`` until the planner puts it
back from a target) still stands for its item: one off-loaded from its
source is counted by the copies the targets hold, and one with none, in
no source either, as in the library only (never archived). Every asset
of an iCloud source's last listing (kept between runs,
``icloud_listing``) is an item, downloaded or not: one with a file no
download stands for (its download failing on every run, a plan no apply
followed yet, an edit made again) is in a source only until that file is
fetched. Each is counted once, by its best state:

    removed > archived_2plus > waiting_phone > archived_1 > library_only > source_only

(an item on the NAS whose second copy the phone has not confirmed yet is
waiting on the phone: that is what a person with a NAS and a phone wants to
see moving). ``removed`` also needs the copies the removal needed
(``policy.copies``, counted as the gate counts them): an item off-loaded
from its source that has fewer now is counted by the copies it has, so no
state says "safe" of an item with too few copies. One its source holds
again (taken back from Recently Deleted and listed since; the same bytes
back in its folder) is counted where it is now: in its source, its bytes
not off-loaded. ``failed`` is counted
besides: items with an action that failed in the last apply that acted
(they are also counted in their state).

A copy counts here as the tool records it (a hash read from a target, a
confirmation the phone gave); the gate still re-checks every copy at the
moment of a removal, so this is a picture, never a proof.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from reconciler.census.counts import STATES, Census, Oldest
from reconciler.census.items import (
    Item,
    beside,
    gone_from_library,
    is_counted,
    items_by_sidecar,
    our_sidecar,
    stem,
    under,
)
from reconciler.census.key import census_key
from reconciler.census.sources import icloud_items, listed_after
from reconciler.census.targets import UNPLUGGED, device_of, held_by_targets
from reconciler.census.verdict import Proof, failed_item, last_failures, proof
from reconciler.config import DesiredState, FolderSource, ICloudSource, same_disk_ok
from reconciler.independence import backup_groups, count_backups, phones_of
from reconciler.state import StateDB

__all__ = ["STATES", "Census", "Proof", "census", "census_key", "counted_now", "proof"]


def census(db: StateDB, desired: DesiredState) -> Census:
    """Count every item the database knows by its best state (module docstring)."""
    conn = db.conn
    items: dict[str, Item] = {}
    by_sha: dict[str, str] = {}  # original SHA-256 -> item key

    def add(key: str, name: str, sha: str, captured_at: float | None, library: bool) -> Item:
        item = items.get(key)
        if item is None:
            item = items[key] = Item(name, library)
        item.add(sha, captured_at)
        by_sha.setdefault(sha, key)
        return item

    # Which item each original belongs to, where a source said so: items
    # removed (their tombstones) and iCloud assets (an edit, a RAW or a
    # Live Photo's video is named unlike its still); the rest by stem.
    tombstones = db.tombstones()
    item_of: dict[str, str] = {}
    for (sid, key), content in tombstones.items():
        for sha in content:
            item_of.setdefault(sha, f"{sid}:{key}")
    for sid, key, sha in conn.execute("select source_id, item_key, sha256 from source_files"):
        item_of.setdefault(sha, f"{sid}:{key}")
    # Where no source says so (the records lost with the state DB), the
    # item's sidecar in the library does: never a file's name.
    items_by_sidecar(db, desired.library.path, item_of)
    tombstoned: frozenset[str] = frozenset().union(*tombstones.values())

    tiers: dict[str, int] = {}
    library_bytes = 0
    encoded: list[tuple[str, int, str]] = []  # (original, size, tier) of each re-encoded file
    item_at: dict[str, Item] = {}  # library path -> its item (for the sidecars beside)
    sidecars: list[tuple[str, str]] = []  # (path, SHA-256) of the items' own, in the library
    sql = "select path, original_sha256, sha256, tier, size, captured_at, role from library"
    for path, original, sha, tier, size, captured, role in conn.execute(sql):
        library_bytes += size or 0
        if sha != original:
            encoded.append((original, size or 0, str(tier)))
        if not is_counted(path, role or ""):
            if our_sidecar(path, role or ""):
                sidecars.append((path, sha))
            continue
        tiers[tier] = tiers.get(tier, 0) + 1
        key = item_of.get(original) or "library:" + stem(path)
        item = items.get(key)
        if item is None:  # add(), inlined: this loop runs once per library file
            item = items[key] = Item(path, True)
        item.add(original, captured)
        by_sha.setdefault(original, key)
        item_at[path] = item

    icloud_bytes = 0
    back: set[tuple[str, str]] = set()  # tombstones whose item its source holds again
    for sid, src in desired.sources.items():
        if isinstance(src, FolderSource):
            root = src.path.rstrip("/") + "/"
            present: set[str] = set()  # (of the contents removed)
            for path, sha, captured in under(db, root, "path, sha256, captured_at"):
                rel = path[len(root) :]
                if sha in tombstoned:
                    present.add(sha)
                if sha not in by_sha and is_counted(rel):
                    add(f"{sid}:{stem(rel)}", f"{sid}:{rel}", sha, captured, False)
            # A folder path is no identity: the same bytes back in the folder
            # (copied back, synced down again) are in their source again.
            if present:
                back.update(k for k, c in tombstones.items() if k[0] == sid and c & present)
        elif isinstance(src, ICloudSource):
            # The asset's record ids are: one listed again since its removal
            # (taken back from Recently Deleted) is in iCloud again.
            older = set(listed_after(db, sid))
            left, again = icloud_items(db, sid, src, tombstones, older, by_sha, add)
            icloud_bytes += left
            back.update((sid, key) for key in again)
    sidecars += gone_from_library(db, item_of, by_sha, items, item_at, add)
    for path, sha in sidecars:
        # The item's sidecar is part of it (DESIGN: every file of the item,
        # its XMP sidecar too, on ``copies`` targets), as the removal gate
        # and the planner hold it: the library's is the one the targets'
        # copies are kept from. One beside no file of an item (the item's
        # sidecar as the person copied it under another name, kept on the
        # targets as a file of theirs: the planner's ``_library_sidecar``)
        # is counted as a file of its own.
        owner = beside(path, item_at)
        if owner is not None:
            owner.sidecars += (sha,)
        else:
            add("library:" + stem(path), path, sha, None, True)
    removed_shas: frozenset[str] = frozenset().union(
        *(content for k, content in tombstones.items() if k not in back)
    )

    wanted = {original for original, _, _ in encoded}
    holdings, targets, waiting, waiting_since, devices, sizes = held_by_targets(db, desired, wanted)
    library_dev = device_of(desired.library.path)
    unplugged = {tid for tid, dev in devices.items() if dev == UNPLUGGED}
    known = {tid: None if dev == UNPLUGGED else dev for tid, dev in devices.items()}
    groups = backup_groups(
        known,
        library=library_dev,
        same_disk_ok=same_disk_ok(desired),
        phones=phones_of(desired.targets),  # one phone is one backup, whatever its folders
    )
    for tid in unplugged - same_disk_ok(desired):
        # Which disk a target not mounted now is on cannot be told: its
        # copies count as last recorded, but never as more backups than
        # one for all such targets together (two folders of one unplugged
        # disk are not two backups; one unplugged disk is still one).
        groups[tid] = "disk:not mounted now"
    # Every target its own backup (the common case): a file's count is how
    # many targets hold it, counted for all files at once; an item's is the
    # fewest of its files' where that is every target or none (most items:
    # one file, or its sidecar held beside it everywhere), else looked at.
    separate = None not in groups.values() and len(set(groups.values())) == len(groups)
    per_sha: Counter[str] = Counter()
    if separate:
        for held in holdings.values():
            per_sha.update(held)
    everywhere = len(holdings)
    held_by = list(holdings.items())
    counts = dict.fromkeys(STATES, 0)
    oldest: tuple[float, str] | None = None
    need = desired.policy.copies
    for item in items.values():
        shas = item.shas
        if len(shas) == 1 and not item.sidecars:  # many items: one file
            sha = shas[0]
            n = (
                per_sha[sha]
                if separate
                else count_backups([t for t, held in held_by if sha in held], groups)
            )
            pending = sha in waiting
            removed = sha in removed_shas
        else:
            every = [*shas, *item.sidecars]
            n = min(map(per_sha.__getitem__, every)) if separate else -1
            if n not in (0, everywhere):
                on = [t for t, held in held_by if held.issuperset(every)]
                n = count_backups(on, groups)
            pending = not waiting.isdisjoint(every)
            removed = removed_shas.issuperset(shas)
        # Removed is the best state only while the copies it was removed
        # for are there: one that lost a copy (deleted on a target, the
        # requirement raised, two targets now found on one disk) is counted
        # by the copies it has, as the planner copies it again.
        if removed and n >= need:
            counts["removed"] += 1
            continue
        if n >= 2:
            counts["archived_2plus"] += 1
        elif pending:
            counts["waiting_phone"] += 1
        elif n == 1:
            counts["archived_1"] += 1
        elif item.in_library:
            counts["library_only"] += 1
        else:
            counts["source_only"] += 1
        if n < need and item.captured_at is not None:
            when = (item.captured_at, item.name)
            if oldest is None or when < oldest:
                oldest = when

    failures, run_id = last_failures(db)
    failed = {failed_item(f, by_sha) for f in failures}
    counts["failed"] = len(failed)
    offloaded = sum(
        size or 0
        for sid, key, size in conn.execute("select source_id, item_key, size from tombstones")
        if (sid, key) not in back
    )
    # Each encoded file against its original's size where a target holds
    # that original (every original does once archived).
    by_tier: dict[str, int] = {}
    for original, n, tier in encoded:
        by_tier[tier] = by_tier.get(tier, 0) + max(0, sizes.get(original, 0) - n)
    saved = sum(by_tier.values())
    return Census(
        items=counts,
        tiers=dict(sorted(tiers.items())),
        targets=targets,
        library_bytes=library_bytes,
        saved_by_compression=saved,
        saved_by_tier=dict(sorted(by_tier.items())),
        offloaded=offloaded,
        icloud_bytes=icloud_bytes,
        oldest_unarchived=(
            None
            if oldest is None
            else Oldest(name=oldest[1], captured_at=datetime.fromtimestamp(oldest[0], UTC))
        ),
        waiting_since=waiting_since,
        failures=tuple(f for f, _ in failures),
        failed_run=run_id,
    )


def counted_now(db: StateDB, desired: DesiredState) -> Census:
    """The census of now: the one a run stored at the same key (module
    docstring of history; ``census_key``) when there is one, else counted.
    The failed files are read from the journal either way (the stored
    JSON has only their count)."""
    stored = db.census_at(census_key(db, desired))
    if stored is None:
        return census(db, desired)
    failures, run_id = last_failures(db)
    return Census.from_json(stored, failures=tuple(f for f, _ in failures), failed_run=run_id)
