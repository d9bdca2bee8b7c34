"""The census: how many items are in each state, from the state database alone.

``reconcile status``, the metrics textfile and the run history (one census
per run, for the report's plots) all count the same way, here. No provider
is asked: only SQLite and a stat of each store's root (which disk it is on,
so two targets on one disk count once, as the removal gate counts them; two
folders of one phone count once too).

An *item* is what the planner treats as one: an iCloud asset (every file
of it: the still, its Live Photo video, the edit, the RAW), a folder
source's files sharing a stem (a Live Photo pair), and what a tombstone
names as removed together; a library file no source speaks for is grouped
with those sharing its stem. Its XMP sidecar in the library
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

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from providers.filesystem import read_marker
from providers.physical_disks import disk_at
from reconciler import independence
from reconciler.config import (
    DesiredState,
    FilesystemTarget,
    FolderSource,
    ICloudSource,
    SyncthingTarget,
    same_disk_ok,
)
from reconciler.independence import backup_groups, count_backups, phones_of
from reconciler.media import kinds
from reconciler.media.kinds import is_archivable
from reconciler.model import SIDECAR_ROLE
from reconciler.schema import SCHEMA_VERSION
from reconciler.state import StateDB

#: The states, in the order people read them (and the JSON keeps).
STATES = (
    "source_only",
    "library_only",
    "archived_1",
    "archived_2plus",
    "waiting_phone",
    "removed",
    "failed",
)
_SHA = re.compile(r"[0-9a-f]{64}")
_JUNK_ENDINGS = frozenset("bBiI\r")


@attrs.frozen(kw_only=True)
class Failure:
    """An action that failed in the last apply that acted, named by its file."""

    subject: str
    kind: str
    error: str
    at: str


@attrs.frozen(kw_only=True)
class Oldest:
    name: str
    captured_at: datetime


@attrs.frozen(kw_only=True)
class Census:
    items: Mapping[str, int]
    tiers: Mapping[str, int]
    #: target id -> (files, bytes) as the tool knows them.
    targets: Mapping[str, tuple[int, int]]
    library_bytes: int
    saved_by_compression: int
    #: tier -> bytes its encodes saved (they sum to ``saved_by_compression``).
    saved_by_tier: Mapping[str, int]
    offloaded: int
    icloud_bytes: int
    oldest_unarchived: Oldest | None
    #: target id -> when its oldest unconfirmed delivery was made (ISO text).
    waiting_since: Mapping[str, str]
    #: Not in to_json (the contract's shape); status shows and prints them.
    failures: tuple[Failure, ...] = ()
    failed_run: int | None = None

    def to_json(self) -> dict[str, Any]:
        oldest = self.oldest_unarchived
        return {
            "items": {s: int(self.items.get(s, 0)) for s in STATES},
            "tiers": dict(self.tiers),
            "targets": {t: {"files": f, "bytes": b} for t, (f, b) in self.targets.items()},
            "bytes": {
                "library": self.library_bytes,
                "saved_by_compression": self.saved_by_compression,
                "offloaded": self.offloaded,
                "icloud": self.icloud_bytes,
            },
            "oldest_unarchived": (
                None
                if oldest is None
                else {"name": oldest.name, "captured_at": oldest.captured_at.isoformat()}
            ),
            "waiting_since": dict(self.waiting_since),
            "saved_by_tier": dict(self.saved_by_tier),
        }

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], *, failures: tuple[Failure, ...] = (), failed_run: int | None
    ) -> Census:
        """``to_json``'s document back (a stored census), with the failed
        files it leaves out."""
        oldest = doc["oldest_unarchived"]
        return cls(
            items=dict(doc["items"]),
            tiers=dict(doc["tiers"]),
            targets={t: (int(v["files"]), int(v["bytes"])) for t, v in doc["targets"].items()},
            library_bytes=int(doc["bytes"]["library"]),
            saved_by_compression=int(doc["bytes"]["saved_by_compression"]),
            saved_by_tier=dict(doc["saved_by_tier"]),
            offloaded=int(doc["bytes"]["offloaded"]),
            icloud_bytes=int(doc["bytes"]["icloud"]),
            oldest_unarchived=(
                None
                if oldest is None
                else Oldest(
                    name=oldest["name"], captured_at=datetime.fromisoformat(oldest["captured_at"])
                )
            ),
            waiting_since=dict(doc["waiting_since"]),
            failures=failures,
            failed_run=failed_run,
        )


class _Item:
    """One item being counted (a plain class: a census makes 100k of these)."""

    __slots__ = ("captured_at", "in_library", "name", "shas", "sidecars")

    def __init__(self, name: str, in_library: bool) -> None:
        self.name = name
        self.in_library = in_library
        self.shas: list[str] = []
        #: Its XMP sidecar(s) in the library: part of the item, on the
        #: targets as its files are, but no original (never "removed").
        self.sidecars: tuple[str, ...] = ()
        self.captured_at: float | None = None

    def add(self, sha: str, captured_at: float | None) -> None:
        self.shas.append(sha)
        if captured_at is not None and (self.captured_at is None or captured_at < self.captured_at):
            self.captured_at = captured_at


def _stem(path: str) -> str:
    dot = path.rfind(".")
    return path[:dot] if dot > path.rfind("/") else path


def _counted(rel: str) -> bool:
    """A file of an item: not a sidecar (written with its item), not junk."""
    name = rel[rel.rfind("/") + 1 :]
    if name[-4:].lower() == ".xmp":
        return False
    # is_archivable refuses hidden files and a few junk names (Thumbs.db,
    # desktop.ini, Icon\r): asked only for those, 100k photos cost nothing.
    if rel[:1] == "." or "/." in rel or "\\" in rel or name[-1:] in _JUNK_ENDINGS:
        return is_archivable(rel)
    return bool(name)


def _our_sidecar(rel: str, role: str) -> bool:
    """Is this library row an item's own XMP sidecar, as far as the database
    tells? One the library read as ours (role "sidecar"), or one not read
    yet (no role: written by the run that just ended, which reads none it
    writes): ours until read otherwise. Another program's .xmp (read, and
    given its original's role) is no file of the item: never copied."""
    name = rel[rel.rfind("/") + 1 :]
    hidden = name[:1] == "." or rel[:1] == "." or "/." in rel
    return name[-4:].lower() == ".xmp" and role in ("", SIDECAR_ROLE) and not hidden


