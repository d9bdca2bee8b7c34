"""Mounts that show another place's files where neither paths nor the
mount's own folder say so, and the cost of looking at the mount table.

- An overlay (overlayfs) inside a target whose lower or upper folder is in
  the library: every file the target "has" there may be the library's own
  file. The gate counts no copy reached through it, and the target's walk
  stops at it.
- A single file bind-mounted from the library into a target, or from a
  target into an import folder: the walk stops at it (the target, the
  source, is unavailable), and validate says it is a file.
- A mount hidden under another mounted on the same point is reached by no
  walk: validate does not fail a place for it.
- The removal gate reads the mount table once per check, and parses it
  only when it changed.

Real mounts (tmpfs, bind, overlay), made as root, as the repository's
other mount tests are (CI runs them as root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers import mounts
from providers.filesystem import Fences, NestedPlaceError, scan_tree, write_marker
from providers.mounts import Location, Mount, locate, mount_table
from reconciler import gate, places
from reconciler.config import load
from reconciler.gate import Disks
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


@contextmanager
def file_bind(at: Path, source: Path) -> Iterator[Path]:
    """``mount --bind SOURCE AT`` of a single file (made empty at ``at``)."""
    at.parent.mkdir(parents=True, exist_ok=True)
    at.write_bytes(b"")
    subprocess.run(["mount", "--bind", str(source), str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=False, capture_output=True)


# ------------------------------------------------------------------ overlays


@pytest.mark.parametrize("layer", ["lowerdir", "upperdir"])
def test_an_overlay_of_a_library_folder_in_a_target_is_no_backup(
    tmp_path: Path, layer: str
) -> None:
    """nas/2021 is an overlay one of whose layers is library/2021: a copy
    there may be the library's own file (lower), or be written into the
    library (upper). Only usb is a backup: the photo stays in the source,
    and the NAS is not listed (its walk stops at the overlay)."""
    root = tmp_path / "ws"
    with (
        on_two_disks(root, removal=True) as ws,
        mounted(tmp_path / "scratch", "-t", "tmpfs", "tmpfs") as scratch,
    ):
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        # the library holds it already (an earlier run, before the NAS was set up)
        (ws.library / "2021/06/01").mkdir(parents=True)
        (ws.library / "2021/06/01/IMG_1.JPG").write_bytes(photo)
        for name in ("lower", "up", "work"):
            (scratch / name).mkdir()
        in_library = str(ws.library / "2021")
        layers = {
            "lowerdir": f"lowerdir={in_library},upperdir={scratch / 'up'}",
            "upperdir": f"lowerdir={scratch / 'lower'},upperdir={in_library}",
        }[layer]
        # an upper folder's work folder is on its disk (outside the library)
        work = scratch / "work" if layer == "lowerdir" else root / "work"
        work.mkdir(exist_ok=True)
        options = f"{layers},workdir={work}"
        at = root / "nas" / "2021"
        with mounted(at, "-t", "overlay", "overlay", "-o", options):
            r = ws.run("apply", "--yes", now=NOW)
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out
            assert f"{at}/ is an overlay showing files of library.path ({ws.library})" in r.out
            v = ws.run("validate")
            assert (
                f"FAIL  targets.nas.path: {at} is an overlay showing files of library.path "
                f"({ws.library}); its walk stops there: plan finds targets.nas.path unavailable; "
                "its files would be listed as targets.nas.path's own"
            ) in v.out, v.out

            # the gate on its own, as a removal asks it: the copy reached
            # through the overlay counts for nothing
            desired = load(ws.config)
            table = mount_table()
            where = locate(at / "06/01/IMG_1.JPG", table)
            assert where is not None
            library = locate(ws.library, table)
            assert library is not None
            disks = Disks(library=library.device, places={"library.path": library}, table=table)
            device, why = disks.judge("nas", where)
            assert device is None
            assert why == (
                f"its file may be in library.path: it is reached through an overlay at {at} "
                "that shows library.path's files"
            )
            assert desired.policy.copies == 2


def test_an_overlay_of_folders_elsewhere_counts_on_their_disk(tmp_path: Path) -> None:
    """An overlay whose layers are all on one other disk: its copies count
    on that disk (not on the overlay's own device number, which no disk
    has), so a second target on that disk is not a second backup."""
    with mounted(tmp_path / "disk", "-t", "tmpfs", "tmpfs") as disk:
        for name in ("lower", "up", "work"):
            (disk / name).mkdir()
        (disk / "lower" / "a.jpg").write_bytes(b"a")
        options = f"lowerdir={disk / 'lower'},upperdir={disk / 'up'},workdir={disk / 'work'}"
        with mounted(tmp_path / "view", "-t", "overlay", "overlay", "-o", options) as view:
            table = mount_table()
            where = locate(view / "a.jpg", table)
            assert where is not None and where.device != (disk / "lower").stat().st_dev
            disks = Disks(library=None, table=table)
            assert disks.judge("nas", where) == ((disk / "lower").stat().st_dev, "")


def test_a_union_whose_folders_are_not_named_counts_only_as_the_targets_own_disk(
    tmp_path: Path,
) -> None:
    """A FUSE union (mergerfs, bindfs) does not say in the mount table
    which folders it shows. Mounted below a target's root it could be
    showing the library: a copy reached through it counts for nothing. The
    target's root lying on it (a pool the person chose) counts as before,
    on that mount's own number. (The table is made up here: the test
    machine has no FUSE.)"""
    (tmp_path / "pool").mkdir()
    where = Location(123, "/photos/a.jpg", mount=7)
    pool = Mount(id=7, parent=1, device=123, root="/", point="/mnt/pool", fstype="fuse.mergerfs")
    disks = Disks(library=None, roots={"nas": 7, "usb": 3}, table={7: pool})
    assert disks.judge("nas", where) == (123, "")
    assert disks.judge("usb", where) == (
        None,
        "its file is reached through a fuse.mergerfs mount at /mnt/pool, "
        "whose folders the mount table does not name",
    )


def test_an_overlays_layers_are_read_from_the_mount_table(tmp_path: Path) -> None:
    """The table escapes a space or a backslash in a layer's path; a colon
    in one is written "\\:"; a layer named by a relative path cannot be
    placed, nor can a FUSE union's; any other filesystem shows only itself."""
    (tmp_path / "a b").mkdir()
    (tmp_path / "c:d").mkdir()
    for name in ("up", "work", "view"):
        (tmp_path / name).mkdir()
    lower = f"{tmp_path / 'a b'}:{str(tmp_path / 'c:d').replace(':', chr(92) + ':')}"
    options = f"lowerdir={lower},upperdir={tmp_path / 'up'},workdir={tmp_path / 'work'}"
    with mounted(tmp_path / "view", "-t", "overlay", "overlay", "-o", options) as view:
        found = next(m for m in mount_table().values() if m.point == str(view))
        assert found.fstype == "overlay"
        assert found.layers() == (
            str(tmp_path / "a b"),
            str(tmp_path / "c:d"),
            str(tmp_path / "up"),
        )
    relative = Mount(
        id=1, parent=0, device=1, root="/", point="/x", fstype="overlay",
        options="rw,lowerdir=l1:l2,upperdir=up,workdir=wk",
    )  # fmt: skip
    assert relative.layers() is None
    union = Mount(id=1, parent=0, device=1, root="/", point="/x", fstype="fuse.mergerfs")
    assert union.layers() is None
    assert Mount(id=1, parent=0, device=1, root="/", point="/x", fstype="ext4").layers() == ()


