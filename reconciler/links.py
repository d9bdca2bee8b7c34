"""Copies that are one file with another: hard links.

A deduplicating tool run over a disk (``rdfind -makehardlinks``, ``jdupes
-L``) replaces identical files by hard links: a target's copy may become the
same file as another target's copy, or the source's own file. The removal
gate counts the first once and never counts the second
(``reconciler.gate``); the plan and the census must count them as the gate
will, or the plan schedules a removal the gate refuses on every run, and
status calls an item archived twice that is one file.

- ``one_file_twice``: copies of two targets on one filesystem that are one
  file, from the inodes the hash cache recorded when their trees were walked
  (no file is looked at again); it costs nothing unless two targets share a
  filesystem.
- ``the_sources_own``: target copies that are a source's own file. Only the
  files a source holds now are asked (a removal is weighed on nothing else),
  and only while removal is on: a converged library's sources hold what is
  recent, so a no-op plan stats next to nothing more.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

from providers.base import ConfirmingStore, Source, Store
from reconciler.model import SourceState, TargetState
from reconciler.state import StateDB

#: How a copy that is another's file is named (the gate words it alike).
SAME_FILE = "the same file as"
THE_SOURCES_OWN = f"{SAME_FILE} the source's own (a hard link)"

Identity = tuple[int, int]


def linked_to(first: str) -> str:
    """Why a copy counts for nothing: it is ``first``'s copy."""
    return f"{SAME_FILE} {first}'s copy (a hard link)"


def one_file_twice(
    db: StateDB, roots: Mapping[str, str], separately: Collection[str]
) -> dict[str, dict[str, str]]:
    """Target -> SHA-256 -> the target before it (in ``roots``' order, the
    order the gate reads them) whose copy is the very file this target holds
    it by, for every SHA-256 a target holds by no file of its own.

    ``roots``: the folder of each filesystem target mounted now. Two files
    are one when their filesystem (``st_dev`` of the target's root) and
    inode are; inodes are as recorded by this run's walk (the hash cache).
    Only targets sharing a filesystem with one that counts on its own
    there (``separately``: ``same_disk_ok``) are looked at: without one,
    their copies count once anyway."""
    devices: dict[str, int] = {}
    for tid, root in roots.items():
        try:
            devices[tid] = os.stat(root).st_dev
        except OSError:
            continue
    sharing = Counter(devices.values())
    shared = {devices[tid] for tid in separately if sharing[devices.get(tid, -1)] > 1}
    counted: dict[Identity, str] = {}  # file -> the target it counts for
    found: dict[str, dict[str, str]] = {}
    for tid, dev in devices.items():
        if dev not in shared:
            continue
        own: set[str] = set()
        linked: dict[str, str] = {}
        for sha, inode in db.inodes_under(os.path.join(roots[tid], "")):
            first = counted.setdefault((dev, inode), tid)
            if first == tid:
                own.add(sha)
            else:
                linked.setdefault(sha, first)
        linked = {sha: first for sha, first in linked.items() if sha not in own}
        if linked:
            found[tid] = linked
    return found


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
