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
The configuration refuses such overlaps; this is the defence in depth.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from providers.base import ConfirmingStore, Store
from reconciler.errors import ProviderError, SafetyError
from reconciler.independence import Groups, count_backups
from reconciler.model import FileCopy


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
    its files and the source's root. Empty for a remote source (iCloud)."""

    files: Sequence[Path] = ()
    root: Path | None = None


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
) -> list[str]:
    """``files`` are (name, sha256 or None if never verified). Return the
    SHA-256s when every file has ``need`` verified copies on independent
    disks (``groups``, from ``reconciler.independence``); else raise."""
    groups = groups or {}
    available: dict[str, bool] = {}
    own = _identities(source.files)
    root = os.path.realpath(source.root) if source.root is not None else None
    shas: list[str] = []
    for name, sha in files:
        if not sha:
            raise GateRefused(f"{name}: never downloaded and verified; kept")
        good: list[str] = []
        inside: list[str] = []
        away: list[str] = []
        for store_id, store in stores.items():
            copy = copies.get(store_id, {}).get(sha)
            if copy is None:
                continue
            if _is_source_side(store.local_path(copy.path), own, root):
                inside.append(store_id)
                continue
            if store_id not in available:
                available[store_id] = _usable(store)
            if not available[store_id]:
                away.append(store_id)
                continue
            if _verified(store, copy):
                good.append(store_id)
            elif on_mismatch is not None:
                on_mismatch(store, copy)
        count = count_backups(good, groups)
        if count < need:
            have = ", ".join(good) or "none"
            why = f"{name}: {count} of {need} verified copies now ({have})"
            if count < len(good):
                why += "; copies on one disk count once"
            if inside:
                why += f"; not counted: {', '.join(inside)} (inside the source itself)"
            if away:
                why += f"; unavailable now: {', '.join(away)}"
            raise GateRefused(
                f"{why}; kept", unavailable=count_backups(good + away, groups) >= need
            )
        shas.append(sha)
    return shas


def _identities(paths: Sequence[Path]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _is_source_side(path: Path | None, own: set[tuple[int, int]], root: str | None) -> bool:
    """The copy is the source's file itself, or lives inside the source."""
    if path is None:
        return False
    if root is not None:
        real = os.path.realpath(path)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    if own:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in own
    return False


def _usable(store: Store) -> bool:
    """Available now; a phone also proved alive this run (its canary arrived):
    without that, its per-file answers prove nothing."""
    if not store.availability().available:
        return False
    return not isinstance(store, ConfirmingStore) or store.prove_alive().alive


def _verified(store: Store, copy: FileCopy) -> bool:
    try:
        return store.verify(copy)
    except ProviderError:
        return False  # an unreadable copy is not a copy
