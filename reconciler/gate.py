"""The removal gate: the one invariant, checked at the moment of removal.

Nothing leaves a source unless every file of the item has at least
``copies`` copies on available backup targets that hold its original bytes
*now*: each copy is re-read and re-hashed here (the phone: Syncthing's
per-file proof, through the store's ``verify``, and only once the phone
proved alive this run; a phone that did not is unavailable now). The plan's word, the
observation's hashes and the library never count. The applier calls this
right before each removal and nowhere else decides.

A copy that is the source's own file (the same inode: a hard link, a bind
mount) or lies under the source's folder is never counted, whatever the
configuration says: deleting the source file would delete that "copy" too.
The configuration refuses such overlaps; this is the defence in depth. So
too, two targets' copies that are one file (hard-linked) count once, even
on targets that may share a disk (``same_disk_ok``): one file is one copy.

Each copy counts on the disk its own file is on (``Disks``), not on its
target's root's: a folder of the library (or a source) bind-mounted inside
a target shows the library's own files there, on the library's disk; such
a copy lies, really, inside the library, and is never a backup, whatever
``same_disk_ok`` says.

``RemovalGate`` is the applier's side of it for one run: it gathers, at the
moment of each removal, what ``check_removal`` decides on (the item's files
and its current sidecar, the targets and their disks, the item's own files,
a trusted conduit's recorded deliveries) and forgets a copy found wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from providers.base import ConfirmingStore, Store
from providers.mounts import locate, mount_table
from providers.physical_disks import beneath
from reconciler import sidecar
from reconciler.config import DesiredState, same_disk_ok
from reconciler.config import FolderSource as FolderSourceConfig
from reconciler.config import SyncthingTarget as SyncthingTargetConfig
from reconciler.connect import Connected
from reconciler.disks import Disks, disks_now
from reconciler.errors import ProviderError, SafetyError
from reconciler.independence import Groups, backup_groups, count_backups, group_of, phones_of
from reconciler.layout import name_key
from reconciler.model import FileCopy, RemoveFromSource, SourceItem
from reconciler.state import StateDB


class GateRefused(SafetyError):
    """The item stays in its source; the message says why.

    ``unavailable`` is True when the only shortfall is a store that cannot be
    reached now (unmounted mid-run, the phone offline): a matter for the next
    run, not a copy found wrong."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@attrs.frozen(kw_only=True)
class SourceSide:
    """Where the item being removed lives on this machine (a folder source):
    its files and the source's root. Empty for a remote source (iCloud).
    ``held``: its files by identity (device, inode), taken when it was made:
    the source moves them aside (renamed, the same inodes) before the gate
    reads the copies, so their paths alone would find nothing then."""

    files: Sequence[Path] = ()
    root: Path | None = None
    held: frozenset[tuple[int, int]] | None = None


#: on_mismatch(store, copy): a copy that no longer hashes to its sha256.
Mismatch = Callable[[Store, FileCopy], None]