#: ``<original>.<item tag>.xmp``: the tag ``sidecar.name_for`` gives a
#: second item's sidecar beside the same original.
_TAGGED = re.compile(r"(.+)\.[0-9a-f]{8}")


def _beside(path: str, item_at: Mapping[str, _Item]) -> _Item | None:
    """The item whose library file a sidecar at ``path`` sits beside:
    ``<original>.xmp`` or ``<original>.<item tag>.xmp``; None: no file of
    an item counted is there."""
    bare = path[:-4]
    item = item_at.get(bare)
    if item is None and (tagged := _TAGGED.fullmatch(bare)):
        item = item_at.get(tagged[1])
    return item


def census(db: StateDB, desired: DesiredState) -> Census:
    """Count every item the database knows by its best state (module docstring)."""
    conn = db.conn
    items: dict[str, _Item] = {}
    by_sha: dict[str, str] = {}  # original SHA-256 -> item key

    def add(key: str, name: str, sha: str, captured_at: float | None, library: bool) -> _Item:
        item = items.get(key)
        if item is None:
            item = items[key] = _Item(name, library)
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
    tombstoned: frozenset[str] = frozenset().union(*tombstones.values())

    tiers: dict[str, int] = {}
    library_bytes = 0
    encoded: list[tuple[str, int, str]] = []  # (original, size, tier) of each re-encoded file
    item_at: dict[str, _Item] = {}  # library path -> its item (for the sidecars beside)
    sidecars: list[tuple[str, str]] = []  # (path, SHA-256) of the items' own, in the library
    sql = "select path, original_sha256, sha256, tier, size, captured_at, role from library"
    for path, original, sha, tier, size, captured, role in conn.execute(sql):
        library_bytes += size or 0
        if sha != original:
            encoded.append((original, size or 0, str(tier)))
        if not _counted(path):
            if _our_sidecar(path, role or ""):
                sidecars.append((path, sha))
            continue
        tiers[tier] = tiers.get(tier, 0) + 1
        key = item_of.get(original) or "library:" + _stem(path)
        item = items.get(key)
        if item is None:  # add(), inlined: this loop runs once per library file
            item = items[key] = _Item(path, True)
        item.add(original, captured)
        by_sha.setdefault(original, key)
        item_at[path] = item

    icloud_bytes = 0
    back: set[tuple[str, str]] = set()  # tombstones whose item its source holds again
    for sid, src in desired.sources.items():
        if isinstance(src, FolderSource):
            root = src.path.rstrip("/") + "/"
            present: set[str] = set()  # (of the contents removed)
            for path, sha, captured in _under(db, root, "path, sha256, captured_at"):
                rel = path[len(root) :]
                if sha in tombstoned:
                    present.add(sha)
                if sha not in by_sha and _counted(rel):
                    add(f"{sid}:{_stem(rel)}", f"{sid}:{rel}", sha, captured, False)
            # A folder path is no identity: the same bytes back in the folder
            # (copied back, synced down again) are in their source again.
            if present:
                back.update(k for k, c in tombstones.items() if k[0] == sid and c & present)
        elif isinstance(src, ICloudSource):
            # The asset's record ids are: one listed again since its removal
            # (taken back from Recently Deleted) is in iCloud again.
            older = set(_listed_after(db, sid))
            left, again = _icloud(db, sid, src, tombstones, older, by_sha, add)
            icloud_bytes += left
            back.update((sid, key) for key in again)
    sidecars += _gone_from_library(db, item_of, by_sha, items, item_at, add)
    for path, sha in sidecars:
        # The item's sidecar is part of it (DESIGN: every file of the item,
        # its XMP sidecar too, on ``copies`` targets), as the removal gate
        # and the planner hold it: the library's is the one the targets'
        # copies are kept from. One beside no file of an item is left out.
        owner = _beside(path, item_at)
        if owner is not None:
            owner.sidecars += (sha,)
    removed_shas: frozenset[str] = frozenset().union(
        *(content for k, content in tombstones.items() if k not in back)
    )

    wanted = {original for original, _, _ in encoded}
    holdings, targets, waiting, waiting_since, devices, sizes = _targets(db, desired, wanted)
    library_dev = _device(desired.library.path)
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

    failures, run_id = _failures(db)
    failed = {_failed_item(f, by_sha) for f in failures}
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
    failures, run_id = _failures(db)
    return Census.from_json(stored, failures=tuple(f for f, _ in failures), failed_run=run_id)


