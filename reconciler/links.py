"""Copies that are one file with another: hard links.

A deduplicating tool run over a disk (``rdfind -makehardlinks``, ``jdupes
-L``) replaces identical files by hard links: a target's copy may become the
same file as another target's copy, or the source's own file. The removal
gate counts the first once and never counts the second
(``reconciler.gate``); the plan and the census must count them as the gate
will, or the plan schedules a removal the gate refuses on every run, and
status calls an item archived twice that is one file.

- ``one_file_twice``: copies of two targets on one filesystem that are one
  file, from the inodes the hash cache recorded when their trees were last
  walked, each pair found so checked by a stat of both files, as the gate
  checks it (a record is no observation: a folder swapped with another
  since keeps its files' ctimes, and a row its walk trusted may have named
  the file that was there); it costs nothing unless two targets share a
  filesystem, and a stat per file found linked.
- the copies that are a source's own file are found by observation
  (``reconciler.observe.hard_links``), which has the source's files.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Mapping

from reconciler.state import StateDB

Identity = tuple[int, int]


def one_file_twice(
    db: StateDB, roots: Mapping[str, str], separately: Collection[str]
) -> dict[str, dict[str, str]]:
    """Target -> SHA-256 -> the target before it (in ``roots``' order, the
    order the gate reads them) whose copy is the very file this target holds
    it by, for every SHA-256 a target holds by no file of its own.

    ``roots``: the folder of each filesystem target mounted now. Two files
    are one when their filesystem (``st_dev`` of the target's root) and
    inode are: as recorded by the last walk (the hash cache), and so now
    (``_one_file``): a recorded pair never stands for a link unchecked.
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
    counted: dict[Identity, tuple[str, str]] = {}  # file -> the target it counts for, its path
    found: dict[str, dict[str, str]] = {}
    for tid, dev in devices.items():
        if dev not in shared:
            continue
        own: set[str] = set()
        linked: dict[str, str] = {}
        for path, sha, inode in db.inodes_under(os.path.join(roots[tid], "")):
            first, there = counted.setdefault((dev, inode), (tid, path))
            if first == tid or not _one_file(there, path):
                own.add(sha)
            else:
                linked.setdefault(sha, first)
        linked = {sha: first for sha, first in linked.items() if sha not in own}
        if linked:
            found[tid] = linked
    return found


def _one_file(a: str, b: str) -> bool:
    """Are the files at ``a`` and ``b``, recorded as one, one file now? A
    file that cannot be stat'ed keeps the record's word: a copy is never
    counted twice on a guess (the gate stats it again before a removal)."""
    try:
        one, two = os.stat(a), os.stat(b)
    except OSError:
        return True
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)
