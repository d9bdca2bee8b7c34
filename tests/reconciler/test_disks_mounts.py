"""Copies count on the disk their own file is on, and no walk lists
another place's files through a mount.

- A folder of the library bind-mounted inside a target shows the library's
  own files there: the target's walk stops at it (the target is
  unavailable), and the gate, besides, never counts a copy whose file
  really lies inside the library or a source, whatever ``same_disk_ok``
  says, and counts every other copy on its own file's disk, not on its
  target root's.
- A target's folder bind-mounted inside an import folder: the source's
  walk stops there, so nothing of the NAS is listed or removed.
- Two subvolumes of one btrfs each report an ``st_dev`` of their own: the
  disk is the filesystem's, from the kernel's mount table (also for a
  nested subvolume that is not a mount point).

Real mounts (tmpfs, bind, a loop-mounted btrfs from btrfs-progs), made as
root, as the repository's other mount tests are (CI runs them as root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore, NestedPlaceError, scan_tree, write_marker
from providers.mounts import locate, mount_table
from providers.physical_disks import disk_at
from reconciler import places
from reconciler.config import load
from reconciler.gate import Disks, GateRefused, check_removal
from reconciler.hashing import sha256_file
from reconciler.model import FileCopy
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


def _rels(root: Path, **kw: object) -> list[str]:
    return sorted(e.rel for e in scan_tree(root, **kw))  # type: ignore[arg-type]


# ------------------------------------------------ a library folder in a target


def test_a_library_folder_mounted_inside_a_target_is_no_backup(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with on_two_disks(root, removal=False) as ws:
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        assert (root / "nas/2021/06/01/IMG_1.JPG").is_file()
        # The library's 2021 folder shared through the NAS: nas/2021 now is
        # library/2021 (the NAS's own 2021 folder is hidden under the mount).
        with mounted(root / "nas" / "2021", "--bind", str(ws.library / "2021")) as at:
            ws.removal(True)
            r = ws.run("apply", "--yes", now=NOW)
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
            assert f"{at}/ is a mount of a folder inside library.path ({ws.library})" in r.out
            v = ws.run("validate")
            assert v.code == 1
            assert (
                f"FAIL  targets.nas.path: {at} is a mount of a folder inside library.path "
                f"({ws.library}); its walk stops there: plan finds targets.nas.path unavailable"
            ) in v.out


def test_an_encode_never_replaces_a_counted_backup_through_such_a_mount(tmp_path: Path) -> None:
    """With compression on, the NAS's copy of the original would be written
    into the library's folder, counted, the source emptied, and the next
    run's encode would replace that very file."""
    root = tmp_path / "ws"
    with (
        mounted(root / "nas", "-t", "tmpfs", "tmpfs"),
        mounted(root / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        ws = make_workspace(root, removal=True, targets=NAS_AND_USB, stores=("library",))
        original = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, size=512).read_bytes()
        (ws.library / "2021").mkdir(parents=True)
        (root / "nas" / "2021").mkdir()
        with mounted(root / "nas" / "2021", "--bind", str(ws.library / "2021")):
            for _ in range(3):
                ws.run("apply", "--yes", now=NOW)
            holders = [p for p in ("nas", "usb") if original in files_under(root / p).values()]
            in_source = original in files_under(ws.incoming).values()
            assert in_source or len(holders) >= 2, (in_source, holders)
            assert not any(original == b for b in files_under(ws.library).values())


def _store(root: Path, store_id: str, rel: str, data: bytes) -> tuple[FilesystemStore, FileCopy]:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    write_marker(root, store_id)
    return FilesystemStore(store_id, root), FileCopy(
        store_id=store_id, path=rel, size=len(data), mtime_ns=0, sha256=sha256_file(path)
    )


def _close(stores: dict[str, FilesystemStore]) -> None:
    """Let go of each store's root (held open once verified), so that its
    disk can be unmounted."""
    for store in stores.values():
        store.close()


def _disks(library: Path, *, same_disk_ok: frozenset[str] = frozenset()) -> Disks:
    table = mount_table()
    where = locate(library, table)
    assert where is not None
    return Disks(
        library=where.device,
        places={"library.path": where},
        same_disk_ok=same_disk_ok,
        table=table,
    )


def test_the_gate_never_counts_a_copy_whose_file_is_in_the_library(tmp_path: Path) -> None:
    """The walk's fence aside (a mount made after the observation), the
    gate itself: nas's copy is, through the mount, the library's file,
    even where nas may share the library's disk."""
    photo = make_jpeg(tmp_path / "photo.jpg", OLD).read_bytes()
    library = tmp_path / "library"
    (library / "2021").mkdir(parents=True)
    (library / "2021" / "IMG_1.JPG").write_bytes(photo)
    with (
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs"),
        mounted(tmp_path / "nas", "-t", "tmpfs", "tmpfs"),
    ):
        nas, nas_copy = _store(tmp_path / "nas", "nas", "2021/IMG_1.JPG", photo)
        usb, usb_copy = _store(tmp_path / "usb", "usb", "2021/IMG_1.JPG", photo)
        sha = nas_copy.sha256
        stores = {"nas": nas, "usb": usb}
        copies = {"nas": {sha: nas_copy}, "usb": {sha: usb_copy}}
        # Two tmpfs disks: two backups.
        disks = _disks(library, same_disk_ok=frozenset({"nas"}))
        files = [("IMG_1.JPG", sha)]
        assert check_removal(files, need=2, stores=stores, copies=copies, disks=disks) == [sha]
        with mounted(tmp_path / "nas" / "2021", "--bind", str(library / "2021")):
            disks = _disks(library, same_disk_ok=frozenset({"nas"}))
            with pytest.raises(GateRefused) as e:
                check_removal(files, need=2, stores=stores, copies=copies, disks=disks)
            assert str(e.value) == (
                "IMG_1.JPG: 1 of 2 verified copies now (usb); not counted: nas (its file is "
                "in library.path, reached through a mount); kept"
            )
        _close(stores)


def test_a_copy_counts_on_its_own_files_disk(tmp_path: Path) -> None:
    """nas's root is a tmpfs of its own, but its 2021 folder is a folder of
    the library's disk mounted there (not inside the library): that copy
    is on the library's disk, no backup. The other way round, a copy on a
    disk of its own mounted inside a target on the library's disk counts."""
    photo = make_jpeg(tmp_path / "photo.jpg", OLD).read_bytes()
    library = tmp_path / "library"
    library.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with (
        mounted(tmp_path / "nas", "-t", "tmpfs", "tmpfs"),
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        (tmp_path / "nas" / "2021").mkdir()
        with mounted(tmp_path / "nas" / "2021", "--bind", str(elsewhere)):
            nas, nas_copy = _store(tmp_path / "nas", "nas", "2021/IMG_1.JPG", photo)
            usb, usb_copy = _store(tmp_path / "usb", "usb", "2021/IMG_1.JPG", photo)
            sha = nas_copy.sha256
            stores = {"nas": nas, "usb": usb}
            copies = {"nas": {sha: nas_copy}, "usb": {sha: usb_copy}}
            with pytest.raises(GateRefused) as e:
                check_removal(
                    [("IMG_1.JPG", sha)],
                    need=2,
                    stores=stores,
                    copies=copies,
                    disks=_disks(library),
                )
            assert str(e.value) == (
                "IMG_1.JPG: 1 of 2 verified copies now (nas, usb); "
                "copies on one disk count once; kept"
            )
            _close(stores)
    # A target folder on the library's disk, its copy on a tmpfs mounted there.
    with (
        mounted(tmp_path / "lib-disk-nas" / "2021", "-t", "tmpfs", "tmpfs"),
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        nas, nas_copy = _store(tmp_path / "lib-disk-nas", "nas", "2021/IMG_1.JPG", photo)
        usb, usb_copy = _store(tmp_path / "usb", "usb", "2021/IMG_1.JPG", photo)
        sha = nas_copy.sha256
        got = check_removal(
            [("IMG_1.JPG", sha)],
            need=2,
            stores={"nas": nas, "usb": usb},
            copies={"nas": {sha: nas_copy}, "usb": {sha: usb_copy}},
            disks=_disks(library),
        )
        _close({"nas": nas, "usb": usb})
        assert got == [sha]


# ---------------------------------------------- a target folder in a source


TWO_FOLDER_TARGETS = """
[targets.nas]
kind = "filesystem"
path = "nas"
same_disk_ok = true
[targets.usb]
kind = "filesystem"
path = "usb"
same_disk_ok = true
[targets.cold]
kind = "filesystem"
path = "cold"
same_disk_ok = true
"""


def test_a_targets_folder_mounted_inside_the_source_keeps_its_files(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        targets=TWO_FOLDER_TARGETS,
        extra=KEEP_ORIGINALS,
        stores=("library", "nas", "usb", "cold"),
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    nas_copy = ws.target("nas") / "2021/06/01/IMG_1.JPG"
    assert nas_copy.is_file() and not (ws.incoming / "IMG_1.JPG").exists()
    photo = nas_copy.read_bytes()
    with mounted(ws.incoming / "nas-2021", "--bind", str(ws.target("nas") / "2021")) as at:
        r = ws.run("apply", "--yes", now=NOW)
        assert f"{at}/ is a mount of a folder inside targets.nas.path" in r.out, r.out
    # The NAS's copy is a backup: never deleted by the tool.
    assert nas_copy.is_file() and nas_copy.read_bytes() == photo, r.out + r.err


def test_the_walk_stops_only_where_the_mount_shows_the_place(tmp_path: Path) -> None:
    """One folder, two ways in: the NAS's own walk lists its 2021 folder;
    the import folder's walk stops at the mount of it. A folder mounted
    over itself (``mount --bind X X``) shows nothing new and is walked."""
    ws = make_workspace(
        tmp_path / "ws", targets=TWO_FOLDER_TARGETS, stores=("library", "nas", "usb", "cold")
    )
    (ws.target("nas") / "2021").mkdir()
    (ws.target("nas") / "2021" / "a.jpg").write_bytes(b"a")
    (ws.incoming / "b.jpg").write_bytes(b"b")
    desired = load(ws.config)
    with mounted(ws.incoming / "nas-2021", "--bind", str(ws.target("nas") / "2021")):
        fenced = places.fences(desired)
        assert fenced.mounts
        assert _rels(ws.target("nas"), fences=fenced) == ["2021/a.jpg"]
        with pytest.raises(NestedPlaceError, match=r"is a mount of a folder inside targets\.nas"):
            _rels(ws.incoming, fences=fenced)
    with mounted(ws.target("nas") / "2021", "--bind", str(ws.target("nas") / "2021")):
        fenced = places.fences(desired)
        assert not fenced.mounts
        assert _rels(ws.target("nas"), fences=fenced) == ["2021/a.jpg"]


# ---------------------------------------------------------------- btrfs


@pytest.fixture
def one_btrfs_disk(tmp_path: Path) -> Iterator[Path]:
    """A btrfs of its own disk: its image file on a tmpfs of its own (on the
    test machine's disk, the disk every other folder here is on, it would
    be on the library's disk)."""
    assert shutil.which("mkfs.btrfs"), "apt-get install btrfs-progs"
    with mounted(tmp_path / "holder", "-t", "tmpfs", "-o", "size=220m", "tmpfs") as holder:
        image = holder / "disk.img"
        with open(image, "wb") as f:
            f.truncate(200 << 20)
        subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], check=True, capture_output=True)
        with mounted(tmp_path / "disk", "-o", "loop", str(image)) as disk:
            for sub in ("nas", "usb", "library", "nas/inner"):
                subprocess.run(
                    ["btrfs", "subvolume", "create", str(disk / sub)],
                    check=True,
                    capture_output=True,
                )
            yield disk


def _on(paths: dict[str, Path]) -> str:
    return "".join(
        f'[targets.{tid}]\nkind = "filesystem"\npath = "{path}"\n' for tid, path in paths.items()
    )


def test_subvolumes_of_one_btrfs_are_one_disk(one_btrfs_disk: Path) -> None:
    nas, usb, inner = one_btrfs_disk / "nas", one_btrfs_disk / "usb", one_btrfs_disk / "nas/inner"
    assert len({os.stat(p).st_dev for p in (one_btrfs_disk, nas, usb, inner)}) == 4
    assert len({disk_at(p) for p in (one_btrfs_disk, nas, usb, inner)}) == 1


def test_two_subvolumes_of_one_disk_count_as_one_backup(
    tmp_path: Path, one_btrfs_disk: Path
) -> None:
    # the nested subvolume is no mount point: its disk is its mount's too
    nas, usb = one_btrfs_disk / "nas" / "inner", one_btrfs_disk / "usb"
    write_marker(nas, "nas")
    write_marker(usb, "usb")
    ws = make_workspace(
        tmp_path / "ws", targets=_on({"nas": nas, "usb": usb}), extra=KEEP_ORIGINALS
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("apply", "--yes", now=NOW)
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out
    assert "! shared-disk" in r.out and "on the same disk as usb" in r.out, r.out
    v = ws.run("validate")
    assert "warn  targets.nas: not a backup: on the same disk as usb" in v.out, v.out
    # the census counts the two subvolumes as one disk too
    items = json.loads(ws.run("status", "--json", now=NOW).out)["census"]["items"]
    assert {state: n for state, n in items.items() if n} == {"archived_1": 1}, items


def test_a_target_on_a_subvolume_mounted_apart_from_the_librarys_is_no_backup(
    tmp_path: Path, one_btrfs_disk: Path
) -> None:
    """The library in one subvolume, a target in another mounted on its own
    (``-o subvol=``, Fedora's layout): one disk."""
    image = tmp_path / "holder" / "disk.img"
    with (
        mounted(tmp_path / "nas", "-o", "loop,subvol=nas", str(image)) as nas,
        mounted(tmp_path / "usb", "-t", "tmpfs", "tmpfs") as usb,
    ):
        write_marker(nas, "nas")
        write_marker(usb, "usb")
        # the workspace (library, import folder, state) in the library's subvolume
        ws = make_workspace(
            one_btrfs_disk / "library" / "ws",
            targets=_on({"nas": nas, "usb": usb}),
            extra=KEEP_ORIGINALS,
            stores=("library",),
        )
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        r = ws.run("apply", "--yes", now=NOW)
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out
        assert "on the library's own disk" in r.out, r.out