#: The modules whose rules the census counts by: a change to any of them
#: (a release, a checkout) makes a stored census stale.
_COUNTING_MODULES = (__file__, independence.__file__, kinds.__file__)


@functools.cache
def _counting_code() -> str:
    """The counting rules' own text, hashed (once per process)."""
    h = hashlib.sha256()
    for path in _COUNTING_MODULES:
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:  # installed without its source: the version says it
            h.update(_version().encode())
    return h.hexdigest()[:16]


def _version() -> str:
    # Loaded here, seldom: importlib.metadata (with email's parser) is a
    # tenth of what a plan imports, and only a copy without its source asks.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconcile")
    except PackageNotFoundError:
        return "unknown"


def census_key(db: StateDB, desired: DesiredState) -> str:
    """What a census is a function of, as one string: the rows written to
    the tables it counts (the state DB's change counter), each iCloud
    source's remembered listing (``_listings``), the configuration, the disk each store is on, the
    schema and the counting rules' code. Two runs with the same key have the
    same census, so the second reuses the first's (a no-op plan of 100k
    items otherwise counts them all again)."""
    paths = [desired.library.path, *(t.path for t in desired.targets.values())]
    parts = [
        str(SCHEMA_VERSION),
        str(db.changes()),
        _listings(db, desired),
        hashlib.sha256(repr(desired).encode()).hexdigest(),
        ",".join(str(_device(p)) for p in paths),
        _counting_code(),
    ]
    return ":".join(parts)


