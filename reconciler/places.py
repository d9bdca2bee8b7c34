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
            # (one not made yet has no identity: nothing of a place there)
            key = fenced.get(identity(above) or (-1, -1))
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


#: Said of a place met by identity only (``meeting``).
THROUGH_A_MOUNT = "reached through a mount or another way in"


def meeting(desired: config.DesiredState, path: Path, own: set[str]) -> tuple[str, bool]:
    """How the folder ``path`` meets a configured place whose key is not in
    ``own``: it is one, lies inside one or holds one, by path after links,
    or through a mount by identity (``fences``; True then); "" when it
    meets none."""
    real = Path(os.path.realpath(path))
    every = [(key, Path(os.path.realpath(place))) for key, place in config.places(desired)]
    for key, root in every:
        if real == root and key not in own:
            return f"it is {key}", False
        if root in real.parents:
            return f"it is inside {key} ({root})", False
        if real in root.parents:
            return f"it holds {key} ({root})", False
    try:
        fenced = fences(desired)
    except ConfigError:
        fenced = {}  # two places that are one folder: validate says so
    # Paths miss a bind mount, or a share mounted twice: compare the
    # identities of the folders above and below.
    existing = real
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for above in (existing, *existing.parents):
        met = fenced.get(identity(above) or (-1, -1))
        if met is None or (above == real and met in own):
            continue
        where = "it is" if above == real else "it is inside"
        return f"{where} {met}", True
    mine = identity(real) if existing == real else None
    for key, root in every if mine is not None else ():
        if any(identity(folder) == mine for folder in root.parents):
            return f"it holds {key} ({root})", True
    return "", False


def identity(path: Path) -> tuple[int, int] | None:
    """The folder or file at ``path`` (device, inode), None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
