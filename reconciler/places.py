"""The configured places on this machine: the folders of the sources, the
library, the targets and the state directory, told apart by identity.

The configuration refuses places that are one folder, or one inside
another, by their paths (``config.places``). A bind mount, or a share
mounted twice, is invisible to paths: a target's disk mounted inside a
source folder would be listed as the source's items and removed from it,
deleting the target's files; a target mounted inside another would count
one file as two copies. So the observer takes each place's identity
(device, inode) here, and every walk stops at one it meets below its root
(``providers.filesystem.scan_tree``, ``NestedPlaceError``).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler import config
from reconciler.errors import ConfigError


def fences(desired: config.DesiredState) -> dict[tuple[int, int], str]:
    """Every configured place's folder by its identity (device, inode), with
    its key in the file: a walk that meets one below its root stops there
    (``scan_tree``). The configuration compares paths; a bind mount or a
    share mounted twice shows only here. Two places that are one folder
    are refused, as the configuration refuses two equal paths."""
    found: dict[tuple[int, int], tuple[str, Path]] = {}
    problems: list[str] = []
    for key, path in config.places(desired):
        try:
            st = os.stat(path)
        except OSError:
            continue  # not there (unmounted, not made yet): its listing says so
        seen = found.setdefault((st.st_dev, st.st_ino), (key, path))
        if seen[0] != key:
            problems.append(
                f"{seen[0]} ({seen[1]}) and {key} ({path}) are the same folder, reached "
                "through a mount or another way in; give each its own"
            )
    if problems:
        raise ConfigError(problems)
    return {identity: key for identity, (key, _) in found.items()}


def refuse_output(desired: config.DesiredState, path: Path, what: str) -> None:
    """Refuse to write ``what`` (a file a person named: ``plan --out``, a
    report) at ``path`` inside a source, the library, a target or over the
    state directory's own files (``config.overwrites``): by its path, and
    through a mount by the identity of each folder above it. ConfigError
    says where."""
    inside = config.overwrites(desired, path)
    if not inside:
        try:
            fenced = fences(desired)
        except ConfigError:
            fenced = {}  # two places that are one folder: refused on their own
        folder = Path(os.path.realpath(path)).parent
        for above in (folder, *folder.parents):
            try:
                st = os.stat(above)
            except OSError:
                continue  # not made yet: nothing of a place there
            key = fenced.get((st.st_dev, st.st_ino))
            if key is not None and key != "state.dir":
                inside = key
                break
    if inside:
        raise ConfigError(
            [
                f"{what} {path}: inside {inside}, whose files it could overwrite "
                "(photos, backups, the state); write it elsewhere"
            ]
        )