def _listings(db: StateDB, desired: DesiredState) -> str:
    """A stamp of each iCloud source's remembered listing, which the census
    reads (``_unfetched``) but no trigger counts (``icloud_listing`` is not
    one of ``schema.CENSUS_TABLES``). Every write of the listing rewrites its
    cursor in the same transaction: the sync token of each zone, read before
    the listing (a new one whenever the library changed), and when the last
    full listing was made. With the listing's row count and its highest row
    id (a row replaced or added takes a new one), a listing written since
    the census was taken gives another stamp; read from the cursor and an
    index, a few milliseconds at 50k assets. (Were the table counted by the
    change counter, this would say nothing more.)"""
    h = hashlib.sha256()
    conn = db.conn
    for sid, src in desired.sources.items():
        if not isinstance(src, ICloudSource):
            continue
        sql = "select zone, token, full_at from icloud_cursor where source_id = ? order by zone"
        cursor = conn.execute(sql, (sid,)).fetchall()
        sql = "select count(*), max(rowid) from icloud_listing where source_id = ?"
        rows = conn.execute(sql, (sid,)).fetchone()
        # Its removals a listing since could speak of: the tombstones are
        # counted, the runs that make more of them so are not.
        (since,) = _listed_after(db, sid, "count(*)")
        h.update(repr((sid, cursor, tuple(rows), since)).encode())
    return h.hexdigest()[:16]


def _targets(
    db: StateDB, desired: DesiredState, wanted: set[str]
) -> tuple[
    dict[str, set[str]],
    dict[str, tuple[int, int]],
    set[str],
    dict[str, str],
    dict[str, int | None],
    dict[str, int],
]:
    """Per target: the originals it holds (only targets whose copies count),
    its files and bytes, and what waits on a confirming device since when;
    and the size of each ``wanted`` original found on a target."""
    holdings: dict[str, set[str]] = {}
    figures: dict[str, tuple[int, int]] = {}
    waiting: set[str] = set()
    since: dict[str, str] = {}
    devices: dict[str, int | None] = {}  # or UNPLUGGED
    sizes: dict[str, int] = {}
    for tid, cfg in desired.targets.items():
        if isinstance(cfg, FilesystemTarget):
            rows = list(_under(db, cfg.path.rstrip("/") + "/", "sha256, size"))
            holdings[tid] = {sha for sha, _ in rows}
            figures[tid] = (len(rows), sum(n or 0 for _, n in rows))
            if wanted:
                sizes.update((sha, n) for sha, n in rows if sha in wanted and n)
            # The disk it is on now, if it is: a bare mount point's device is
            # the disk below it (often the library's), not the target's.
            devices[tid] = _device(cfg.path) if read_marker(Path(cfg.path)) == tid else UNPLUGGED
            continue
        assert isinstance(cfg, SyncthingTarget)
        conduit = cfg.role == "conduit"
        held, files, size = set(), 0, 0
        sql = (
            "select sha256, size, delivered_at, confirmed_at, freed_at from deliveries "
            "where store_id = ?"
        )
        counts = not conduit or cfg.count_as_copy
        for sha, n, delivered, confirmed, freed in db.conn.execute(sql, (tid,)):
            if not confirmed:
                if counts:  # a conduit's confirmation is no copy: nothing waits on it
                    waiting.add(sha)
                if delivered and (tid not in since or delivered < since[tid]):
                    since[tid] = delivered
            elif not (conduit and freed):  # a conduit's released file left the phone
                held.add(sha)
                if sha in wanted and n:
                    sizes[sha] = n
                files, size = files + 1, size + (n or 0)
        figures[tid] = (files, size)
        if counts:
            holdings[tid] = held
            devices[tid] = None  # on the phone: grouped by the phone (``phones_of``)
    return holdings, figures, waiting, since, devices, sizes


