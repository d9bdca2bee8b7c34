"""Observation's side of hard links (``reconciler.links``): each target copy
that is another's file is judged no backup, as the removal gate judges it.

The copies that are a source's own file are found here, where the
source's files are: only the files a source holds now are asked (a removal
is weighed on nothing else), and only while removal is on. A converged
library's sources hold what is recent, so a no-op plan stats next to
nothing more.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from providers.base import ConfirmingStore, Source, Store
from reconciler.config import DesiredState, FilesystemTarget, same_disk_ok
from reconciler.connect import Connected
from reconciler.independence import THE_SOURCES_OWN, linked_to
from reconciler.links import Identity, one_file_twice
from reconciler.model import SourceState, TargetState
from reconciler.state import StateDB


def judged(
    desired: DesiredState,
    db: StateDB,
    conn: Connected,
    sources: Sequence[SourceState],
    targets: tuple[TargetState, ...],
    known: Mapping[tuple[str, str, str], str],
) -> tuple[TargetState, ...]:
    """``targets`` with each copy that is another's file (``reconciler.links``:
    the same file as an earlier target's copy, or a source's own) judged no
    backup, as the removal gate judges it (``TargetState.elsewhere``)."""
    roots = {
        t.target_id: cfg.path
        for t in targets
        if t.available and isinstance(cfg := desired.targets.get(t.target_id), FilesystemTarget)
    }
    twice = one_file_twice(db, roots, same_disk_ok(desired))
    own = (
        the_sources_own(
            sources, conn.sources, known, ((t, conn.targets[t.target_id]) for t in targets)
        )
        if desired.policy.removal.enabled
        else {}
    )
    if not twice and not own:
        return targets
    judged = []
    for t in targets:
        tid = t.target_id
        # (a copy reached through a mount below the target is judged on its own already)
        lost = {
            sha: (None, linked_to(first))
            for sha, first in twice.get(tid, {}).items()
            if sha not in t.elsewhere
        }
        lost.update((sha, (None, THE_SOURCES_OWN)) for sha in own.get(tid, ()))
        judged.append(attrs.evolve(t, elsewhere={**t.elsewhere, **lost}) if lost else t)
    return tuple(judged)


def the_sources_own(
    sources: Sequence[SourceState],
    source_of: Mapping[str, Source],
    known: Mapping[tuple[str, str, str], str],
    targets: Iterable[tuple[TargetState, Store]],
) -> dict[str, set[str]]:
    """Target -> the SHA-256s whose copy there is a file of a source's own
    (the same inode), of the files the trusted sources list now."""
    own = _held_by_sources(sources, source_of, known)
    found: dict[str, set[str]] = {}
    if not own:
        return found
    for t, store in targets:
        if not t.available or isinstance(store, ConfirmingStore):
            continue
        # the copy the gate reads of a SHA-256 held twice: the last listed
        last = {c.sha256: c.path for c in t.copies if c.sha256 in own}
        for sha, rel in last.items():
            path = store.local_path(rel)
            held = _identity(path) if path is not None else None
            if held is not None and held in own[sha]():
                found.setdefault(t.target_id, set()).add(sha)
    return found


class _Files:
    """The identities of the source files of one SHA-256, stat'ed on first
    need (only a SHA-256 a target holds too is ever asked)."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self._found: set[Identity] | None = None

    def __call__(self) -> set[Identity]:
        if self._found is None:
            self._found = {held for p in self.paths if (held := _identity(p)) is not None}
        return self._found


def _held_by_sources(
    sources: Sequence[SourceState],
    source_of: Mapping[str, Source],
    known: Mapping[tuple[str, str, str], str],
) -> dict[str, _Files]:
    """SHA-256 -> the files on this machine holding it, of every file a
    trusted folder source lists."""
    own: dict[str, _Files] = {}
    for source in sources:
        src = source_of.get(source.source_id)
        if not source.trusted or source.remote or src is None:
            continue
        sid = source.source_id
        for item in source.items:
            for f in item.files:
                sha = f.sha256 or known.get((sid, item.key, f.ref))
                path = src.local_path(item, f) if sha is not None else None
                if sha is not None and path is not None:
                    own.setdefault(sha, _Files()).paths.append(path)
    return own


def _identity(path: Path) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