def check_removal(
    files: Iterable[tuple[str, str | None]],
    *,
    need: int,
    stores: Mapping[str, Store],
    copies: Mapping[str, Mapping[str, FileCopy]],
    source: SourceSide = SourceSide(),
    on_mismatch: Mismatch | None = None,
    groups: Groups | None = None,
    disks: Disks | None = None,
    trusted: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """``files`` are (name, sha256 or None if never verified). Return the
    SHA-256s when every file has ``need`` verified copies on independent
    disks (``groups``, from ``reconciler.independence``, by each target's
    root, and each phone's by the phone; with ``disks``, a copy on this
    machine goes by its own file's disk instead, and one lying in the
    library or a source is none); else raise. ``trusted``: store id -> the
    SHA-256s it counts for unread (a conduit's confirmed deliveries, where
    the person trusts Google Photos): grouped like any copy, so one phone
    is one backup whatever its folders."""
    groups = groups or {}
    trusted = trusted or {}
    available: dict[str, bool] = {}
    own = set(source.held) if source.held is not None else _identities(source.files)
    root = os.path.realpath(source.root) if source.root is not None else None
    shas: list[str] = []
    for name, sha in files:
        if not sha:
            raise GateRefused(f"{name}: never downloaded and verified; kept")
        good: list[str] = []
        inside: list[str] = []
        away: list[str] = []
        linked: list[str] = []
        aliased: list[str] = []
        #: the backup each counted copy makes, by its own file's disk
        mine = dict(groups)
        #: each counted copy's file (device, inode) -> its store
        files_of: dict[tuple[int, int], str] = {}
        for store_id, store in stores.items():
            copy = copies.get(store_id, {}).get(sha)
            if copy is None:
                continue
            path = store.local_path(copy.path)
            held = _identity(path) if path is not None else None
            if _is_source_side(path, held, own, root):
                inside.append(store_id)
                continue
            local = path is not None and not isinstance(store, ConfirmingStore)
            where = locate(path, disks.table) if disks is not None and local and path else None
            device, why_not = (None, "")
            if disks is not None and where is not None:
                device, why_not = disks.judge(store_id, where)
            if why_not:
                aliased.append(f"{store_id} ({why_not})")
                continue
            if store_id not in available:
                available[store_id] = _usable(store)
            if not available[store_id]:
                away.append(store_id)
                continue
            verdict = _verified(store, copy)
            if verdict is None:  # cannot be asked now (the phone went offline): not wrong
                away.append(store_id)
                continue
            if not verdict:
                if on_mismatch is not None:
                    on_mismatch(store, copy)
                continue
            # A phone's copy is on the phone, whatever its outbox here is.
            if isinstance(store, ConfirmingStore):
                held = None
            if held is not None and files_of.setdefault(held, store_id) != store_id:
                linked.append(f"{store_id} (the same file as {files_of[held]}'s copy)")
                continue
            if disks is not None and where is not None:
                # counted on its own file's disk: a mount inside the target
                # may show another disk's files (the library's) there
                mine[store_id] = group_of(
                    store_id,
                    device,
                    library=disks.library,
                    same_disk_ok=disks.same_disk_ok,
                )
            good.append(store_id)
        count = count_backups(good, mine)
        vouched = [store_id for store_id, shas in trusted.items() if sha in shas]
        count = count_backups(good + vouched, mine)
        if count < need:
            have = ", ".join(good + [f"{v} (trusted delivery)" for v in vouched]) or "none"
            why = f"{name}: {count} of {need} verified copies now ({have})"
            if count < len(good + vouched):
                why += f"; {_counted_once(good + vouched, mine)}"
            if inside:
                why += f"; not counted: {', '.join(inside)} (inside the source itself)"
            if linked:
                why += f"; not counted: {', '.join(linked)}"
            if aliased:
                why += f"; not counted: {', '.join(aliased)}"
            if away:
                why += f"; unavailable now: {', '.join(away)}"
            raise GateRefused(
                f"{why}; kept", unavailable=count_backups(good + vouched + away, mine) >= need
            )
        shas.append(sha)
    return shas


def _counted_once(stores: list[str], groups: Groups) -> str:
    """Why ``stores`` make fewer backups than copies: two on one disk (or
    on the library's), or two folders of one phone."""
    seen: set[str | None] = set()
    shared: set[str] = set()
    for store_id in stores:
        group = groups.get(store_id, f"store:{store_id}")
        if group is None:  # on the library's own disk
            shared.add("disk")
        elif group in seen:
            shared.add("phone" if group.startswith("phone:") else "disk")
        seen.add(group)
    return " and ".join(f"copies on one {what} count once" for what in sorted(shared))


def _root(store: Store) -> Path | None:
    """A store's root folder on this machine; None for the phone, whose
    copies are on the phone whatever its outbox here is."""
    return None if isinstance(store, ConfirmingStore) else store.local_path(".")


def _identities(paths: Sequence[Path]) -> set[tuple[int, int]]:
    return {held for p in paths if (held := _identity(p)) is not None}


def _identity(path: Path) -> tuple[int, int] | None:
    """The file at ``path`` (device, inode), or None if it cannot be read.
    Two stores' copies that are one file (a hard link, which deduplicating
    tools make on a disk of shared targets) are one copy."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_source_side(
    path: Path | None, held: tuple[int, int] | None, own: set[tuple[int, int]], root: str | None
) -> bool:
    """The copy (at ``path``, the file ``held``) is the source's file itself,
    or lives inside the source. Paths compared as a disk that ignores case
    and Unicode form compares them (exFAT, SMB: ``DCIM/a.jpg`` is
    ``dcim/a.jpg`` there, and FUSE may give each spelling an inode number of
    its own, so identities do not show it): a copy named like one inside the
    source never counts, as the safe side."""
    if path is None:
        return False
    if root is not None:
        real, top = name_key(os.path.realpath(path)), name_key(root.rstrip(os.sep))
        if real == top or real.startswith(top + os.sep):
            return True
    return held is not None and held in own


def _usable(store: Store) -> bool:
    """Available now; a phone also proved alive lately (its canary arrived:
    the store makes its proof again once it is older than it trusts one):
    without that, its per-file answers prove nothing."""
    if not store.availability().available:
        return False
    return not isinstance(store, ConfirmingStore) or store.prove_alive().alive


def _verified(store: Store, copy: FileCopy) -> bool | None:
    """True: the copy holds its bytes now. False: it does not, or cannot
    be read (an unreadable copy is not a copy). None: the store cannot be
    asked now (a transient error: the phone went offline since it proved
    alive, Syncthing stopped answering): unavailable, never a wrong copy."""
    try:
        return store.verify(copy)
    except ProviderError as e:
        return None if e.transient else False


def item_shas(
    source_id: str, item: SourceItem, known: Mapping[tuple[str, str, str], str]
) -> dict[str, str] | None:
    """Every file's SHA-256 by ref, or None while one is not known."""
    shas: dict[str, str] = {}
    for f in item.files:
        sha = f.sha256 or known.get((source_id, item.key, f.ref))
        if not sha:
            return None
        shas[f.ref] = sha
    return shas


@attrs.define
class RemovalGate:
    """The removal gate for one run of the applier, which calls ``check``
    right before each removal. ``known``, ``items`` and ``copies`` are the
    applier's own dicts, shared: it adds to them as the run goes, and a copy
    found wrong here is dropped from ``copies`` for the rest of the run."""

    desired: DesiredState
    db: StateDB
    conn: Connected
    items: Mapping[tuple[str, str], SourceItem]
    known: Mapping[tuple[str, str, str], str]
    copies: dict[str, dict[str, FileCopy]]
    #: conduit id -> originals it confirmed (count_as_copy), read on first use
    _conduit_confirmed: dict[str, frozenset[str]] = attrs.field(factory=dict, init=False)
    #: each target's root folder here (None: the phone's), and the library's
    #: (key ""): the same paths all run, looked at anew by each check
    _roots: dict[str, Path | None] = attrs.field(factory=dict, init=False)

    def check(self, a: RemoveFromSource, side: SourceSide | None = None) -> list[str]:
        """The SHA-256s proven archived, or ``GateRefused``: the item stays.
        ``side``: the item's own files, taken before the source moved any
        aside (``source_side``); asked at the very moment of the removal
        (``Source.remove`` calls it last)."""
        files = [
            (f.name, f.sha256 or self.known.get((a.source_id, a.item_key, f.ref))) for f in a.files
        ]
        item = self.items[(a.source_id, a.item_key)]
        shas = item_shas(a.source_id, item, self.known)
        if item.metadata is not None and shas is not None:
            # Its metadata leaves with it: the current sidecar must be archived too.
            files.append((sidecar.name_for(item), sidecar.digest(item, shas)))
        # Looked at once per removal, now: the item's own files and the disks.
        side, (groups, disks) = side or self.source_side(a), self._disks()
        proven: list[str] = []
        for name, sha in files:
            proven += self._proven(name, sha, side, groups, disks)
        return proven

    def archived(self, name: str, sha: str, *, on_mismatch: Mismatch) -> None:
        """The original ``sha`` has its copies on the targets, each read now,
        exactly as a removal asks; else ``GateRefused``. Asked before the
        library's own original is replaced by an encode: from then on the
        targets hold the only original bytes. Safe on a worker thread once
        ``prepare`` ran: it reads no state; a copy found wrong goes to
        ``on_mismatch``, for the caller to ``forget_copy`` on its own."""
        self._proven(name, sha, SourceSide(), *self._disks(), on_mismatch)

    def prepare(self) -> None:
        """Read, on this thread, what ``archived`` would read from the state
        DB on first use (each conduit's confirmed originals)."""
        for tid in self._conduits():
            self._delivered(tid, "")

    def _conduits(self) -> dict[str, bool]:
        """Each conduit target, and whether its confirmed deliveries count
        (``count_as_copy``)."""
        return {
            tid: cfg.count_as_copy
            for tid, cfg in self.desired.targets.items()
            if isinstance(cfg, SyncthingTargetConfig) and cfg.role == "conduit"
        }

    def _proven(
        self,
        name: str,
        sha: str | None,
        side: SourceSide,
        groups: Groups,
        disks: Disks,
        on_mismatch: Mismatch | None = None,
    ) -> list[str]:
        # A conduit's copy is never verified by bytes; where the person trusts
        # Google Photos (count_as_copy), its recorded delivery counts instead.
        # Counted by phone like every copy: two trusted conduits on one
        # phone are one Google Photos, and count once.
        conduits = self._conduits()
        stores = {tid: s for tid, s in self.conn.targets.items() if tid not in conduits}
        trusted = {
            tid: {sha} for tid, ok in conduits.items() if ok and sha and self._delivered(tid, sha)
        }
        return check_removal(
            [(name, sha)],
            need=self.desired.policy.copies,
            stores=stores,
            copies=self.copies,
            source=side,
            on_mismatch=on_mismatch or self.forget_copy,
            groups=groups,
            disks=disks,
            trusted=trusted,
        )

    def _delivered(self, target_id: str, sha: str | None) -> bool:
        """The conduit confirmed this original, by its present device and folder.
        Its confirmed originals are read once per run, not once per file."""
        store = self.conn.targets[target_id]
        if not isinstance(store, ConfirmingStore):
            return False
        if target_id not in self._conduit_confirmed:
            self._conduit_confirmed[target_id] = frozenset(
                row["sha256"]
                for row in self.db.deliveries(target_id).values()
                if row["confirmed_at"] and row["identity"] == store.identity
            )
        return bool(sha) and sha in self._conduit_confirmed[target_id]

    def _disks(self) -> tuple[Groups, Disks]:
        """Which targets are independent disks, by their roots, and the
        library's disk and the library's and folder sources' folders where
        they really are (through any mount), by which each copy is judged
        on its own: looked at now, not as observed, through one reading of
        the mount table (a removal's check reads it once)."""
        if not self._roots:
            self._roots = {tid: _root(store) for tid, store in self.conn.targets.items()}
            self._roots[""] = _root(self.conn.library)
        table = mount_table()
        ok = same_disk_ok(self.desired)
        roots = {
            tid: locate(path, table) if path is not None else None
            for tid, path in self._roots.items()
            if tid
        }
        disks = disks_now(self.desired, table, roots)
        # by the physical disk each root lies on (two partitions of one disk
        # are one), as the plan groups them
        groups = backup_groups(
            {
                tid: beneath(root, table).disk if root is not None else None
                for tid, root in roots.items()
            },
            library=disks.library,
            same_disk_ok=ok,
            phones=phones_of(self.desired.targets),
        )
        return groups, disks

    def source_side(self, a: RemoveFromSource) -> SourceSide:
        """The item's own files and folder, which never count as its copies."""
        source = self.conn.sources[a.source_id]
        item = self.items[(a.source_id, a.item_key)]
        paths = [p for f in item.files if (p := source.local_path(item, f)) is not None]
        cfg = self.desired.sources.get(a.source_id)
        root = Path(cfg.path) if isinstance(cfg, FolderSourceConfig) else None
        return SourceSide(files=paths, root=root, held=frozenset(_identities(paths)))

    def forget_copy(self, store: Store, copy: FileCopy) -> None:
        """A copy proved wrong is no copy: drop it from this run, and from the
        hash cache, so the next observation re-reads it and plans a repair
        instead of trusting a stale (size, mtime) until the next reverify."""
        self.copies.get(copy.store_id, {}).pop(copy.sha256, None)
        path = store.local_path(copy.path)
        if path is not None:
            self.db.forget_hashes([str(path)])