def _gone_from_library(
    db: StateDB,
    item_of: Mapping[str, str],
    by_sha: Mapping[str, str],
    items: Mapping[str, _Item],
    item_at: dict[str, _Item],
    add: Callable[[str, str, str, float | None, bool], _Item],
) -> list[tuple[str, str]]:
    """Count the items of library files gone (deleted, a disk replaced), set
    aside in ``library_gone`` until put back from a target: still the tool's
    items, counted by the copies they have, or an item off-loaded from its
    source that lost a copy too would drop out of every state and leave
    "every item is archived" said of the rest. Keyed as the library keyed
    them, so a Live Photo's still gone joins its video still there. One a
    source still holds is counted from there already (the planner places it
    from the source). One held nowhere, no target, no source, is counted as
    in the library only: its library row is the tool's only record of it,
    the library is where the planner puts it back, and like any item there
    on no target it shows no copy (never archived, never "removed").
    Each one's item is kept in ``item_at`` by its path; returns the items'
    own sidecars gone (path, SHA-256): still part of their items."""
    sidecars: list[tuple[str, str]] = []
    sql = "select path, original_sha256, captured_at, role from library_gone"
    for path, original, captured, role in db.conn.execute(sql):
        if not _counted(path):
            if _our_sidecar(path, role or ""):
                sidecars.append((path, original))
        elif original in by_sha:
            item_at.setdefault(path, items[by_sha[original]])
        else:
            key = item_of.get(original) or "library:" + _stem(path)
            item_at.setdefault(path, add(key, path, original, captured, True))
    return sidecars


def _under(db: StateDB, root: str, columns: str) -> Iterator[tuple[Any, ...]]:
    """Hash cache rows of the files under ``root`` (ending in "/"): a range of
    its primary key, since "0" is the character after "/"."""
    sql = f"select {columns} from hash_cache where path >= ? and path < ?"
    return db.conn.execute(sql, (root, root[:-1] + "0"))


def _icloud(
    db: StateDB,
    sid: str,
    src: ICloudSource,
    tombstones: Mapping[tuple[str, str], frozenset[str]],
    removed: set[str],
    by_sha: Mapping[str, str],
    add: Callable[[str, str, str, float | None, bool], _Item],
) -> tuple[int, set[str]]:
    """Count an iCloud source's items with ``add`` (item key, name, content,
    capture time, in the library): each file downloaded, by its SHA-256, and
    each file its last listing holds that no download stands for
    (``_unfetched``). Returns the bytes of them left in iCloud, and which of
    the ``removed`` item keys (their tombstones older than the listing:
    ``_listed_after``) the listing holds again: taken back from Recently
    Deleted, they are in iCloud, every byte, whatever the tool did before."""
    sql = "select item_key, ref, sha256, size, fingerprint from source_files where source_id = ?"
    rows = db.conn.execute(sql, (sid,)).fetchall()
    fetched = {(key, ref): (n, fp or "") for key, ref, _, n, fp in rows}
    unfetched, again = _unfetched(db, sid, src, fetched, removed)
    superseded = {(u.key, u.ref) for u in unfetched}
    left = 0
    for key, ref, sha, size, _ in rows:
        if key not in again and sha in tombstones.get((sid, key), ()):
            continue  # removed; what its tombstone does not name is live again
        if (key, ref) not in superseded:  # else its version listed now counts, below
            left += size or 0
        if sha not in by_sha:
            add(f"{sid}:{key}", f"{sid}:{key}", sha, None, False)
    for u in unfetched:
        left += u.size
        # A file no download stands for is held by no store, and part of its
        # item is in the source alone: the item is archived nowhere and
        # counts as in a source only (whatever of it the library holds)
        # until that file is fetched. Never "every item is archived" then.
        item = add(
            f"{sid}:{u.key}", f"{sid}:{u.name}", f"unfetched:{u.key}:{u.ref}", u.captured_at, False
        )
        item.in_library = False
    return left, again


