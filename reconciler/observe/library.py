"""Observing the library: each file with its lineage row (the original it
was made from, its tier, its role in its item), learned from the file
itself where the state DB has none (after a lost database, a run killed
mid-encode); the library's sidecars read once each; the files on record
that are gone, for the planner to put back."""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

import attrs

from providers.base import Store
from providers.filesystem import FilesystemStore
from providers.filesystem.walk import shortened, too_deep_problem, unnamed_problem
from providers.mounts import mount_of, mount_table
from providers.physical_disks import disk_of
from reconciler import crashpoint, media, sidecar
from reconciler.connect import Connected
from reconciler.errors import MediaError, ProviderError
from reconciler.hashing import read_file
from reconciler.layout import collision_path, date_from_path, name_key
from reconciler.media.metadata import is_placeholder_timestamp
from reconciler.model import (
    DAMAGED_ROLE,
    ORIGINAL_ROLE,
    ORIGINAL_TIER,
    SIDECAR_ROLE,
    FileCopy,
    LibraryFile,
    LibraryState,
    SidecarOwner,
    TargetState,
)
from reconciler.observe.hasher import CachedHasher
from reconciler.plan.context import ENCODED_TAG
from reconciler.renditions_journal import Journal
from reconciler.rows import original_row
from reconciler.state import LineageRow, StateDB

#: A library sidecar read this run, by its SHA-256 (None: not one of ours).
Parsed = dict[str, sidecar.SidecarIdentity | None]


def library_state(
    conn: Connected, hasher: CachedHasher, db: StateDB
) -> tuple[LibraryState, Parsed]:
    """The library's files, each with its lineage row; and the sidecars
    read on the way (each new one of the tool's, read once: what it says
    every file of its item is becomes that file's role)."""
    store = conn.library
    avail = store.availability()
    if not avail.available:
        return LibraryState(available=False, problem=avail.reason), {}
    try:
        # in path order, as the rows are read (the walk's order is the disk's)
        copies = sorted(store.list_copies(hasher), key=itemgetter(1))
    except ProviderError as e:
        return LibraryState(available=False, problem=f"listing failed: {e}"), {}
    left_out = _left_out(store)
    # Each file's row, by merging the files in path order with one ordered
    # read of the rows: no dict of 100k rows at the run's peak of memory.
    rows = db.lineage_in_order()
    files: list[LibraryFile] = []
    learned: list[LineageRow] = []
    intern, new, fromtimestamp = sys.intern, tuple.__new__, datetime.fromtimestamp
    # Lineage is the only word on files older than the record: all of them
    # when it has no rendition at all (a new or lost state database).
    before = db.born_at() if db.made_any() else math.inf
    # The library's own record of the encodes (read only if a file's
    # lineage is believed by nothing the database knows, then once): only
    # of the content the library holds now.
    journal = Journal(store.root, lambda: {c.sha256 for c in copies})
    gone: list[LineageRow] = []  # rows of files no longer there
    displaced: list[LineageRow] = []  # rows of paths holding other content now
    damaged: list[LineageRow] = []  # rows of files damaged in place since
    rotted = _damaged_in_place(store, hasher)
    if rotted:
        crashpoint.reached("changed-found")
    at = next(rows, None)
    for c in copies:
        path, sha = c.path, c.sha256
        while at is not None and at[0] < path:
            gone.append(at)
            at = next(rows, None)
        row = None
        if at is not None and at[0] == path:
            row, at = at, next(rows, None)
        if row is not None and row.sha256 != sha and rotted.get(path) == row.sha256:
            damaged.append(row)
            row = _damaged_row(c, row)
            learned.append(row)
        elif row is None or row.sha256 != sha:
            if row is not None:
                displaced.append(row)
            made = _made_here(store.root / path, c, db, before, hasher, journal)
            row = made or original_row(c, None)
            learned.append(row)
        if row.captured_at is None:
            row = row._replace(captured_at=_library_capture_ts(store.root / path, path, hasher))
            if row.captured_at is not None:
                learned.append(row)
        # (path, sha256, original_sha256, tier, size, captured_at, role);
        # one string per content (the copies' are interned: a file at its
        # original's tier takes its own) and per tier name and role: 100k
        # library files would otherwise each hold their own.
        original = row.original_sha256
        files.append(
            new(
                LibraryFile,
                (
                    path,
                    sha,
                    sha if original == sha else intern(original),
                    intern(row.tier),
                    c.size,
                    None if row.captured_at is None else fromtimestamp(row.captured_at, UTC),
                    intern(row.role),
                ),
            )
        )
    while at is not None:
        gone.append(at)
        at = next(rows, None)
    rows.close()
    if journal.unreadable:
        hasher.unread += 1  # (a disk's error): read next run
    # A row learned now keeps the role its content had (a file hashed or
    # placed again); a sidecar not read yet says what its item's files are.
    roles = db.roles_of({r.original_sha256 for r in learned if not r.role})
    # A damaged file's good row set aside before its path's row is replaced:
    # a run stopped in between keeps it (and, its cache row not settled yet,
    # finds the damage again).
    db.set_aside_lineage(damaged, move=False)
    if damaged:
        crashpoint.reached("changed-aside")
    db.record_lineages(learned)  # after a lost state DB, every file's row
    lost = _lost(gone, [*_overwritten(displaced, files), *damaged], files, db)
    if damaged:
        crashpoint.reached("changed-recorded")
    hasher.settle_changed(os.path.join(os.fspath(store.root), ""))
    parsed = _read_sidecars(store, files, hasher)
    for sha, found in parsed.items():
        if found is None:
            roles[sha] = ORIGINAL_ROLE  # another program's .xmp: read once, never again
        else:
            roles[sha] = SIDECAR_ROLE
            for content, role in sidecar.roles(found).items():
                roles.setdefault(content, role)
    db.record_roles(roles)
    state = LibraryState(
        available=True, files=tuple(files), lost=lost, device=disk_of(store), left_out=left_out
    )
    return _with_roles(state, roles), parsed


