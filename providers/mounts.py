"""The kernel's mount table, and where a file or folder really is: its
filesystem and its path from that filesystem's own top (``Location``,
``locate``), the same through every mount that shows it (a bind mount, a
btrfs subvolume mounted on its own, a share mounted twice)."""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Mapping
from pathlib import Path

import attrs

#: The kernel's table of this process's mounts (Linux). Where it cannot be
#: read (another OS), each file's own ``st_dev`` stands for its filesystem
#: and no bind mount is seen through.
MOUNTINFO = "/proc/self/mountinfo"


_OCTAL = re.compile(rb"\\([0-7]{3})")


#: Filesystems that show other filesystems' folders merged, without the
#: mount table saying which (a FUSE pool or union: mergerfs, bindfs…): a
#: file reached through one may be any of those folders' file.
UNSEEN_LAYERS = frozenset(
    {
        "aufs",
        "unionfs",
        "fuse.bindfs",
        "fuse.fuse-overlayfs",
        "fuse.mergerfs",
        "fuse.mhddfs",
        "fuse.unionfs",
        "fuse.unionfs-fuse",
    }
)


#: An overlay's options that name the folders it shows (``layers``).
_LAYER_OPTIONS = ("upperdir", "lowerdir", "lowerdir+", "datadir+")


_LAYER_SPLIT = re.compile(r"(?<!\\):+")


@attrs.frozen(kw_only=True)
class Mount:
    """One line of the mount table: the folder ``root`` of the filesystem
    ``device`` (``os.makedev`` of the table's major:minor, one for every
    subvolume of a btrfs) shown at the mount point ``point``; ``fstype``
    and ``options`` (the filesystem's own, as the table writes them:
    escapes kept) say whether it shows other folders (``layers``)."""

    id: int
    parent: int
    device: int
    root: str
    point: str
    fstype: str = ""
    options: str = ""
    #: What is mounted, as the table names it: a block device's path
    #: (``/dev/sda3``) for a disk filesystem, else whatever its driver says
    #: (``tmpfs``, ``server:/share``).
    source: str = ""

    def location(self, path: str) -> Location | None:
        """Where ``path`` (a real path at or below ``point``) is on this
        mount's filesystem; None when it is not below ``point`` (reached
        from outside the mount: a chroot)."""
        point = self.point
        if path == point:
            below = ""
        elif path.startswith(point if point.endswith("/") else point + "/"):
            below = path[len(point) :].lstrip("/")
        else:
            return None
        return Location(
            self.device, os.path.join(self.root, below).rstrip("/") or "/", mount=self.id
        )

    def layers(self) -> tuple[str, ...] | None:
        """The folders whose files this mount shows merged, as the table
        names them (an overlay: its upper folder, then its lower ones); ()
        for a filesystem that shows only its own files; None when it shows
        other folders that the table does not name (``UNSEEN_LAYERS``), or
        names them by paths relative to a folder it does not say."""
        if self.fstype in UNSEEN_LAYERS:
            return None
        if self.fstype != "overlay":
            return ()
        found: list[str] = []
        for option in self.options.split(","):  # a comma in a path is escaped
            key, _, value = option.partition("=")
            if key in _LAYER_OPTIONS:
                # a colon in a path is written "\:"; "::" begins data-only layers
                found += (
                    layer.replace("\\:", ":")
                    for layer in _LAYER_SPLIT.split(_unescape(os.fsencode(value)))
                    if layer
                )
        if not found or not all(os.path.isabs(layer) for layer in found):
            return None
        return tuple(found)


def mount_table(mountinfo: str = MOUNTINFO) -> dict[int, Mount]:
    """Every mount of this process by its id, from the kernel's table: no
    stat (a dead share's is never touched). The table writes a space, tab,
    newline or backslash in a path as an octal escape (``\\040``). Empty
    where it cannot be read.

    Current at each call: the kernel tells a reader of the table that it
    changed (``poll``), so it is read again only then. The removal gate
    asks for it once per removal; with a few hundred mounts (snaps,
    containers), reading it each time cost more than the rest of the check."""
    global _table_generation
    with _watch_lock:
        watch = _watched.get(mountinfo)
        if watch is None or watch.pid != os.getpid() or not watch.polls or watch.changed():
            if watch is not None:
                watch.close()
            watch = _Watch.open(mountinfo)
            _table_generation += 1  # what lies beneath each filesystem may have changed too
            if watch is None:
                _watched.pop(mountinfo, None)
                return {}
            _watched[mountinfo] = watch
        return dict(watch.table)


