"""A target that is a disk image (an encrypted container, an ``.img``
mounted through a loop device) lies on the disk that holds the image's
file. Kept on the library's own disk, it dies with the library: it is no
independent backup, though its loop device has a number of its own, and it
counted as one, so a photo was off-loaded with one real backup."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from providers.physical_disks import disk_at
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace, mounted

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2020, 1, 2, tzinfo=UTC)


@contextmanager
def image_disk(image: Path, at: Path) -> Iterator[Path]:
    """An ext4 disk image at ``image``, mounted at ``at`` through a loop device."""
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    with mounted(at, "-o", "loop", str(image)):
        try:
            yield at
        finally:
            subprocess.run(["umount", "--detach-loop", str(at)], check=False)


def test_a_target_in_an_image_on_the_library_disk_is_not_a_backup(tmp_path: Path) -> None:
    with (
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs"),
        image_disk(tmp_path / "nas.img", tmp_path / "nas") as nas,
    ):
        write_marker(nas, "nas")
        write_marker(tmp_path / "usb", "usb")
        targets = '[targets.nas]\nkind = "filesystem"\npath = "nas"\n'
        targets += '[targets.usb]\nkind = "filesystem"\npath = "usb"\n'
        ws = make_workspace(tmp_path, targets=targets, extra=KEEP_ORIGINALS, stores=("library",))
        # the image's file is on the library's disk; its filesystem is not
        assert disk_at(nas) == disk_at(ws.library) != disk_at(tmp_path / "usb")
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        r = ws.run("apply", "--yes", now=NOW)
        assert photo in files_under(nas).values(), r.out
        assert "IMG_1.JPG" in files_under(ws.incoming), r.out  # one backup is not two
        checked = ws.run("validate")
        assert "targets.nas: not a backup" in checked.out, checked.out


def test_an_image_on_a_disk_of_its_own_counts(tmp_path: Path) -> None:
    """The same image kept on another disk is that disk's backup."""
    with (
        mounted(tmp_path / "elsewhere", "-t", "tmpfs", "tmpfs") as elsewhere,
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs"),
        image_disk(elsewhere / "nas.img", tmp_path / "nas") as nas,
    ):
        write_marker(nas, "nas")
        write_marker(tmp_path / "usb", "usb")
        targets = '[targets.nas]\nkind = "filesystem"\npath = "nas"\n'
        targets += '[targets.usb]\nkind = "filesystem"\npath = "usb"\n'
        ws = make_workspace(tmp_path, targets=targets, extra=KEEP_ORIGINALS, stores=("library",))
        assert disk_at(nas) == disk_at(elsewhere) != disk_at(ws.library)
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        assert files_under(ws.incoming) == {}, r.out  # two disks of their own