def _left_out(store: FilesystemStore) -> tuple[tuple[str, str], ...]:
    """What the library's listing just left out (``FilesystemStore.unlisted``),
    as (subject, reason): each file whose name is not UTF-8, each folder too
    deep to be read (shortened: folders that shorten alike, once). They are
    the person's photos, never archived while so: said as a source's are,
    not passed over as if the library matched."""
    found: dict[str, str] = {}
    for rel in store.unlisted:
        if rel.endswith("/"):
            short = shortened(rel)
            found[short] = too_deep_problem(store.root, short)
        elif media.is_archivable(rel):
            found[rel] = unnamed_problem(store.root, rel)
    return tuple((f"{store.id}:{rel}", why) for rel, why in sorted(found.items()))


#: Filesystems whose ctime is the kernel's own, moved by every write and
#: kept on disk. FAT and exFAT keep none (the kernel shows the mtime, which
#: a writer may put back), and a share's or a FUSE filesystem's is its
#: server's word: there a file rewritten in place may look untouched, and
#: other bytes under an unchanged stat are taken for the person's version.
_REAL_CTIME = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "tmpfs", "overlay"}
)


def _damaged_in_place(store: FilesystemStore, hasher: CachedHasher) -> dict[str, str]:
    """The library's files whose bytes, read again this run, are not those
    recorded while nothing of their stat moved (``changed_unseen``), by
    path, with the SHA-256 recorded: no program wrote them (a write moves
    the ctime, which none can set back), so the disk damaged them (bit
    rot). Only on a filesystem that keeps a real ctime (``_REAL_CTIME``);
    elsewhere none is."""
    if not hasher.changed_unseen or not _keeps_ctime(store.root):
        return {}
    top = os.path.join(os.fspath(store.root), "")
    return {
        path[len(top) :]: sha for path, sha in hasher.changed_unseen.items() if path.startswith(top)
    }


