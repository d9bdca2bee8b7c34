"""A place mounted *below* a folder: paths cannot show it, the kernel's
mount table and the folders' identities do (``places.held``). init-target
refuses to mark a folder that holds a configured place or a marked store
that way, and validate fails a place that holds another, as plan then finds
it unavailable (its walk stops there: ``NestedPlaceError``).

The mounts are real bind mounts, made as root (CI runs the tests as root)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import MARKER, read_marker, write_marker
from reconciler import places
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace, mounted, run_cli
from tests.reconciler.test_init_target_checks import WHY

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_the_mount_table_is_read_with_its_octal_escapes(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_bytes(
        b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        b"40 22 8:17 / /mnt/my\\040disk rw shared:2 - ext4 /dev/sdb1 rw\n"
        b"41 22 8:17 /a /mnt/tab\\011and\\134back rw - ext4 /dev/sdb1 rw\n"
        b"42 22 0:5 / /mnt/caf\\303\\251 rw - tmpfs tmpfs rw\n"
    )
    assert places.mount_points(str(table)) == {
        Path("/"),
        Path("/mnt/my disk"),
        Path("/mnt/tab\tand\\back"),
        Path("/mnt/café"),
    }
    assert places.mount_points(str(tmp_path / "no-such-table")) == frozenset()


def test_a_folder_holding_a_bind_mount_of_a_source_is_refused(tmp_path: Path) -> None:
    """The card (the folder source) is bind-mounted below the folder being
    marked: the new store would hold the source."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    data = tmp_path / "mnt" / "data"
    with mounted(data / "the card", "--bind", str(ws.incoming)) as card:
        r = ws.run("init-target", str(data), "--id", "usb2")
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"error: refusing to mark {data} as the store 'usb2': it holds "
            f"sources.incoming.path ({ws.incoming}) in {ws.config}, through the mount at "
            f"{card}{WHY}"
        )
    # a bind of a folder above the source shows it as well
    with mounted(data / "home", "--bind", str(ws.root)) as home:
        r = ws.run("init-target", str(data), "--id", "usb2")
        assert r.err.startswith(
            f"error: refusing to mark {data} as the store 'usb2': it holds sources.incoming.path "
            f"({ws.incoming}) in {ws.config}, through the mount at {home};"
        )
    assert read_marker(data) is None


def test_a_source_bind_mounted_inside_a_targets_own_folder_is_refused(tmp_path: Path) -> None:
    """The target's own folder with its own id is what init-target is for,
    but not while a source is mounted inside it."""
    ws = make_workspace(
        tmp_path / "ws",
        extra=KEEP_ORIGINALS
        + '[targets.big]\nkind = "filesystem"\npath = "../big"\nsame_disk_ok = true\n',
    )
    big = tmp_path / "big"
    with mounted(big / "card", "--bind", str(ws.incoming)) as card:
        r = ws.run("init-target", str(big), "--id", "big")
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"error: refusing to mark {big} as the store 'big': it holds sources.incoming.path "
            f"({ws.incoming}) in {ws.config}, through the mount at {card}{WHY}"
        )
        assert read_marker(big) is None
    r = ws.run("init-target", str(big), "--id", "big")  # unmounted: its own folder again
    assert (r.code, r.err) == (0, "")


def test_validate_fails_a_source_mounted_inside_a_target_as_plan_refuses_it(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    nas = ws.target("nas")
    with mounted(nas / "my card", "--bind", str(ws.incoming)) as card:
        plan = ws.run("plan", now=NOW)
        assert plan.code == 1 and "! unavailable target nas" in plan.out
        v = ws.run("validate")
        assert v.code == 1
        fails = [line for line in v.out.splitlines() if line.startswith("FAIL")]
        assert fails == [
            f"FAIL  targets.nas.path: {nas} holds sources.incoming.path ({ws.incoming}) through "
            f"the mount at {card}; its walk stops there: plan finds targets.nas.path "
            "unavailable; sources, library, targets and the state directory must not contain "
            "one another: unmount it, or give each a folder of its own"
        ]
    v = ws.run("validate")
    assert (v.code, v.err) == (0, "")


def test_validate_fails_a_target_that_is_a_bind_mount_of_a_folder_above_a_source(
    tmp_path: Path,
) -> None:
    """The target's folder itself is a mount of the workspace: its walk
    meets the source's folder below it."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    nas = ws.target("nas")
    (nas / MARKER).unlink()
    nas.rmdir()
    with mounted(nas, "--bind", str(ws.root)):
        v = ws.run("validate")
        assert v.code == 1
        assert (
            f"FAIL  targets.nas.path: {nas} holds sources.incoming.path ({ws.incoming}) through "
            "a mount of a folder above it; its walk stops there"
        ) in v.out


def test_a_folder_holding_a_marked_store_is_refused_without_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no configuration (the quick start) only markers are compared:
    marking the folder around a marked store is refused as marking one
    inside it is. The markers' usual places are looked at, not the whole
    tree: each sub-folder, and each mount point below with its sub-folders."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_CONFIG", raising=False)
    disk = tmp_path / "disk"
    r = run_cli(["init-target", str(disk / "usb"), "--id", "usb", "--create"], now=NOW)
    assert (r.code, r.err) == (0, "")
    r = run_cli(["init-target", str(disk), "--id", "nas"], now=NOW)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"error: refusing to mark {disk} as the store 'nas': it holds the store 'usb' "
        f"({disk / 'usb' / MARKER}){WHY}"
    )
    assert read_marker(disk) is None
    # a disk mounted deeper down, marked in a folder of its own (/mnt/nas/photos)
    nas = tmp_path / "nasdisk"
    write_marker(nas / "photos", "nas")
    mnt = tmp_path / "mnt"
    with mounted(mnt / "shares" / "nas", "--bind", str(nas)) as share:
        r = run_cli(["init-target", str(mnt), "--id", "usb2"], now=NOW)
        assert r.err == (
            f"error: refusing to mark {mnt} as the store 'usb2': it holds the store 'nas' "
            f"({share / 'photos' / MARKER}){WHY}"
        )
    assert read_marker(mnt) is None
