"""The removal gate: the one invariant, checked at the moment of removal.

Nothing leaves a source unless every file of the item has at least
``copies`` copies on available backup targets that hold its original bytes
*now*: each copy is re-read and re-hashed here (the phone: Syncthing's
per-file proof, through the store's ``verify``). The plan's word, the
observation's hashes and the library never count. The applier calls this
right before each removal and nowhere else decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from providers.base import Store
from reconciler.errors import ProviderError, SafetyError
from reconciler.model import FileCopy


class GateRefused(SafetyError):
    """The item stays in its source; the message says why."""


def check_removal(
    files: Iterable[tuple[str, str | None]],
    *,
    need: int,
    stores: Mapping[str, Store],
    copies: Mapping[str, Mapping[str, FileCopy]],
) -> list[str]:
    """``files`` are (name, sha256 or None if never verified). Return the
    SHA-256s when every file has ``need`` verified copies; else raise."""
    available: dict[str, bool] = {}
    shas: list[str] = []
    for name, sha in files:
        if not sha:
            raise GateRefused(f"{name}: never downloaded and verified; kept")
        good: list[str] = []
        for store_id, store in stores.items():
            copy = copies.get(store_id, {}).get(sha)
            if copy is None:
                continue
            if store_id not in available:
                available[store_id] = store.availability().available
            if available[store_id] and _verified(store, copy):
                good.append(store_id)
        if len(good) < need:
            have = ", ".join(good) or "none"
            raise GateRefused(f"{name}: {len(good)} of {need} verified copies now ({have}); kept")
        shas.append(sha)
    return shas


def _verified(store: Store, copy: FileCopy) -> bool:
    try:
        return store.verify(copy)
    except ProviderError:
        return False  # an unreadable copy is not a copy