def _keeps_ctime(root: Path) -> bool:
    """Is ``root`` on a filesystem of ``_REAL_CTIME`` (the mount table's
    word)? Not when it cannot be told."""
    try:
        fd = os.open(root, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        mount = mount_of(fd)
    finally:
        os.close(fd)
    found = mount_table().get(mount) if mount is not None else None
    return found is not None and found.fstype in _REAL_CTIME


def _damaged_row(c: FileCopy, was: LineageRow) -> LineageRow:
    """The row of a library file damaged in place, as its own content
    (``DAMAGED_ROLE``): never an item's file (never archived, encoded or put
    back), kept so on every later run, when its stat matches the cache
    again. The row it had is set aside, so its item is put back."""
    return LineageRow(
        path=c.path,
        original_sha256=c.sha256,
        sha256=c.sha256,
        tier=ORIGINAL_TIER,  # its own content, as found: at no tier of anything
        size=c.size,
        mtime_ns=c.mtime_ns,
        captured_at=was.captured_at,
        role=DAMAGED_ROLE,
    )


def _overwritten(displaced: list[LineageRow], files: list[LibraryFile]) -> list[LineageRow]:
    """Of the rows whose path holds other content now, those of a file
    overwritten by a copy of another library file (a file manager's
    "replace"): its item is gone from the library as if deleted. Other
    content there (an edit saved over the file) is the person's version,
    unless no write made it (``_damaged_in_place``)."""
    if not displaced:
        return []
    now = {lf.path: lf.original_sha256 for lf in files}
    held = Counter(lf.original_sha256 for lf in files)
    return [r for r in displaced if held[now[r.path]] > 1]


def _lost(
    gone: list[LineageRow],
    overwritten: list[LineageRow],
    files: list[LibraryFile],
    db: StateDB,
) -> tuple[LibraryFile, ...]:
    """The library's files gone whose content the library holds nowhere
    else (deleted, a disk replaced, an item off-loaded while the library was
    away), and the item sidecars of the tool's among them: the planner puts
    them back from a target. Their rows are set aside from the library's
    until then (no census counts a file that is not there), and forgotten
    once their content is back. The rows of the others are forgotten: a file
    moved or renamed within the library (its content found at another path)
    is known by its new path; junk (.DS_Store) is not put back."""
    aside = db.gone_lineage()
    if not gone and not aside and not overwritten:
        return ()
    _put_back_as_made(aside, files, db)
    gone = [_as_sidecar(r) for r in gone]
    present = {lf.original_sha256 for lf in files} | {lf.sha256 for lf in files}
    lost = [
        r
        for r in {r.path: r for r in (*aside, *overwritten, *gone)}.values()
        if r.original_sha256 not in present and _restorable(r)
    ]
    kept = {r.path for r in lost}
    db.forget_lineage([r.path for r in gone if r.path not in kept])
    db.set_aside_lineage([r for r in gone if r.path in kept])
    # (an overwritten file's path has its new row already: only set aside)
    db.set_aside_lineage([r for r in overwritten if r.path in kept], move=False)
    db.forget_lineage([r.path for r in aside if r.path not in kept], gone=True)
    return tuple(map(_as_library_file, sorted(lost)))


def _put_back_as_made(aside: list[LineageRow], files: list[LibraryFile], db: StateDB) -> None:
    """The library's encode of an original lost everywhere, put back from a
    target (``plan.library``: its target copy tagged ``.encoded``), is
    recorded by the put back as an original of its own; its row set aside
    says what it was made from. Its file takes that row back (in ``files``
    and the state DB): it is never encoded again, and its row aside is
    forgotten now its content is back."""
    made = {r.path: r for r in aside if r.sha256 != r.original_sha256}
    if not made:
        return
    fixed: list[LineageRow] = []
    for i, lf in enumerate(files):
        r = made.get(lf.path)
        if r is not None and lf.sha256 == r.sha256 and lf.original_sha256 == lf.sha256:
            files[i] = lf._replace(original_sha256=r.original_sha256, tier=r.tier)
            fixed.append(r._replace(size=lf.size))
    db.record_lineages(fixed)


def _as_library_file(r: LineageRow) -> LibraryFile:
    return LibraryFile(
        path=r.path,
        sha256=r.sha256,
        original_sha256=r.original_sha256,
        tier=r.tier,
        size=r.size,
        captured_at=None if r.captured_at is None else datetime.fromtimestamp(r.captured_at, UTC),
        role=r.role,
    )


def rebuilt_from_targets(
    library: LibraryState,
    targets: tuple[TargetState, ...],
    in_sources: set[str],
    listed: Callable[[], set[tuple[str, str]]],
    conn: Connected,
    db: StateDB,
    hasher: CachedHasher,
) -> LibraryState:
    """``library``, found holding nothing (a new disk), with the items the
    targets archive and the state has no record of among its files gone (a
    new machine: the state directory and the library disk both lost; a
    state database put back from an older backup, the library lost): the
    targets are the archive of the library's items, so each comes back as a
    library file lost does (``_lost``: its row set aside until the planner
    puts it back from a target's verified copy, counted by the census
    meanwhile). ``in_sources``: the content the sources hold now (placed
    from there, as ever); ``listed``: the items they list, (source id,
    key), asked only once a sidecar is read.

    Only while the library holds no file (but the tool's own sidecars):
    once it does, what its targets hold beyond it is known to be no loss
    (a version from before an edit saved over a file, a damaged file the
    person deleted, a library folder away for a while), and a converged
    run costs nothing here. Only what a target read this run holds is
    looked at: nothing is concluded from what
    a target not read lacks; one plugged in before the library is refilled
    is read for it on its run."""
    # (the tool's own sidecars left behind are no file of the person's: a
    # library whose photos were deleted, its state lost, holds only those)
    if not library.available or any(
        media.is_archivable(lf.path) and lf.role != SIDECAR_ROLE for lf in library.files
    ):
        return library
    found, known = _unknown_on_targets(library, targets, in_sources)
    if found:
        # An encode the tool made (an earlier tier's, brought back into a
        # source and archived as it was): its original is the library's.
        for sha in db.renditions(found):
            del found[sha]
    if not found:
        return library
    rows = _rows_from_targets(found, known, library, listed, conn, hasher)
    if not rows:
        return library
    # Recorded as a lost file's row (``library_gone``): the next run finds it
    # there, and a status meanwhile counts its item by its targets' copies.
    db.set_aside_lineage(rows, move=False)
    lost = [*library.lost, *map(_as_library_file, rows)]
    return attrs.evolve(library, lost=tuple(sorted(lost, key=itemgetter(0))))


#: Content found on targets: each of its copies there laid out as an item's.
Found = dict[str, list[FileCopy]]


def _unknown_on_targets(
    library: LibraryState, targets: tuple[TargetState, ...], in_sources: set[str]
) -> tuple[Found, set[str]]:
    """The content archive targets read this run hold that is none of the
    library's files (originals, encodes, sidecars), none of its files gone,
    and in no source, by SHA-256; each copy of it laid out as the tool lays
    out an item's file (``_in_layout``); and the content that is (built
    once, for the first target read). A conduit (the phone) holds a file
    only on its way to Google Photos: no archive."""
    known: set[str] = set()
    found: Found = {}
    for t in targets:
        if not t.available or t.role == "conduit" or not t.copies:
            continue
        if not known:
            known.update(map(itemgetter(2), library.files))  # (LibraryFile.original_sha256)
            known.update(map(itemgetter(1), library.files))  # (LibraryFile.sha256)
            known.update(lf.original_sha256 for lf in library.lost)
            known.update(lf.sha256 for lf in library.lost)
            known.update(in_sources)
        unknown = set(map(itemgetter(4), t.copies))  # (FileCopy.sha256)
        unknown.difference_update(known)
        if not unknown:
            continue  # (every target, on a converged run)
        for c in t.copies:
            if c.sha256 in unknown and _in_layout(c.path):
                found.setdefault(c.sha256, []).append(c)
    return found, known


def _in_layout(rel: str) -> bool:
    """Is ``rel`` where the tool puts an item's file on a target
    (``layout.dated_path``: ``YYYY/MM/DD/<name>``, ``undated/<name>``), and
    a file a person keeps? Anything else on a target is the person's own (a
    folder they keep there, files there before the marker was written),
    never an item of the library's."""
    head, _, name = rel.rpartition("/")
    if not name or not media.is_archivable(rel):
        return False
    return head == "undated" or (head.count("/") == 2 and date_from_path(rel) is not None)


def _rows_from_targets(
    found: Found,
    known: set[str],
    library: LibraryState,
    listed: Callable[[], set[tuple[str, str]]],
    conn: Connected,
    hasher: CachedHasher,
) -> list[LineageRow]:
    """The lost-file rows of the content ``found`` on targets (``known``:
    the content held elsewhere), each at the path its target copy has (the
    library's own layout), as what it is in its item: the tool's sidecars
    among them say what each file of their item is (a rendered edit, a Live
    Photo's video, an AAE: never encoded). The content of an item a source
    still lists is left to its source (its files placed from there, its
    sidecar written from it). None while some sidecar among them cannot be
    read: its item's files would come back as originals, to be encoded."""
    roles: dict[str, str] = {}
    skip: set[str] = set()
    items: set[tuple[str, str]] | None = None
    for sha, copies in found.items():
        c = copies[0]
        if not sidecar.is_sidecar(c.path):
            continue
        try:
            identity = _target_sidecar(conn, c)
        except OSError:
            hasher.unread += 1  # (a disk's error): read next run
            return []
        if identity is None:
            roles[sha] = ORIGINAL_ROLE  # another program's .xmp: the person's file
            continue
        roles[sha] = SIDECAR_ROLE
        items = listed() if items is None else items
        if (identity.source_id, identity.item_key) in items:
            skip.add(sha)
            skip.update(f.sha256 for f in identity.files if f.sha256)
            continue
        for content, role in sidecar.roles(identity).items():
            roles.setdefault(content, role)
    taken = {name_key(lf.path) for lf in (*library.files, *library.lost)}
    rows: list[LineageRow] = []
    for sha, copies in found.items():
        if sha in skip:
            continue
        made = _row_from_target(sha, copies, roles.get(sha, ORIGINAL_ROLE), conn, hasher)
        if made is None:
            continue
        row, paths = made
        if row.original_sha256 != sha and (
            row.original_sha256 in known or row.original_sha256 in found
        ):
            continue  # an encode of an original held: the library's is made from that
        path = _free_path(paths, row.original_sha256, taken)
        if path is None:
            continue  # (another row of this very original took it: one per original)
        taken.add(name_key(path))
        rows.append(row._replace(path=path))
    return rows


def _free_path(paths: list[str], original: str, taken: set[str]) -> str | None:
    """Where a content found on targets comes back in the library: the
    first of its copies' paths (``paths``) no other row takes, as a disk
    that ignores case compares names; else the first beside it tagged with
    its original's hash (``collision_path``, as a store names a second
    photo of one name). Two contents at one path on two targets (a photo
    of the person's and the card's, named crosswise; an encode taken back
    to its original's name, and a new photo of that name) must never leave
    one of them out: the library would say "No changes" without it. None
    only where that tagged path is taken too: by this very original's."""
    for path in paths:
        if name_key(path) not in taken:
            return path
    tagged = collision_path(paths[0], original)
    return None if name_key(tagged) in taken else tagged


def _target_sidecar(conn: Connected, c: FileCopy) -> sidecar.SidecarIdentity | None:
    """What a target's ``.xmp`` says, if it is one of the tool's."""
    path = conn.targets[c.store_id].local_path(c.path)
    data = read_file(path, sidecar.MAX_BYTES) if path is not None else None
    return sidecar.parse(data) if data else None


def _row_from_target(
    sha: str, copies: list[FileCopy], role: str, conn: Connected, hasher: CachedHasher
) -> tuple[LineageRow, list[str]] | None:
    """The row of one content found on targets, at the path of its first
    copy there, with every path its copies have (in that order: the
    caller takes the first no other content takes); None: none is a local
    file. A file the tool made by encoding (the lineage it carries) is made
    from its original: the library's encode of an original lost
    everywhere, archived in its place (``IMG_1.encoded.JPG``:
    ``plan.library``'s ``_in_place_of_original``), goes back at its
    original's path and is never encoded again."""
    ordered = sorted(copies, key=itemgetter(1, 0))  # (path, store id)
    for c in ordered:
        local = conn.targets[c.store_id].local_path(c.path)
        if local is None:
            continue
        original, tier, untag = sha, ORIGINAL_TIER, False
        made = _embedded_lineage(local, c, hasher)
        if made is not None and made.original_sha256 != sha:
            original, tier, untag = made.original_sha256, made.tier, True
        paths = [_untagged(o.path) if untag and _is_encoded(o.path) else o.path for o in ordered]
        first = paths[ordered.index(c)]
        row = LineageRow(
            path=first,
            original_sha256=original,
            sha256=sha,
            tier=tier,
            size=c.size,
            mtime_ns=c.mtime_ns,
            captured_at=_library_capture_ts(local, c.path, hasher),
            role=role,
        )
        return row, [first, *(p for p in dict.fromkeys(paths) if p != first)]
    return None


def _is_encoded(rel: str) -> bool:
    """Is ``rel`` named as a target's copy of the library's encode
    (``plan.library.encoded_name``)?"""
    return posixpath.splitext(rel)[0].endswith(ENCODED_TAG)


def _untagged(rel: str) -> str:
    stem, ext = posixpath.splitext(rel)
    return stem[: -len(ENCODED_TAG)] + ext


def _as_sidecar(row: LineageRow) -> LineageRow:
    """A gone ``.xmp`` whose row has no role was never read by a run (each
    run reads the ``.xmp`` files it lists and records what they are): the
    tool's own sidecar, written by an apply of a version that recorded no
    role for it, and lost before the next run. It is put back as the item's
    sidecar, from a target holding it; another program's is on none."""
    if not row.role and sidecar.is_sidecar(row.path):
        return row._replace(role=SIDECAR_ROLE)
    return row


def _restorable(row: LineageRow) -> bool:
    """A file the library must hold: any file of the person's (a photo, a
    PDF, another program's .xmp: read as not the tool's, it has an
    original's role, and is archived as any file), or an item's sidecar of
    the tool's (read as one: its role says so; ``_as_sidecar``); never junk
    (.DS_Store) nor a file damaged in place (its item's good version is put
    back instead)."""
    if row.role == DAMAGED_ROLE:
        return False
    return row.role == SIDECAR_ROLE or media.is_archivable(row.path)


def _read_sidecars(store: Store, files: Iterable[LibraryFile], hasher: CachedHasher) -> Parsed:
    """The library's ``.xmp`` files not read yet (no role: written since
    the last run, or every one after a lost state DB or an upgrade), read
    and parsed; one that cannot be read now is read next run."""
    parsed: Parsed = {}
    for lf in files:
        if not lf.role and sidecar.is_sidecar(lf.path):
            _read_sidecar(store, lf, parsed, hasher)
    return parsed


def _read_sidecar(store: Store, lf: LibraryFile, parsed: Parsed, hasher: CachedHasher) -> None:
    path = store.local_path(lf.path)
    try:
        data = read_file(path, sidecar.MAX_BYTES) if path is not None else None
    except OSError:
        hasher.unread += 1  # read next run
        return
    if data is not None:
        parsed[lf.sha256] = sidecar.parse(data)


def _with_roles(library: LibraryState, roles: Mapping[str, str]) -> LibraryState:
    """``library`` with each file's role as just learned (by its original's
    SHA-256), as ``StateDB.record_roles`` keeps it: a role other than an
    original's is never taken back."""
    if not roles:
        return library
    files = tuple(
        lf._replace(role=roles[lf.original_sha256])
        if lf.role in ("", ORIGINAL_ROLE) and roles.get(lf.original_sha256)
        else lf
        for lf in library.files
    )
    return attrs.evolve(library, files=files)


def sidecars_missing(
    library: LibraryState,
    targets: tuple[TargetState, ...],
    conn: Connected,
    parsed: Parsed,
    hasher: CachedHasher,
) -> dict[str, SidecarOwner]:
    """The item each library sidecar of the tool describes, for those an
    available archive target lacks (read from the file, only for these:
    none on a converged run). The planner keeps them there, as every file
    of an item that lives only in the library. A conduit (the phone) is no
    archive: it holds a file only until Google Photos, which reads no XMP,
    has it."""
    ours = {lf.sha256: lf for lf in library.files if lf.role == SIDECAR_ROLE}
    if not ours:
        return {}
    wanted = set(ours)
    missing: set[str] = set()
    for t in targets:
        if t.available and t.role != "conduit":
            held = wanted.intersection(map(itemgetter(4), t.copies))  # (FileCopy.sha256)
            held.update(d.sha256 for d in t.pending if d.sha256 in wanted)
            if len(held) < len(wanted):  # (every one, on a converged run)
                missing.update(wanted - held)
    found: dict[str, SidecarOwner] = {}
    paths = {lf.path: lf for lf in ours.values()} if missing else {}
    for sha in sorted(missing):
        owner = _owner(conn.library, ours[sha], parsed, hasher)
        if owner is None:
            continue
        # Of an item's two sidecars side by side in the library (its plain
        # and its tagged name: put there by hand, or by an older version),
        # the plain one is kept on the targets, whichever of them a target
        # lacks: the two would take turns at the target's one for ever.
        tag = sidecar.owner_names(owner, "")[1][len(owner.original_name) :]
        path = ours[sha].path
        if path.endswith(tag):
            twin = paths.get(path[: -len(tag)] + sidecar.SUFFIX)
            other = _owner(conn.library, twin, parsed, hasher) if twin is not None else None
            if other is not None and other[:2] == owner[:2]:
                continue  # (source id, item key): the same item
        found[sha] = owner
    return found


def _owner(
    store: Store, lf: LibraryFile, parsed: Parsed, hasher: CachedHasher
) -> SidecarOwner | None:
    """The item a library sidecar describes, read once a run."""
    if lf.sha256 not in parsed:
        _read_sidecar(store, lf, parsed, hasher)
    identity = parsed.get(lf.sha256)
    return sidecar.owner_of(identity) if identity is not None else None


def _library_capture_ts(path: Path, rel: str, hasher: CachedHasher) -> float | None:
    """A library file's capture time when the state DB does not have it (a
    lost DB, an older schema): its own metadata, else its mtime when that
    falls on the day of its folder (a file dated by its mtime was placed
    with that mtime, to the second), else that day's start. Recorded once,
    so it is looked for once."""
    ts = None
    if media.is_media(rel):
        try:
            when = media.read_capture_date(path)
            ts = when.timestamp() if when is not None else None
        except MediaError:
            pass  # the file says nothing that can be read as a date
        except OSError:
            # (a disk's error): nothing recorded, it is read again next run
            hasher.unread += 1
            return None
    if ts is None:
        day = date_from_path(rel)
        if day is None:
            return None
        ts = day.timestamp()
        with contextlib.suppress(OSError):
            mtime = os.stat(path).st_mtime
            if ts <= mtime < ts + 86400:
                ts = mtime
    # A folder 1970/01/01 (placed by an older version) says "no date" too.
    return None if ts is None or is_placeholder_timestamp(ts) else ts


def _made_here(
    path: Path,
    c: FileCopy,
    db: StateDB,
    before: float,
    hasher: CachedHasher,
    journal: Journal,
) -> LineageRow | None:
    """The row of a library file the tool made by encoding, from the lineage
    it carries; None for any other content. The lineage is a label copied
    with the file's metadata: a copy the person saved from it (a black and
    white version, a crop, a tag edited with exiftool) carries it too, and
    taken for the tool's it was never archived and was replaced by the next
    tier's encode. So it is believed only:
    - of content the tool recorded making from that original
      (``renditions``: recorded before the encode replaced its file);
    - of a file older than the record (its ctime, which no program sets,
      before ``before``: the state database's birth, or never when it has
      no rendition at all): a database lost and made anew never knew it, as
      a library folder away on the first run after the loss;
    - of content the library's own journal lists as made from that
      original (``renditions_journal``, appended before each encode lands):
      a state database put back from a backup, or another configuration's
      on the same library, knows neither the rendition nor its path. A
      person's copy is new content, listed nowhere.
    Never because the label names another tier than the record: an editor
    that opened the file before a run moved it to the next tier saves the
    label it found (``recent`` over an ``older`` encode)."""
    found = _embedded_lineage(path, c, hasher)
    if found is None or before == math.inf:  # no record at all: one query less per file
        return found
    made = db.renditions([c.sha256]).get(c.sha256)
    if made == found.original_sha256:
        return found
    try:
        if os.lstat(path).st_ctime < before:
            return found
    except OSError:
        return None
    return found if journal.original_of(c.sha256) == found.original_sha256 else None


def _embedded_lineage(path: Path, c: FileCopy, hasher: CachedHasher) -> LineageRow | None:
    """Lineage written into an encoded file survives a lost state DB."""
    if media.media_kind(c.path) == "other":
        return None
    try:
        found = media.read_lineage(path)
    except MediaError:
        return None
    except OSError:
        hasher.unread += 1  # (a disk's error): read next run
        return None
    if found is None:
        return None
    original, tier = found
    return LineageRow(
        path=c.path,
        original_sha256=original,
        sha256=c.sha256,
        tier=tier,
        size=c.size,
        mtime_ns=c.mtime_ns,
    )