class _Watch:
    """The mount table, kept open and parsed, with how to tell it changed:
    the kernel flags a poll of it (POLLPRI) after each mount or unmount."""

    def __init__(self, fd: int, table: dict[int, Mount], *, polls: bool) -> None:
        self.fd, self.table, self.pid = fd, table, os.getpid()
        #: only the kernel's own table says when it changed; a file does not
        self.polls = polls
        self.poll = select.poll()
        self.poll.register(fd, select.POLLPRI)

    @classmethod
    def open(cls, mountinfo: str) -> _Watch | None:
        try:
            fd = os.open(mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            watch = cls(fd, {}, polls=mountinfo.startswith("/proc/"))
            watch.changed()  # from here on, a change is flagged: then read it
            watch.table = _parse(_read_all(fd))
        except OSError:
            os.close(fd)
            return None
        return watch

    def changed(self) -> bool:
        """Whether the table changed since the last ask (or cannot tell)."""
        try:
            return bool(self.poll.poll(0))
        except OSError:
            return True

    def close(self) -> None:
        if self.pid == os.getpid():
            os.close(self.fd)  # a forked child's copy is the parent's to close


_watched: dict[str, _Watch] = {}


_watch_lock = threading.Lock()


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(table: bytes) -> dict[int, Mount]:
    found = {}
    for line in table.splitlines():
        fields = line.split(b" ", 5)
        if len(fields) < 5:
            continue
        # id, parent, major:minor, root, mount point, options, [optional
        # fields], "-", filesystem type, source, the filesystem's options
        major, _, minor = fields[2].partition(b":")
        _, dash, own = fields[5].partition(b" - ") if len(fields) > 5 else (b"", b"", b"")
        fstype, _, rest = own.partition(b" ")
        source, _, options = rest.partition(b" ")
        try:
            mount = Mount(
                id=int(fields[0]),
                parent=int(fields[1]),
                device=os.makedev(int(major), int(minor)),
                root=_unescape(fields[3]),
                point=_unescape(fields[4]),
                fstype=_unescape(fstype) if dash else "",
                options=os.fsdecode(options) if dash else "",
                source=_unescape(source) if dash else "",
            )
        except ValueError:
            continue  # not a line of a mount table
        found[mount.id] = mount
    return found


def _unescape(raw: bytes) -> str:
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m[1], 8) & 0xFF]), raw))


@attrs.frozen
class Location:
    """Where a file or folder really is: its filesystem (``disk_at``) and
    its path from that filesystem's own top, the same through every mount
    that shows it (a bind mount of a folder, a btrfs subvolume mounted on
    its own, a share mounted twice)."""

    device: int
    path: str
    #: the id of the mount it was reached through, when known
    mount: int | None = attrs.field(default=None, eq=False)

    def within(self, other: Location) -> bool:
        """This is ``other``, or lies inside it."""
        if self.device != other.device:
            return False
        top = other.path.rstrip("/") + "/"
        return self.path == other.path or self.path.startswith(top)

    def overlaps(self, other: Location) -> bool:
        """One of the two is, or lies inside, the other."""
        return self.within(other) or other.within(self)


#: bumped each time ``mount_table`` reads the table anew
_table_generation = 0


def table_generation() -> int:
    """How many times ``mount_table`` read the table anew: what lies beneath
    each filesystem may have changed since."""
    return _table_generation


def locate(path: Path | str, table: Mapping[int, Mount] | None = None) -> Location | None:
    """Where ``path`` (after links) really is, through the mount it is
    reached by (the kernel says which, by the mount's id); None if it
    cannot be looked at. ``table``: the mount table, read once by a caller
    that locates many paths; read here otherwise. Without a table (another
    OS), the file's own ``st_dev`` and real path stand for it."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        mount = mount_of(fd)
        real = _real_path(fd) or os.path.realpath(path)
    finally:
        os.close(fd)
    mounts = mount_table() if table is None else table
    found = mounts.get(mount) if mount is not None else None
    if found is None:
        return Location(st.st_dev, real, mount=mount)
    return found.location(real) or Location(st.st_dev, real, mount=mount)


def _real_path(fd: int) -> str | None:
    """The path the kernel has for the open file ``fd`` (Linux): the real
    path, links followed, in one system call where ``realpath`` looks at
    each folder above it; None when it has none to give."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return real if real.startswith("/") and not real.endswith(" (deleted)") else None


def mount_of(fd: int) -> int | None:
    """The id of the mount the descriptor ``fd`` was opened through (Linux)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