# ------------------------------------------------------------ single files


def test_a_library_file_bind_mounted_in_a_target_stops_its_walk(tmp_path: Path) -> None:
    """A library photo bind-mounted at its place in the NAS: the NAS's
    walk stops there (plan finds it unavailable, and promises no removal),
    and validate says it is a file."""
    root = tmp_path / "ws"
    with on_two_disks(root, removal=True) as ws:
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).read_bytes()
        (ws.library / "2021/06/01").mkdir(parents=True)
        (ws.library / "2021/06/01/IMG_1.JPG").write_bytes(photo)
        at = root / "nas/2021/06/01/IMG_1.JPG"
        with file_bind(at, ws.library / "2021/06/01/IMG_1.JPG"):
            r = ws.run("apply", "--yes", now=NOW)
            assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out
            p = ws.run("plan", now=NOW)
            assert "remove-from-source" not in p.out, p.out
            assert f"{at} is a mount of a file inside library.path ({ws.library})" in p.out
            v = ws.run("validate")
            assert (
                f"FAIL  targets.nas.path: {at} is a mount of a file inside library.path "
                f"({ws.library}); its walk stops there: plan finds targets.nas.path unavailable; "
                "it would be listed as targets.nas.path's own: unmount it, or mount it outside "
                "the configured folders"
            ) in v.out, v.out
            assert "a mount of a folder" not in v.out


def test_a_targets_file_bind_mounted_in_the_source_is_never_listed(tmp_path: Path) -> None:
    """A NAS photo bind-mounted into the import folder: the import folder
    is not listed (its walk stops at it), so nothing there is removed and
    the backup stays whole."""
    root = tmp_path / "ws"
    with on_two_disks(root, removal=True) as ws:
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
        assert ws.run("apply", "--yes", now=NOW).code == 0  # archived and removed
        assert list(files_under(ws.incoming)) == []
        backup = root / "nas/2021/06/01/IMG_1.JPG"
        photo = backup.read_bytes()
        at = ws.incoming / "IMG_1.JPG"
        with file_bind(at, backup):
            r = ws.run("apply", "--yes", now=NOW)
            assert f"{at} is a mount of a file inside targets.nas.path" in r.out, r.out
            assert "remove-from-source" not in r.out, r.out
        assert backup.read_bytes() == photo