def _listed_after(db: StateDB, sid: str, what: str = "item_key") -> list[Any]:
    """The item keys (or ``what`` else) of the source's tombstones a listing
    made since could speak of: one by a run that read every source (exit 0
    or 2) after the removal's. The listing the apply that removed an item
    had read still holds it, as does one a later run could not make: no
    sign it came back. (Read from ``runs``, which no trigger counts:
    ``_listings`` puts their number in the census key.)"""
    sql = (
        f"select {what} from tombstones where source_id = ? and coalesce(run_id, 0) < "
        "(select max(id) from runs where command in ('plan', 'apply') and exit_code in (0, 2))"
    )
    return [row[0] for row in db.conn.execute(sql, (sid,))]


class _Unfetched(NamedTuple):
    """A file of an item the iCloud source listed that no download stands for."""

    key: str
    ref: str
    name: str
    size: int
    captured_at: float | None


#: Roles whose bytes an edit made again in Photos may change at the same
#: length: a download recorded before fingerprints were kept cannot stand
#: for them.
_CHANGEABLE = frozenset({"edited", "edit_sidecar"})


def _unfetched(
    db: StateDB,
    sid: str,
    src: ICloudSource,
    fetched: Mapping[tuple[str, str], tuple[int | None, str]],
    removed: set[str],
) -> tuple[list[_Unfetched], set[str]]:
    """The files of the items the source listed last (its remembered
    listing: the last observation of it) that no download stands for:
    never downloaded (a download that fails on every run, an item a plan
    listed and no apply fetched yet), or listed now as another version than
    the one downloaded (an edit made again). ``fetched``: item key, ref ->
    the size and fingerprint each was downloaded with. Without these, such
    an item is in no state at all and the census calls everything archived.
    Items older than ``max_age_days`` are not the tool's to handle (the
    planner passes them over): not counted. Also returns which keys of
    ``removed`` the listing holds."""
    cutoff = _oldest_handled(db, sid, src.max_age_days)
    # The rows as providers.icloud.listing.encode writes them: [key, version,
    # captured_at, [[name, size, ref, role, fingerprint], ...], ...]. SQLite
    # picks out the files (parsing a row once for all three; decoding whole
    # rows in Python would take twice as long as the rest of a census), in a
    # scan of the table ("+": not by the index, one lookup per row).
    sql = (
        "select item ->> 0, item ->> 2, item -> 3 from icloud_listing "
        "where +source_id = ? and json_valid(item)"
    )
    out: list[_Unfetched] = []
    again: set[str] = set()
    get = fetched.get
    for key, captured, files in db.conn.execute(sql, (sid,)):
        if key in removed:
            again.add(key)
        try:
            missing = [
                (name, size, ref)
                for name, size, ref, role, fp in json.loads(files)
                if not _stands_for(get((key, ref)), size, fp, role)
            ]
            if not missing:
                continue  # most rows: read no further
            when = _utc(captured).timestamp() if captured else None
        except (ValueError, TypeError):
            continue  # not a row this tool wrote: the next full listing rewrites it
        if cutoff is None or when is None or when >= cutoff:
            out.extend(_Unfetched(key, ref, name, size, when) for name, size, ref in missing)
    return out, again


def _stands_for(download: tuple[int | None, str] | None, size: int, fp: str, role: str) -> bool:
    """Whether a download (its size and fingerprint) is still the file listed
    now with ``size`` and ``fp``, as observation decides (``observe``:
    ``_still_known``; ``DownloadedFile.still``): a row without a fingerprint
    compares by size alone, and cannot vouch for an edit (``_CHANGEABLE``)."""
    if download is None or download[0] != size:
        return False
    return download[1] == fp if download[1] else role not in _CHANGEABLE


def _oldest_handled(db: StateDB, sid: str, max_age_days: int) -> float | None:
    """The earliest capture time (epoch seconds) the source's
    ``max_age_days`` admitted at its last full listing (None: any), as the
    planner reckons it from its own run's time. The census knows no run's
    time but that one: an item that aged out since (a few days at most,
    ``full_listing_every_days``) is still counted until the next."""
    if not max_age_days:
        return None
    sql = "select min(full_at) from icloud_cursor where source_id = ?"
    full_at = db.conn.execute(sql, (sid,)).fetchone()[0]
    if full_at is None:
        return None
    return (_utc(full_at) - timedelta(days=max_age_days)).timestamp()


