"""The configured places on this machine: the folders of the sources, the
library, the targets and the state directory, told apart by identity.

The configuration refuses places that are one folder, or one inside
another, by their paths (``config.places``). A bind mount, or a share
mounted twice, is invisible to paths: a target's disk mounted inside a
source folder would be listed as the source's items and removed from it,
deleting the target's files; a target mounted inside another would count
one file as two copies. So the observer takes each place's identity
(device, inode) here, and every walk stops at one it meets below its root
(``providers.filesystem.scan_tree``, ``NestedPlaceError``). Before any
walk, ``held`` finds the same from the kernel's mount table (the mount
points below a folder, and only those stat'ed): ``init-target`` refuses to
mark such a folder, and ``validate`` fails a place that holds another.

A mount below a place may also show a *part* of another place (a NAS's
year folder bind-mounted inside the import folder, a library folder inside
a target): no place's folder is met, yet its files would be listed as this
place's. ``shown_below`` finds those from the mount table, by where each
mount's folder really is (``providers.mounts.locate``), and the walk stops at
them too (``Fences``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

from providers import mounts
from providers.filesystem import Fences
from providers.mounts import Location, Mount, locate, mount_of, mount_table
from reconciler import config
from reconciler.errors import ConfigError


def fences(desired: config.DesiredState) -> Fences:
    """Every configured place's folder by its identity (device, inode), with
    its key in the file: a walk that meets one below its root stops there
    (``scan_tree``). The configuration compares paths; a bind mount or a
    share mounted twice shows only here. Two places that are one folder
    are refused, as the configuration refuses two equal paths. With them,
    the mounts below a place that show a part of one (``shown_below``)."""
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
    problems.extend(_own_file_held(desired, found))
    if problems:
        raise ConfigError(problems)
    mounts: dict[tuple[int, int], dict[int, str]] = {}
    files: dict[tuple[int, int], dict[str, tuple[int, str]]] = {}
    for alias in shown_below(desired):
        if alias.folder:
            mounts.setdefault(alias.identity, {})[alias.mount] = alias.what
        elif (holder := identity(alias.at.parent)) is not None:
            files.setdefault(holder, {})[alias.at.name] = (alias.mount, alias.what)
    return Fences({identity: key for identity, (key, _) in found.items()}, mounts, files)


def _own_file_held(
    desired: config.DesiredState, found: dict[tuple[int, int], tuple[str, Path]]
) -> list[str]:
    """The configuration file inside a folder source or the library through
    a mount (a card's folder bind-mounted around it): paths cannot show it
    (the configuration refuses it by path: ``config._check_own_file``), the
    identities of the folders above it do. Asked at every run, before any
    walk could import it and a removal take it."""
    if not desired.file:
        return []
    for above in Path(desired.file).parents:
        key, path = found.get(identity(above) or (-1, -1), ("", Path()))
        if config.imports_from(key):
            return [config.own_file_inside(desired.file, key, path, f", {THROUGH_A_MOUNT}")]
    return []


@attrs.frozen(kw_only=True)
class Alias:
    """A mount at ``at``, below the configured place ``walked``, that shows
    a part of the place ``key`` (its folder ``root``): a walk of ``walked``
    would list that place's files as its own. ``folder``: it shows a
    folder (else a single file); ``overlay``: it shows it merged with
    others (an overlayfs one of whose layers is in, or holds, ``key``).
    ``identity`` is the folder or file shown at ``at``, ``mount`` the
    mount's id."""

    at: Path
    walked: str
    key: str
    root: Path
    identity: tuple[int, int]
    mount: int
    folder: bool = True
    overlay: bool = False

    @property
    def what(self) -> str:
        """What the mount is, said after "``at`` is ": it names ``key``."""
        if self.overlay:
            return f"an overlay showing files of {self.key} ({self.root})"
        kind = "folder" if self.folder else "file"
        return f"a mount of a {kind} inside {self.key} ({self.root})"


def shown_below(desired: config.DesiredState) -> list[Alias]:
    """Every mount below a configured place's folder whose folder or file
    (where it really is: ``locate``) lies inside another place's, or inside
    the same place's at a second path; and every overlay there one of whose
    layers lies in or holds a place. (One that shows a place's whole
    folder, or a folder holding it, is met by the place's identity:
    ``fences``, ``held``.) A folder mounted over itself (``mount --bind X
    X``) shows nothing new, a mount a place itself lies in is the way to
    it, not an alias, and a mount hidden under another mounted on the same
    point (or above it) is reached by no walk. Only the mounts found so are
    looked at (a dead share elsewhere is never touched)."""
    table = mount_table()
    if not table:
        return []
    located: list[tuple[str, Path, Location]] = []
    for key, path in config.places(desired):
        root = Path(os.path.realpath(path))
        where = locate(root, table)
        if where is not None:
            located.append((key, root, where))
    found: list[Alias] = []
    for mount in table.values():
        at = Path(mount.point)
        walked = next((key for key, root, _ in located if root in at.parents), None)
        if walked is None or _over_itself(mount, table):
            continue  # no walk crosses it, or it shows what was there anyway
        layers = _layers(mount, table)
        shows = [Location(mount.device, mount.root)] if layers is None else layers
        for key, root, where in located:
            if at == root or at in root.parents:
                continue  # the way to the place, or around it: ``held``
            if layers is None and (shows[0] == where or not shows[0].within(where)):
                continue  # one showing a place's whole folder: ``held``
            if layers is not None and not any(layer.overlaps(where) for layer in layers):
                continue
            met = reached(at)
            if met is not None and met[0] in (mount.id, None):
                found.append(
                    Alias(
                        at=at,
                        walked=walked,
                        key=key,
                        root=root,
                        identity=met[1],
                        mount=mount.id,
                        folder=met[2],
                        overlay=layers is not None,
                    )
                )
            break
    return found


def _layers(mount: Mount, table: dict[int, Mount]) -> list[Location] | None:
    """Where the folders an overlay shows are (``Mount.layers``), those
    that can be looked at; None for a mount that shows only its own
    filesystem's folder (or folders the table does not name)."""
    shown = mount.layers()
    if not shown:
        return None
    return [where for layer in shown if (where := locate(layer, table)) is not None]


def reached(at: Path) -> tuple[int | None, tuple[int, int], bool] | None:
    """What a walk meets at the mount point ``at``: the id of the mount it
    reaches there (the topmost: one mounted over another hides it; None
    where the kernel does not say), the folder's or file's identity, and
    whether it is a folder. None if it cannot be looked at."""
    try:
        fd = os.open(at, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        mount = mount_of(fd)
    finally:
        os.close(fd)
    return mount, (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode)


def _over_itself(mount: Mount, table: dict[int, Mount]) -> bool:
    """The mount shows the very folder that is at its mount point below it."""
    parent = table.get(mount.parent)
    under = parent.location(mount.point) if parent is not None else None
    return under == Location(mount.device, mount.root)


def refuse_output(desired: config.DesiredState, path: Path, what: str) -> None:
    """Refuse to write ``what`` (a file a person named: ``plan --out``, a
    report) at ``path`` inside a source, the library, a target or over the
    state directory's own files (``config.overwrites``): by its path, and
    through a mount by the identity of each folder above it; nor over a
    device, a pipe or a socket. ConfigError says where."""
    inside = config.overwrites(desired, path)
    if not inside:
        try:
            fenced = fences(desired)
        except ConfigError:
            fenced = Fences()  # two places that are one folder: refused on their own
        folder = Path(os.path.realpath(path)).parent
        for above in (folder, *folder.parents):
            # (one not made yet has no identity: nothing of a place there)
            key = fenced.get(identity(above) or (-1, -1))
            if key is not None and key != "state.dir":
                inside = key
                break
    kind = config.not_a_file(path)
    if kind:
        # A report replaces its file whole: over a device, the device.
        raise ConfigError([f"{what} {path}: that is {kind}, not a file; name a file"])
    if inside == config.OWN_FILE:
        raise ConfigError([f"{what} {path}: that is {inside}; write it elsewhere"])
    if inside:
        raise ConfigError(
            [
                f"{what} {path}: inside {inside}, whose files it could overwrite "
                "(photos, backups, the state); write it elsewhere"
            ]
        )


#: Said of a place met by identity only (``meeting``).
THROUGH_A_MOUNT = "reached through a mount or another way in"


def meeting(desired: config.DesiredState, path: Path, own: set[str]) -> tuple[str, str]:
    """How the folder ``path`` meets a configured place whose key is not in
    ``own``: it is one, lies inside one or holds one, by path after links,
    or through a mount by identity (``fences``, ``held``); with how it was
    met when paths do not show it (", reached through a mount …"); ("", "")
    when it meets none."""
    real = Path(os.path.realpath(path))
    for key, place in config.places(desired):
        root = Path(os.path.realpath(place))
        if real == root and key not in own:
            return f"it is {key}", ""
        if root in real.parents:
            return f"it is inside {key} ({root})", ""
        if real in root.parents:
            return f"it holds {key} ({root})", ""
    try:
        fenced = fences(desired)
    except ConfigError:
        fenced = Fences()  # two places that are one folder: validate says so
    # Paths miss a bind mount, or a share mounted twice: compare the
    # identities of the folders above, and of the mounts below (``held``).
    existing = real
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for above in (existing, *existing.parents):
        met = fenced.get(identity(above) or (-1, -1))
        if met is None or (above == real and met in own):
            continue
        where = "it is" if above == real else "it is inside"
        return f"{where} {met}", f", {THROUGH_A_MOUNT}"
    for key, root, at in held(desired, real) if existing == real else []:
        how = THROUGH_A_MOUNT if at == real else f"through the mount at {at}"
        return f"it holds {key} ({root})", f", {how}"
    return "", ""


#: The kernel's table of this process's mounts (Linux). Where it cannot be
#: read (another OS), no mount below a folder is seen: paths, and the
#: identities of the folders above, still are.
MOUNTINFO = mounts.MOUNTINFO


def mount_points(mountinfo: str = MOUNTINFO) -> frozenset[Path]:
    """Every mount point of this process, from the kernel's table
    (``providers.mounts.mount_table``): one read of a small file, no walk and
    no stat (a dead share's is never touched)."""
    return frozenset(Path(m.point) for m in mount_table(mountinfo).values())


def held(desired: config.DesiredState, path: Path) -> list[tuple[str, Path, Path]]:
    """The configured places the folder ``path`` holds where its path does
    not show it: (key, the place's real folder, where it is reached), one
    per place. ``where`` is a mount point below ``path`` (from the kernel's
    table; only those are stat'ed) whose folder is the place's, or one above
    it on its filesystem, so a walk of ``path`` meets the place's folder
    there (``scan_tree`` stops: ``NestedPlaceError``); or ``path`` itself
    when it is, by identity, a folder above a place's (a bind mount of it).
    Places not there (unmounted, not made yet) hold nothing and are held by
    nothing."""
    real = Path(os.path.realpath(path))
    mounted = mount_points()
    above = _holders(desired, mounted)
    below = sorted(p for p in mounted if real in p.parents)
    found: dict[str, tuple[str, Path, Path]] = {}
    for at in (real, *below):
        for key, root, its_own in above.get(identity(at) or (-1, -1), ()):
            if at == real and its_own:
                continue  # it *is* that place: ``fences`` and ``meeting`` say so
            found.setdefault(key, (key, root, at))
    return list(found.values())


def _holders(
    desired: config.DesiredState, mounted: frozenset[Path]
) -> dict[tuple[int, int], list[tuple[str, Path, bool]]]:
    """By identity, each configured place's folder (True) and those above it
    on its own filesystem, up to the mount it lies in (False): a mount of
    any of them shows the place below it."""
    folders: dict[tuple[int, int], list[tuple[str, Path, bool]]] = {}
    for key, place in config.places(desired):
        root = Path(os.path.realpath(place))
        try:
            device = os.stat(root).st_dev
        except OSError:
            continue  # not there: nothing of it can be reached anywhere
        for folder in (root, *root.parents):
            try:
                st = os.stat(folder)
            except OSError:
                break
            if st.st_dev != device:
                break
            folders.setdefault((st.st_dev, st.st_ino), []).append((key, root, folder == root))
            if folder in mounted:
                break  # above it is another filesystem's folder, or the one under the mount
    return folders


def identity(path: Path) -> tuple[int, int] | None:
    """The folder or file at ``path`` (device, inode), None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
