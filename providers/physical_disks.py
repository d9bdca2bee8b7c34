"""Which physical disk a store's copies live on: a filesystem followed
through sysfs to the whole disks it dies with (``beneath``: a partition to
its disk; LVM, LUKS, RAID to every disk under them; a disk image to the
disk holding its file; a btrfs to the devices it was made on), so that two
copies on one disk count once."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from providers.base import ConfirmingStore, Store
from providers.mounts import Location, Mount, locate, mount_table, table_generation


def disk_of(store: Store, table: Mapping[int, Mount] | None = None) -> int | None:
    """The disk (``disk_at``) a store's copies live on: None for a store
    whose copies live on another device (the phone) or not on this
    machine. ``table``: as ``locate``'s."""
    found = root_of(store, table)
    return None if found is None else beneath(found, table).disk


def root_of(store: Store, table: Mapping[int, Mount] | None = None) -> Location | None:
    """Where a store's root really is (``locate``): None for a store whose
    copies live on another device (the phone) or not on this machine."""
    if isinstance(store, ConfirmingStore):
        return None
    root = store.local_path(".")
    return None if root is None else locate(root, table)


def disk_at(path: Path | str, table: Mapping[int, Mount] | None = None) -> int | None:
    """The physical disk the file or folder at ``path`` is on, as one number
    (``beneath``: shared by every filesystem on that disk, or on a disk
    stacked with it); None if it cannot be looked at. Not a file's
    ``st_dev``: btrfs gives each subvolume a number of its own, so two
    subvolumes of one disk would pass for two disks; the kernel's mount
    table names the filesystem itself (``locate``; ``table`` as there).
    Nor the filesystem's own number: two partitions of one disk have one
    each, and a filesystem read from a disk image (a loop device) is on the
    disk that holds the image's file. Where sysfs cannot say all of it,
    the number of what it could see (``Beneath.unknown`` says what not)."""
    found = locate(path, table)
    return None if found is None else beneath(found, table).disk


#: Where Linux describes each block device and how it is stacked (sysfs).
SYS = "/sys"


#: Disks stack a few deep at most (a partition of an image in an LVM on a RAID).
_DEPTH = 12


@attrs.frozen(kw_only=True)
class Beneath:
    """What a filesystem lies on, all the way down (``beneath``): ``disks``,
    the whole physical disks it dies with, by device number (a partition's
    disk; an LVM, LUKS or RAID device's disks; a disk image's, the disk
    holding its file); ``disk``, one number standing for them, the same for
    every filesystem sharing any disk with them (so one disk is one backup);
    ``images``, the disk-image files it is read from and where each lies;
    ``unknown``, what could not be looked at ("" if nothing): then ``disks``
    may miss some, and nothing is known to be off them."""

    disk: int
    disks: frozenset[int]
    images: tuple[tuple[str, Location], ...] = ()
    unknown: str = ""


def beneath(where: Location, table: Mapping[int, Mount] | None = None, sys: str = SYS) -> Beneath:
    """The physical disks the filesystem of ``where`` lies on (``Beneath``),
    from a few reads of sysfs, kept until the mount table changes. A
    filesystem of no block device (tmpfs, a network share, FUSE, an overlay
    or a btrfs: numbers of major 0) is its own disk. ``table``: as
    ``locate``'s, to find a disk image's file."""
    table = mount_table() if table is None else table  # (read: a change empties the cache)
    if _seen.generation != table_generation():
        _seen.found, _seen.links, _seen.generation = {}, {}, table_generation()
    key = (sys, where.device)
    found = _seen.found.get(key)
    if found is None:
        walk = _Walk(table, sys)
        walk.filesystem(where.device, 0)
        joined: Mapping[int, int] | str = {}
        if any(os.major(d) for d in walk.disks):  # a block device: may share a disk
            if sys not in _seen.links:
                _seen.links[sys] = _joined(table, sys)
            joined = _seen.links[sys]
        found = Beneath(
            disk=min((_at(joined, d) for d in walk.disks), default=where.device),
            disks=frozenset(walk.disks),
            images=tuple(walk.images),
            unknown="; ".join([*walk.unknown, *([joined] if isinstance(joined, str) else [])]),
        )
        _seen.found[key] = found
    return found


class _Seen:
    """What ``beneath`` looked at, kept until the mount table changes."""

    def __init__(self) -> None:
        self.generation = -1
        self.found: dict[tuple[str, int], Beneath] = {}
        self.links: dict[str, Mapping[int, int] | str] = {}


_seen = _Seen()


def _at(joined: Mapping[int, int] | str, disk: int) -> int:
    return disk if isinstance(joined, str) else joined.get(disk, disk)