#: The device of a filesystem target not mounted now (no marker of it).
UNPLUGGED = -1


def _device(path: str) -> int | None:
    """The filesystem ``path`` is on (one for every subvolume of a btrfs, as
    the gate counts it); None when not there: not mounted now, its recorded
    copies are still its own."""
    return disk_at(path)


def _failures(db: StateDB) -> tuple[list[tuple[Failure, str]], int | None]:
    """The failed actions of the last apply that acted (the journal's newest
    run), each with its action id, oldest first."""
    row = db.conn.execute("select max(run_id) from journal").fetchone()
    if row is None or row[0] is None:
        return [], None
    run_id = int(row[0])
    sql = (
        "select action_id, kind, detail, at, subject from journal "
        "where run_id = ? and status = 'failed' order by id"
    )
    out = [
        (Failure(subject=subject or action_id, kind=kind, error=detail or "", at=at), action_id)
        for action_id, kind, detail, at, subject in db.conn.execute(sql, (run_id,))
    ]
    return out, run_id


def _failed_item(failure: tuple[Failure, str], by_sha: Mapping[str, str]) -> str:
    """The item a failed action was about: by the SHA-256 in its id where the
    item is known, else by the file it named."""
    f, action_id = failure
    for sha in _SHA.findall(action_id):
        if sha in by_sha:
            return by_sha[sha]
    return f.subject


# ------------------------------------------------------------ what is proven
#
# ``status``'s headline and the report's page say "every item is archived"
# by these rules alone, so neither claims more than the other.

#: The fewest copies each state proves an item has; the others prove none.
#: ``removed`` needs ``policy.copies`` (an off-loaded item with fewer is
#: counted by the copies it has).
_PROVEN = {"archived_1": 1, "archived_2plus": 2}


@attrs.frozen(kw_only=True)
class Proof:
    """What may be said of a census now: whether every item counted shows
    ``copies`` copies with no action of the last apply failed, and which
    targets holding copies are not proven now (target id -> why: their
    copies count as last recorded)."""

    copies: int
    all_archived: bool
    unproven: Mapping[str, str]

    @property
    def archived(self) -> bool:
        """Every item archived, and every copy that says so proven now."""
        return self.all_archived and not self.unproven


def proof(db: StateDB, desired: DesiredState, c: Census) -> Proof:
    copies = desired.policy.copies
    # An action that failed in the last apply is work left undone (a file
    # not fetched, a copy or a sidecar not written): whatever the states
    # say, "every item is archived" is not said beside it.
    return Proof(
        copies=copies,
        all_archived=(
            c.oldest_unarchived is None
            and not c.items.get("failed")
            and _last_run_saw_everything(db)
            and all_archived(c.items, copies)
        ),
        unproven=unproven(db, desired, c),
    )


def _last_run_saw_everything(db: StateDB) -> bool:
    """Did the last plan or apply that observed the world read every source
    file (``_last_seen``)? One it could not read (mode 000, an I/O error)
    is in no state of the census (never hashed, never copied), nor is what
    a source or the library it could not read holds now, and "every item
    is archived" is not said beside them. (A target that could not be read
    is named instead: ``unproven``.) With no such run, nothing is said."""
    seen = _last_seen(db)
    return (
        seen is not None
        and not seen.unreadable
        and all(store.startswith("target ") for store in seen.not_read)
    )


class _Seen(NamedTuple):
    """What a run that observed the world said it could not read."""

    run_id: int
    #: Source files it could not read.
    unreadable: int
    #: Stores it could not read at all, as its error names them:
    #: "target nas", "source incoming", "library".
    not_read: frozenset[str]


#: The error line of a run that could not read a store (``notes_exit`` of
#: reconciler.commands.common; the run keeps it as its reason).
_NOT_READ = re.compile(r"(.+) could not be read \(see '!' above\); the rest was done")