def test_a_file_mount_stops_a_walk_only_where_it_is_mounted(tmp_path: Path) -> None:
    """The folder holding the mounted file, reached another way (a bind
    mount of it elsewhere, which carries no mount below it), shows the
    file that was there: that walk goes on."""
    with (
        mounted(tmp_path / "lib", "-t", "tmpfs", "tmpfs") as lib,
        mounted(tmp_path / "nas", "-t", "tmpfs", "tmpfs") as nas,
    ):
        (lib / "a.jpg").write_bytes(b"a")
        (nas / "d").mkdir()
        with file_bind(nas / "d" / "a.jpg", lib / "a.jpg"):
            (tmp_path / "other").mkdir()
            with mounted(tmp_path / "other", "--bind", str(nas / "d")):
                desired_fences = _fences_for(tmp_path, lib, nas)
                with pytest.raises(NestedPlaceError, match="is a mount of a file inside"):
                    list(scan_tree(nas, fences=desired_fences))
                assert [e.rel for e in scan_tree(tmp_path / "other", fences=desired_fences)] == [
                    "a.jpg"
                ]


def _fences_for(tmp_path: Path, library: Path, nas: Path) -> Fences:
    config = tmp_path / "desired_state.toml"
    config.write_text(
        f'[library]\npath = "{library}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[targets.nas]\nkind = "filesystem"\npath = "{nas}"\n'
    )
    return places.fences(load(config))


# --------------------------------------------------- hidden, stacked mounts


def test_validate_ignores_an_alias_mount_hidden_under_another_mount(tmp_path: Path) -> None:
    """library/2021 was bind-mounted at nas/2021, then a disk of its own
    mounted on the same point, over it: no walk reaches the library's
    folder there. plan and apply archive and remove normally, and validate
    does not fail the NAS."""
    root = tmp_path / "ws"
    with (
        mounted(root / "nas", "-t", "tmpfs", "tmpfs"),
        mounted(root / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        ws = make_workspace(root, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",))
        (ws.library / "2021").mkdir(parents=True)
        with (
            mounted(root / "nas" / "2021", "--bind", str(ws.library / "2021")),
            mounted(root / "nas" / "2021", "-t", "tmpfs", "tmpfs"),  # stacked on top
        ):
            make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
            r = ws.run("apply", "--yes", now=NOW)
            assert r.code == 0, r.out + r.err
            assert list(files_under(ws.incoming)) == [], r.out
            v = ws.run("validate")
            assert "FAIL" not in v.out, v.out
            assert v.code == 0, v.out
            assert places.shown_below(load(ws.config)) == []
        # the same alias, uncovered, is still found
        with mounted(root / "nas" / "2021", "--bind", str(ws.library / "2021")):
            assert [a.at for a in places.shown_below(load(ws.config))] == [root / "nas/2021"]


# ------------------------------------------------------------------ the cost


def test_the_gate_reads_the_mount_table_once_per_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each removal's check asks for the mount table once (it asked four
    times: 1.9 s for 400 removals, 9.3 s with 300 more mounts; 0.5 s and
    0.9 s now, bench/removal_mounts.py), and the table is parsed again only
    after a mount or an unmount."""
    asked: list[int] = []
    parsed: list[int] = []
    real_table, real_parse = mounts.mount_table, mounts._parse

    def counted_table() -> dict[int, Mount]:
        asked.append(1)
        return real_table()

    def counted_parse(raw: bytes) -> dict[int, Mount]:
        parsed.append(1)
        return real_parse(raw)

    monkeypatch.setattr(gate, "mount_table", counted_table)
    monkeypatch.setattr(mounts, "_parse", counted_parse)
    monkeypatch.setattr(mounts, "_watched", {})
    root = tmp_path / "ws"
    with on_two_disks(root, removal=False) as ws:
        for i in range(3):
            make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        ws.removal(True)
        checks: list[int] = []
        real_check = gate.RemovalGate.check

        def counted_check(self: gate.RemovalGate, a: object, side: object = None) -> list[str]:
            checks.append(1)
            return real_check(self, a, side)  # type: ignore[arg-type]

        monkeypatch.setattr(gate.RemovalGate, "check", counted_check)
        asked.clear()
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0 and list(files_under(ws.incoming)) == [], r.out
        assert len(checks) == 3
        assert len(asked) == 3
    mounts.mount_table()  # the unmounts above: read again
    parsed.clear()
    mounts.mount_table()
    mounts.mount_table()
    assert parsed == []  # unchanged since the last read: not parsed again
    with mounted(tmp_path / "more", "-t", "tmpfs", "tmpfs") as more:
        assert any(m.point == str(more) for m in mounts.mount_table().values())
        assert parsed == [1]