class _Walk:
    """One look down from a device to the disks under it (``beneath``)."""

    def __init__(self, table: Mapping[int, Mount], sys: str) -> None:
        self.table, self.sys = table, sys
        self.disks: set[int] = set()
        self.images: list[tuple[str, Location]] = []
        self.unknown: list[str] = []

    def filesystem(self, device: int, depth: int) -> None:
        if os.major(device) != 0:
            self.block(device, depth)
            return
        # A number of major 0 is no block device's, yet a btrfs has one (one
        # per subvolume, too): the table names the device it was mounted
        # from, and sysfs every device of it.
        source = next(
            (m.source for m in self.table.values() if m.device == device and m.source), ""
        )
        if not source.startswith("/dev/"):
            self.disks.add(device)  # no block device (tmpfs, a share, FUSE): its own disk
            return
        try:
            held = _block_device(source, self.sys)
        except OSError as e:
            self.unknown.append(f"{source}: {e.strerror or e}")
            return
        for member in _btrfs_members(held, self.sys) or [held]:
            self.block(member, depth + 1)

    def block(self, device: int, depth: int) -> None:
        node = f"{self.sys}/dev/block/{os.major(device)}:{os.minor(device)}"
        try:
            if depth > _DEPTH:
                raise OSError(f"disks stacked more than {_DEPTH} deep")
            real = os.path.realpath(node, strict=True)
            if os.path.exists(f"{real}/partition"):  # a partition: its disk is the folder above
                self.block(_device_in(os.path.dirname(real)), depth + 1)
            elif os.path.isdir(f"{real}/loop"):  # a disk image: on the disk of its file
                image = _backing_file(real)
                found = locate(image, self.table)
                if found is None:
                    raise OSError(f"its image file {image} cannot be looked at")
                self.images.append((image, found))
                self.filesystem(found.device, depth + 1)
            elif slaves := _slaves(real):  # LVM, LUKS, RAID: on every device under it
                for slave in slaves:
                    self.block(_device_in(f"{real}/slaves/{slave}"), depth + 1)
            else:
                self.disks.add(device)
        except OSError as e:
            inner = e.filename if e.filename and not f"{node}/".startswith(e.filename) else None
            self.unknown.append(f"{node}: {e.strerror or e}" + (f" ({inner})" if inner else ""))


def _block_device(source: str, sys: str) -> int:
    """The block device a mount table's source (``/dev/sda3``,
    ``/dev/mapper/vg-home``) names: its node's, else (no such node in this
    /dev: a container) the one sysfs knows by that name."""
    try:
        st = os.stat(source)
    except OSError:
        st = None
    if st is not None and stat.S_ISBLK(st.st_mode):
        return st.st_rdev
    name = os.path.basename(source)
    if os.path.exists(f"{sys}/class/block/{name}/dev"):
        return _device_in(f"{sys}/class/block/{name}")
    for node in os.listdir(f"{sys}/class/block"):  # a device-mapper name
        try:
            with open(f"{sys}/class/block/{node}/dm/name", encoding="utf-8") as f:
                if f.read().strip() == name:
                    return _device_in(f"{sys}/class/block/{node}")
        except OSError:
            continue
    raise OSError(f"no block device named {source} is known to sysfs")


def _btrfs_members(device: int, sys: str) -> list[int]:
    """Every device of the btrfs that ``device`` belongs to (one may span
    several disks), as sysfs lists them; [] when it lists none."""
    try:
        name = os.path.basename(
            os.path.realpath(f"{sys}/dev/block/{os.major(device)}:{os.minor(device)}")
        )
        filesystems = os.listdir(f"{sys}/fs/btrfs")
    except OSError:
        return []
    for fsid in filesystems:
        folder = f"{sys}/fs/btrfs/{fsid}/devices"
        try:
            members = os.listdir(folder)
        except OSError:
            continue
        if name in members:
            return sorted(_device_in(os.path.realpath(f"{folder}/{m}")) for m in members)
    return []


def _device_in(folder: str) -> int:
    """The device number a sysfs folder of a block device says (``dev``)."""
    with open(f"{folder}/dev", encoding="ascii", errors="replace") as f:
        major, _, minor = f.read().strip().partition(":")
    if not (major.isdigit() and minor.isdigit()):
        raise OSError(f"{folder}/dev names no device")
    return os.makedev(int(major), int(minor))


def _backing_file(real: str) -> str:
    with open(f"{real}/loop/backing_file", encoding="utf-8", errors="surrogateescape") as f:
        name = f.read().rstrip("\n")
    if not name:
        raise OSError("the loop device shows no image file")
    return name


def _slaves(real: str) -> list[str]:
    """The devices a stacked device is made of (none for a plain disk)."""
    try:
        return sorted(os.listdir(f"{real}/slaves"))
    except FileNotFoundError:
        return []


def _joined(table: Mapping[int, Mount], sys: str) -> Mapping[int, int] | str:
    """Each disk that a stacked device of this machine (an LVM volume group,
    a RAID) spans together with others -> the smallest number of all the
    disks so joined, so a filesystem on any of them shares a number with
    one spanning them. Why not, when sysfs cannot be listed."""
    try:
        names = sorted(os.listdir(f"{sys}/class/block"))
    except OSError as e:
        return f"{sys}/class/block: {e.strerror or e}"
    groups: list[set[int]] = []
    for name in names:
        walk = _Walk(table, sys)
        try:
            if _slaves(f"{sys}/class/block/{name}"):
                walk.block(_device_in(f"{sys}/class/block/{name}"), 0)
        except OSError:
            continue  # not ours to judge: a store on it says so on its own walk
        touching = [g for g in groups if g & walk.disks]
        groups = [g for g in groups if not g & walk.disks]
        groups.append(walk.disks.union(*touching))
    return {d: min(g) for g in groups for d in g}
