"""Copies count on physical disks, not on filesystems.

A disk that dies takes every copy on it. Two partitions of one USB disk
(8:17, 8:18), or a "backup" partition beside the library's on one internal
disk, have device numbers of their own and passed for two disks: a photo
was removed from its source with one real backup, and ``validate`` warned of
nothing. So each filesystem is followed down, through sysfs, to the whole
disks it lies on (``providers.physical_disks.beneath``): a partition to its disk, an
LVM, LUKS or RAID device to the devices under it, a disk image (a loop
device, or a partition of one) to the disk its file is on.

The real cases use a real MBR-partitioned image attached with ``losetup
--partscan`` (root needed, as the other mount tests; CI runs as root). The
stacked devices (device-mapper, md) cannot be made here: a sysfs tree laid
out as the kernel lays it out stands for them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from providers.mounts import Location, locate
from providers.physical_disks import beneath, disk_at
from tests.helpers import (
    KEEP_ORIGINALS,
    NAS_AND_USB,
    files_under,
    make_jpeg,
    make_workspace,
    mounted,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2020, 1, 2, tzinfo=UTC)


def _mbr_image(image: Path, mib: int) -> None:
    """A disk image of ``mib`` MiB with an MBR of two Linux partitions."""
    size = mib << 20
    half = (size // 512 - 2048) // 2
    mbr = bytearray(512)
    for slot, start in enumerate((2048, 2048 + half)):
        at = 446 + 16 * slot
        mbr[at : at + 16] = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", start, half)
    mbr[510:512] = b"\x55\xaa"
    with open(image, "wb") as f:
        f.truncate(size)
        f.write(mbr)


@contextmanager
def one_disk_two_partitions(
    image: Path, first: Path, second: Path, first_fs: str = "ext4"
) -> Iterator[None]:
    """One disk (the image file ``image``) of two partitions, an ext4 each
    (the first: ``first_fs``), mounted at ``first`` and ``second`` for the block."""
    _mbr_image(image, 300 if first_fs == "btrfs" else 64)  # a btrfs needs 114 MiB at least
    loop = subprocess.run(
        ["losetup", "--find", "--show", "--partscan", str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        parts = [f"{loop}p1", f"{loop}p2"]
        for _ in range(50):  # udev may be slow, or absent: then ask the kernel
            if all(os.path.exists(p) for p in parts):
                break
            subprocess.run(["partx", "-a", loop], capture_output=True)
            time.sleep(0.05)
        for p, fs in zip(parts, (first_fs, "ext4"), strict=True):
            force = "-f" if fs == "btrfs" else "-F"
            subprocess.run([f"mkfs.{fs}", "-q", force, p], check=True, capture_output=True)
        with mounted(first, parts[0]), mounted(second, parts[1]):
            yield
    finally:
        subprocess.run(["partx", "-d", loop], capture_output=True)
        subprocess.run(["losetup", "--detach", loop], capture_output=True)


def _targets(nas: Path | str, usb: Path | str) -> str:
    return (
        f'[targets.nas]\nkind = "filesystem"\npath = "{nas}"\n'
        f'[targets.usb]\nkind = "filesystem"\npath = "{usb}"\n'
    )


# ------------------------------------------------------ real partitions


def test_two_partitions_of_one_disk_are_one_backup(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with (
        mounted(tmp_path / "holder", "-t", "tmpfs", "-o", "size=80m", "tmpfs") as holder,
        one_disk_two_partitions(holder / "usb-disk.img", root / "nas", root / "usb"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        assert os.stat(root / "nas").st_dev != os.stat(root / "usb").st_dev
        assert disk_at(root / "nas") == disk_at(root / "usb") == disk_at(holder)
        ws = make_workspace(root, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",))
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        r = ws.run("apply", "--yes", now=NOW)
        assert photo in files_under(root / "nas").values(), r.out + r.err
        assert photo in files_under(root / "usb").values(), r.out + r.err
        # one USB disk dying takes both "copies": the card's photo stays
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
        assert "on the same disk as usb" in r.out, r.out
        v = ws.run("validate")
        assert "warn  targets.nas: not a backup: on the same disk as usb" in v.out, v.out


def test_a_partition_of_an_image_on_the_library_disk_is_not_a_backup(tmp_path: Path) -> None:
    """An image kept on the library's disk, mounted by partition (a loop
    device's partition, 259:N, not the loop device itself)."""
    root = tmp_path / "ws"
    with (
        mounted(tmp_path / "other", "-t", "tmpfs", "tmpfs") as other,
        one_disk_two_partitions(tmp_path / "usb-disk.img", root / "nas", tmp_path / "unused"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(other / "usb", "usb")
        ws = make_workspace(
            root, targets=_targets("nas", other / "usb"), extra=KEEP_ORIGINALS, stores=("library",)
        )
        # the image's file is on the very disk the library is on
        assert disk_at(root / "nas") == disk_at(ws.library) != disk_at(other)
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        r = ws.run("apply", "--yes", now=NOW)
        assert photo in files_under(root / "nas").values(), r.out + r.err
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
        assert "on the library's own disk" in r.out, r.out
        v = ws.run("validate")
        assert "warn  targets.nas: not a backup: on the library's own disk" in v.out, v.out


def test_a_target_on_another_partition_of_the_library_disk_is_not_a_backup(
    tmp_path: Path,
) -> None:
    """The commonest form: one internal disk, the library on one partition
    (/home) and a "backup" partition beside it."""
    root = tmp_path / "ws"
    with (
        mounted(tmp_path / "holder", "-t", "tmpfs", "-o", "size=80m", "tmpfs") as holder,
        mounted(tmp_path / "other", "-t", "tmpfs", "tmpfs") as other,
        one_disk_two_partitions(holder / "disk.img", root / "library", root / "nas"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(other / "usb", "usb")
        ws = make_workspace(
            root, targets=_targets("nas", other / "usb"), extra=KEEP_ORIGINALS, stores=("library",)
        )
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        r = ws.run("apply", "--yes", now=NOW)
        assert photo in files_under(root / "nas").values(), r.out + r.err
        # the library's disk dying takes the library and the nas "backup"
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
        v = ws.run("validate")
        assert "warn  targets.nas: not a backup: on the library's own disk" in v.out, v.out


def test_a_btrfs_partition_beside_another_of_its_disk_is_one_backup(tmp_path: Path) -> None:
    """A btrfs gives its files numbers of major 0, no block device's: the
    mount table names the partition it was mounted from, and that
    partition's disk is the one it dies with."""
    root = tmp_path / "ws"
    with (
        mounted(tmp_path / "holder", "-t", "tmpfs", "-o", "size=320m", "tmpfs") as holder,
        one_disk_two_partitions(holder / "disk.img", root / "nas", root / "usb", "btrfs"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        assert os.major(os.stat(root / "nas").st_dev) == 0  # btrfs: no block device's number
        assert disk_at(root / "nas") == disk_at(root / "usb") == disk_at(holder)
        ws = make_workspace(
            root, targets=_targets(root / "nas", root / "usb"), extra=KEEP_ORIGINALS
        )
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        r = ws.run("apply", "--yes", now=NOW)
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
        assert "on the same disk as" in r.out, r.out


def test_partitions_of_two_disks_are_two_backups(tmp_path: Path) -> None:
    """Partitions of disks of their own still count, one each."""
    root = tmp_path / "ws"
    with (
        mounted(tmp_path / "a", "-t", "tmpfs", "-o", "size=80m", "tmpfs") as a,
        mounted(tmp_path / "b", "-t", "tmpfs", "-o", "size=80m", "tmpfs") as b,
        one_disk_two_partitions(a / "disk.img", root / "nas", tmp_path / "a-unused"),
        one_disk_two_partitions(b / "disk.img", root / "usb", tmp_path / "b-unused"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        ws = make_workspace(root, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",))
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        assert files_under(ws.incoming) == {}, r.out
        assert "not a backup" not in ws.run("validate").out


_IN_A_NAMESPACE_WITHOUT_SYSFS = """
import subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/sys"], check=True)
from reconciler.cli import main
for args in (["apply", "--yes"], ["validate"]):
    print("==", args[0], "exit", main(["-c", sys.argv[1], *args]), flush=True)
"""


def test_without_sysfs_nothing_is_known_to_be_off_the_librarys_disk(tmp_path: Path) -> None:
    """Where sysfs cannot be read (a container without /sys), which disk a
    block device is cannot be told: the library here is on one (the test
    machine's disk), so no target is known to be off it, and nothing is
    removed; ``validate`` says why. (The targets are two tmpfs: each is a
    disk of its own, which needs no sysfs to tell.)"""
    root = tmp_path / "ws"
    with (
        mounted(root / "nas", "-t", "tmpfs", "tmpfs"),
        mounted(root / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        ws = make_workspace(root, targets=NAS_AND_USB, extra=KEEP_ORIGINALS)
        library = locate(ws.library)
        assert library is not None and os.major(library.device), "the library: on a block device"
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        unshared = ["unshare", "--mount", "--propagation", "private"]
        script = [sys.executable, "-c", _IN_A_NAMESPACE_WITHOUT_SYSFS, str(ws.config)]
        r = subprocess.run([*unshared, *script], capture_output=True, text=True, cwd=root)
        assert "== validate exit 0" in r.stdout, r.stdout + r.stderr
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.stdout
        # the plan judges the targets as the gate would: no removal is planned
        assert "! shared-disk (2): not a backup: which disk the library is on cannot be told" in (
            r.stdout
        ), r.stdout
        assert "remove-from-source" not in r.stdout, r.stdout
        assert "== apply exit 0" in r.stdout, r.stdout
        assert "warn  targets.nas: not a backup: which disk the library is on cannot be told" in (
            r.stdout
        ), r.stdout
        # the same, with sysfs: two disks of their own
        assert ws.run("apply", "--yes").code == 0
        assert files_under(ws.incoming) == {}


# --------------------------------------------- stacked devices, in a sysfs tree


class FakeSys:
    """A sysfs tree at ``root`` laid out as Linux lays it out: each device's
    folder under ``devices`` (a partition's inside its disk's), with its
    ``dev``; ``dev/block/M:m`` and ``class/block/NAME`` link to it; a stacked
    device's ``slaves`` link to the folders of the devices under it; a loop
    device names its image in ``loop/backing_file``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders: dict[str, Path] = {}

    def add(
        self,
        name: str,
        number: str,
        *,
        disk: str = "",
        slaves: tuple[str, ...] = (),
        image: str | None = None,
    ) -> int:
        parent = self.folders[disk] if disk else self.root / "devices/virtual/block"
        folder = parent / name
        folder.mkdir(parents=True)
        (folder / "dev").write_text(number + "\n")
        if disk:
            (folder / "partition").write_text("1\n")
        else:
            (folder / "slaves").mkdir()
            for slave in slaves:
                (folder / "slaves" / slave).symlink_to(self.folders[slave])
        if image is not None:
            (folder / "loop").mkdir()
            (folder / "loop/backing_file").write_text(image + "\n")
        for link in (self.root / "dev/block" / number, self.root / "class/block" / name):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder)
        self.folders[name] = folder
        major, _, minor = number.partition(":")
        return os.makedev(int(major), int(minor))

    def under(self, device: int) -> tuple[frozenset[str], int, str]:
        """The disks (by name) ``device`` lies on, its disk's number, and what could not be told."""
        found = beneath(Location(device, "/"), {}, sys=str(self.root))
        numbers = {f"{os.major(d)}:{os.minor(d)}": d for d in found.disks}
        names = frozenset(
            name
            for name, folder in self.folders.items()
            if (folder / "dev").exists() and (folder / "dev").read_text().strip() in numbers
        )
        return names, found.disk, found.unknown


def _machine(tmp_path: Path) -> tuple[FakeSys, dict[str, int]]:
    """Three SATA disks and an NVMe one; an LVM volume group over sda2 and
    sdb1, with a LUKS volume inside it; a RAID over sdc1 and nvme0n1p1."""
    fake = FakeSys(tmp_path / "sys")
    n = {}
    for name, number in (("sda", "8:0"), ("sdb", "8:16"), ("sdc", "8:32"), ("nvme0n1", "259:0")):
        n[name] = fake.add(name, number)
    for name, number, disk in (
        ("sda1", "8:1", "sda"),
        ("sda2", "8:2", "sda"),
        ("sdb1", "8:17", "sdb"),
        ("sdb2", "8:18", "sdb"),
        ("sdc1", "8:33", "sdc"),
        ("sdc2", "8:34", "sdc"),
        ("nvme0n1p1", "259:1", "nvme0n1"),
    ):
        n[name] = fake.add(name, number, disk=disk)
    n["dm-0"] = fake.add("dm-0", "253:0", slaves=("sda2", "sdb1"))  # LVM
    n["dm-1"] = fake.add("dm-1", "253:1", slaves=("dm-0",))  # LUKS in it
    n["md0"] = fake.add("md0", "9:0", slaves=("sdc1", "nvme0n1p1"))  # RAID
    return fake, n


def test_a_partition_is_on_its_disk(tmp_path: Path) -> None:
    fake, n = _machine(tmp_path)
    assert fake.under(n["sda1"]) == (frozenset({"sda"}), n["sda"], "")
    assert fake.under(n["nvme0n1p1"])[0] == {"nvme0n1"}
    assert fake.under(n["sda"]) == (frozenset({"sda"}), n["sda"], "")


def test_a_stacked_device_is_on_every_disk_under_it(tmp_path: Path) -> None:
    fake, n = _machine(tmp_path)
    assert fake.under(n["dm-0"])[0] == {"sda", "sdb"}
    assert fake.under(n["dm-1"])[0] == {"sda", "sdb"}  # LUKS in LVM: down both
    assert fake.under(n["md0"])[0] == {"sdc", "nvme0n1"}


def test_filesystems_sharing_any_disk_share_a_number(tmp_path: Path) -> None:
    """The number stands for every disk joined by a stacked device: a
    partition of sdb beside the volume group over sda and sdb is on its
    disk; one of a disk no stacked device touches is not."""
    fake, n = _machine(tmp_path)
    lvm = fake.under(n["dm-1"])[1]
    assert fake.under(n["sdb2"])[1] == fake.under(n["sda1"])[1] == lvm
    assert fake.under(n["sdc2"])[1] == fake.under(n["md0"])[1] != lvm
    alone = fake.add("sdd", "8:48")
    assert fake.under(alone)[1] == alone not in {lvm, fake.under(n["md0"])[1]}


def test_a_partition_of_a_disk_image_is_on_the_disk_of_its_file(tmp_path: Path) -> None:
    fake, _ = _machine(tmp_path)
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    here = locate(tmp_path)
    assert here is not None
    fake.add("vda", f"{os.major(here.device)}:{os.minor(here.device)}")
    fake.add("loop0", "7:0", image=str(image))
    part = fake.add("loop0p1", "259:8", disk="loop0")
    found = beneath(Location(part, "/"), sys=str(fake.root))
    assert (found.disks, found.unknown) == ({here.device}, "")
    assert [(name, at.path) for name, at in found.images] == [(str(image), here.path + "/disk.img")]


def test_what_sysfs_does_not_show_is_said_not_guessed(tmp_path: Path) -> None:
    fake, n = _machine(tmp_path)
    (fake.folders["sdb1"] / "dev").unlink()  # one device under the LVM unreadable
    names, _, unknown = fake.under(n["dm-0"])
    assert names == {"sda"}
    assert unknown == (
        f"{fake.root}/dev/block/253:0: No such file or directory "
        f"({fake.folders['dm-0']}/slaves/sdb1/dev)"
    )
    gone = fake.add("loop1", "7:1", image=str(tmp_path / "deleted.img (deleted)"))
    assert fake.under(gone)[2] == (
        f"{fake.root}/dev/block/7:1: its image file {tmp_path}/deleted.img (deleted) "
        "cannot be looked at"
    )
    missing = beneath(Location(os.makedev(8, 64), "/"), sys=str(tmp_path / "no-sysfs"))
    assert missing.unknown == f"{tmp_path}/no-sysfs/dev/block/8:64: No such file or directory"
    assert missing.disks == frozenset()


def test_a_filesystem_of_no_block_device_is_its_own_disk(tmp_path: Path) -> None:
    """tmpfs, a network share, FUSE: major 0, no sysfs needed."""
    found = beneath(Location(os.makedev(0, 77), "/"), sys=str(tmp_path / "no-sysfs"))
    assert (found.disk, found.disks, found.unknown) == (
        os.makedev(0, 77),
        {os.makedev(0, 77)},
        "",
    )
