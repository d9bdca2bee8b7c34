"""The plan counts each target copy on the disk its own file is on, as the
removal gate does (``reconciler.disks``): a mount below a target's root (a
folder of another disk, an overlay) or a target root that is itself an
overlay over the library. Were the plan to count such a copy by its
target root's disk, it would promise the removal every run and the gate
refuse it every run (exit 3 for ever, never settling).

Real mounts (tmpfs, bind, overlay), made as root, as the repository's other
mount tests are."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from tests.helpers import (
    KEEP_ORIGINALS,
    NAS_AND_USB,
    files_under,
    make_jpeg,
    make_workspace,
    mounted,
    on_two_disks,
)

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_a_copy_reached_through_a_mount_onto_the_librarys_disk_is_not_counted(
    tmp_path: Path,
) -> None:
    """nas is a disk of its own, but nas/2021 is a folder of the library's
    disk (outside the library) mounted there: the NAS's copy is on the
    library's disk. The plan says so, plans no removal, and does not copy
    it again; apply then settles (exit 0, nothing refused)."""
    root = tmp_path / "ws"
    elsewhere = tmp_path / "elsewhere"  # on the library's disk
    elsewhere.mkdir()
    with on_two_disks(root, removal=True) as ws:
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        with mounted(root / "nas" / "2021", "--bind", str(elsewhere)):
            ws.run("apply", "--yes", now=NOW)  # copies made; the gate holds the item
            assert (elsewhere / "06/01/IMG_1.JPG").is_file()  # on the library's disk
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
            p = ws.run("plan", now=NOW)
            assert "remove-from-source" not in p.out, p.out
            assert "copy-to-target" not in p.out, p.out  # left there, not copied again
            assert (
                "1 of 2 verified copies; not counted: nas "
                "(its file is on the library's disk, reached through a mount); kept in the source"
            ) in p.out, p.out
            assert (
                "shared-disk target nas: its copies of 1 file are reached through a mount" in p.out
            )
            for _ in range(2):
                r = ws.run("apply", "--yes", now=NOW)
                assert r.code == 0, r.out + r.err
                assert "refused" not in r.out, r.out
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]


def test_a_copy_on_a_disk_mounted_inside_a_target_counts_on_that_disk(tmp_path: Path) -> None:
    """nas/2021 is a folder of the USB's disk mounted inside the NAS: the
    NAS's copy and the USB's are on one disk and count once, in the plan as
    at the gate. With a disk of its own mounted there instead, the copy
    counts and the item leaves its source."""
    root = tmp_path / "ws"
    with mounted(tmp_path / "usb-disk", "-t", "tmpfs", "tmpfs") as usb_disk:
        (usb_disk / "usb").mkdir()
        (usb_disk / "spare").mkdir()  # on the USB's disk, outside the USB target
        with (
            mounted(root / "nas", "-t", "tmpfs", "tmpfs"),
            mounted(root / "usb", "--bind", str(usb_disk / "usb")),
        ):
            write_marker(root / "nas", "nas")
            write_marker(root / "usb", "usb")
            ws = make_workspace(
                root, removal=True, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",)
            )
            make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
            with mounted(root / "nas" / "2021", "--bind", str(usb_disk / "spare")):
                ws.run("apply", "--yes", now=NOW)
                p = ws.run("plan", now=NOW)
                assert "remove-from-source" not in p.out, p.out
                assert "1 of 2 verified copies (copies on one disk count once)" in p.out, p.out
                r = ws.run("apply", "--yes", now=NOW)
                assert r.code == 0 and "refused" not in r.out, r.out + r.err
                assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
            with mounted(root / "nas" / "2021", "-t", "tmpfs", "tmpfs"):
                r = ws.run("apply", "--yes", now=NOW)  # the NAS's copy, on a disk of its own
                assert "remove-from-source incoming:IMG_1.JPG (" in r.out, r.out
                assert r.code == 0, r.out + r.err
                assert list(files_under(ws.incoming)) == [], r.out


def test_a_target_root_that_is_an_overlay_over_the_library_counts_for_nothing(
    tmp_path: Path,
) -> None:
    """The NAS's folder is an overlay whose lower layer is the library: the
    gate counts none of its copies (each may be the library's own file);
    the plan neither, and says why, so runs settle instead of being refused
    every time."""
    root = tmp_path / "ws"
    with (
        mounted(root / "usb", "-t", "tmpfs", "tmpfs"),
        mounted(tmp_path / "scratch", "-t", "tmpfs", "tmpfs") as scratch,
    ):
        write_marker(root / "usb", "usb")
        ws = make_workspace(
            root, removal=False, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",)
        )
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        (scratch / "work").mkdir()
        write_marker(scratch / "up", "nas")  # shown over the library's own marker
        options = f"lowerdir={ws.library},upperdir={scratch / 'up'},workdir={scratch / 'work'}"
        with mounted(root / "nas", "-t", "overlay", "overlay", "-o", options):
            ws.run("apply", "--yes", now=NOW)
            ws.removal(True)
            p = ws.run("plan", now=NOW)
            assert "remove-from-source" not in p.out, p.out
            assert "not counted: nas (its file may be in library.path" in p.out, p.out
            r = ws.run("apply", "--yes", now=NOW)
            assert r.code == 0 and "refused" not in r.out, r.out + r.err
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
