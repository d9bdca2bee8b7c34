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
