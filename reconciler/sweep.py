"""Debris of a killed run: the temporary files it left behind.

Every write goes to a temporary name first and is renamed into place only
once complete and fsynced: ``.reconcile-tmp-*`` beside its destination in a
filesystem store (library, NAS), ``.reconcile-tmp/`` inside a Syncthing
folder, ``fetch-*`` folders in the state directory. A run killed in between
(SIGKILL from cron's timeout, the OOM killer, a power cut) leaves them
there. They are never counted as copies (observe skips them), but they
fill disks and confuse people, so the next run removes them, and the copies
of the state database a killed backup left half made (``reconciler.backup``).

Only under the run lock, and only files last changed before that lock: no
other run of this state directory is alive then, and the kernel keeps the
lock taken until every encoder of a killed run is gone
(``reconciler.lifeline``). "Changed" is the inode's change time (ctime),
which only the kernel sets: the tool dates its temporaries itself (an
encode, a download or a sidecar gets the capture time before its rename),
to any date a camera clock had, even one in the future, and a file's
ctime moves to now whenever anything is written to it or its dates are set.
A target without its marker is not touched: it may be a bare mount point.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import NamedTuple

from providers import folder as folder_source
from providers.filesystem import TMP_PREFIX, FilesystemStore
from reconciler import backup, config, places
from reconciler.connect import Connected
from reconciler.errors import ConfigError

FETCH_PREFIX = "fetch-"


def sweep_debris(desired: config.DesiredState, conn: Connected, *, before: float) -> list[Path]:
    """Remove temporaries last changed before ``before`` (epoch seconds),
    and the copies killed backups of the state database left; return what
    was removed. Errors are skipped: debris is never worth failing a run for."""
    removed: list[Path] = []
    stores = [conn.library, *conn.targets.values()]
    fenced = _fences(desired)
    for store in stores:
        if isinstance(store, FilesystemStore) and store.availability().available:
            removed += _remove(_temporaries(store.root, fenced), before)
    for tid, cfg in desired.targets.items():
        if isinstance(cfg, config.SyncthingTarget):
            from providers.syncthing.ignores import TMP_DIR

            staging = Path(cfg.path) / TMP_DIR
            # never through a link: its files are not our temporaries
            if staging.is_dir() and not staging.is_symlink() and tid in conn.targets:
                removed += _remove(_files_in(staging), before)
    removed += _remove(_fetch_dirs(desired.state_dir), before)
    with contextlib.suppress(OSError):
        removed += backup.remove_unfinished(desired.state_dir / backup.FOLDER)
    return removed


class Restoring(NamedTuple):
    """What ``restore_aside`` did: the files put back, and the folder
    sources where files may still be aside (not reachable now)."""

    restored: list[Path]
    unreached: frozenset[str]


def restore_aside(
    desired: config.DesiredState,
    sources: Collection[str] | None = None,
    *,
    listed: Collection[str] = (),
) -> Restoring:
    """Put back the files left aside while removing them from a folder
    source (``providers.folder.FolderSource.remove``) by a run killed or
    one that could not put them back then: each goes back to its whole
    name, unless another file took the name since (then it stays aside, a
    file every listing shows). Walks the folder sources (``sources``, by
    id; every one when None), so only when a file may be aside there.

    A source whose folder holds nothing though its last listing held items
    (``listed``: their ids), as the listing guard judges an empty listing
    (a card's bare mount point), or where a file could not be put back now
    (a card still read-only), is unreached: looked at again."""
    restored: list[Path] = []
    unreached: set[str] = set()
    fenced = _fences(desired)
    for sid, cfg in desired.sources.items():
        if not isinstance(cfg, config.FolderSource) or (sources is not None and sid not in sources):
            continue
        root = Path(cfg.path)
        if not _holds_anything(root):
            if sid in listed or not root.is_dir():
                unreached.add(sid)
            continue
        aside: dict[str, list[str]] = {}  # folder -> the names aside in it (and records)
        for entry in _files_under(root, fenced):
            if folder_source.ASIDE_MARK in entry.name:
                aside.setdefault(os.path.dirname(entry.path), []).append(entry.name)
        for folder, names in aside.items():
            done = folder_source.restore(Path(folder), names)
            restored += (Path(folder, name) for name in done.back)
            if done.stuck:
                unreached.add(sid)
    return Restoring(restored, frozenset(unreached))


def _holds_anything(root: Path) -> bool:
    try:
        with os.scandir(root) as it:
            return next(it, None) is not None
    except OSError:
        return False


def _fences(desired: config.DesiredState) -> set[tuple[int, int]]:
    """The configured places' identities (``places.fences``): no sweep goes
    into another place through a mount inside the one it sweeps (a target's
    disk mounted in a source folder keeps its files' names)."""
    try:
        return set(places.fences(desired))
    except ConfigError:
        return set()  # two places that are one folder: the run refuses them next


def _temporaries(root: Path, fences: set[tuple[int, int]]) -> Iterator[os.DirEntry[str]]:
    """Every ``.reconcile-tmp-*`` file under ``root``."""
    return (e for e in _files_under(root, fences) if e.name.startswith(TMP_PREFIX))


def _files_under(root: Path, fences: set[tuple[int, int]]) -> Iterator[os.DirEntry[str]]:
    """Every file under ``root``: links not followed, and no folder below it
    entered that is a configured place (``fences``, by identity)."""
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)  # a mount's root, if one
                        if (st.st_dev, st.st_ino) not in fences:
                            stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        yield entry
        except OSError:
            continue


def _files_in(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            yield from (e for e in it if e.is_file(follow_symlinks=False))
    except OSError:
        return


def _fetch_dirs(state_dir: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(state_dir) as it:
            yield from (
                e for e in it if e.name.startswith(FETCH_PREFIX) and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return


def _remove(entries: Iterator[os.DirEntry[str]], before: float) -> list[Path]:
    removed = []
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_ctime >= before:
                continue  # changed after the lock was taken: a live run's own
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