def _last_seen(db: StateDB) -> _Seen | None:
    """What the newest plan or apply whose record says what it observed
    saw: one that read everything (exit 0 or 2), or said what it could not
    read (source files: ``unreadable`` in its summary; stores: its error).
    A run that observed nothing (locked out, exit 4; a usage error), or
    whose record does not say (ended by a failed action, a guard, a signal,
    a mistyped ``--target`` after observing) is passed over: what an older
    run saw is not hidden by it. None: no run ever said."""
    sql = (
        "select id, exit_code, summary, reason from runs "
        "where command in ('plan', 'apply') and exit_code is not null order by id desc"
    )
    for run_id, code, summary, reason in db.conn.execute(sql):
        unreadable = int(json.loads(summary or "{}").get("unreadable") or 0)
        stores = _NOT_READ.fullmatch(reason or "")
        if code in (0, 2) or unreadable or stores:
            not_read = frozenset(stores[1].split(", ")) if stores else frozenset()
            return _Seen(int(run_id), unreadable, not_read)
    return None


def all_archived(items: Mapping[str, int], copies: int) -> bool:
    """Whether every item counted holds at least ``copies`` copies, as far
    as its state can show (an undated item in its source shows none)."""
    held = [state for state in STATES if state != "failed" and items.get(state)]
    return bool(held) and all(
        (copies if state == "removed" else _PROVEN.get(state, 0)) >= copies for state in held
    )


def unproven(db: StateDB, desired: DesiredState, c: Census) -> dict[str, str]:
    """Targets holding copies the census counts that are not proven now: a
    disk without its marker (unplugged, not mounted), a phone whose last
    canary failed, or one the last run could not ask at all (Syncthing
    down: no canary is recorded then, so the last one is older than that
    run), and a disk the last run that observed could not read (a listing
    that failed, a store nested in it: ``_last_seen``). Their copies are a
    record, not a proof."""
    out = {}
    seen = _last_seen(db)
    for tid, cfg in desired.targets.items():
        if not c.targets.get(tid, (0, 0))[0]:
            continue
        if isinstance(cfg, FilesystemTarget):
            if read_marker(Path(cfg.path)) != tid:
                out[tid] = f"cannot be read ({cfg.path} has no marker of it: not mounted?)"
            elif seen is not None and f"target {tid}" in seen.not_read:
                out[tid] = (
                    f"could not be read in run {seen.run_id} (the last that said what it read)"
                )
        elif cfg.role != "conduit" or cfg.count_as_copy:
            why = _phone_unproven(db, tid)
            if why:
                out[tid] = why
    return out


def _phone_unproven(db: StateDB, tid: str) -> str | None:
    alive = db.liveness(tid)
    if alive is None:
        return "has no canary recorded: never proven alive"
    if not alive["alive"]:
        return "failed its last canary"
    last = _last_observing_run(db)
    if last is None or last[1] is None or _utc(alive["at"]) >= last[1]:
        return None
    return (
        f"was not reached in the last run (run {last[0]}; Syncthing unreachable?): "
        f"its last canary is older"
    )


def _last_observing_run(db: StateDB) -> tuple[int, datetime | None] | None:
    """The newest plan or apply that finished and observed the world (a run
    locked out, exit 4, observed nothing), and a time its observation
    started after. A plan's row starts before it observes; an apply's own
    row starts after (when it begins to act), so for an apply the end of the
    run before it is taken instead (None: no run before it)."""
    rows = db.conn.execute(
        "select id, command, started_at from runs where command in ('plan', 'apply') "
        "and finished_at is not null and coalesce(exit_code, -1) != 4 "
        "order by id desc limit 1"
    ).fetchall()
    if not rows:
        return None
    run_id, command, started_at = rows[0]
    if command == "plan":
        return int(run_id), _utc(started_at)
    before = db.conn.execute(
        "select max(finished_at) from runs where id < ? and finished_at is not null", (run_id,)
    ).fetchone()[0]
    return int(run_id), _utc(before) if before else None


def _utc(iso: str) -> datetime:
    when = datetime.fromisoformat(iso)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
