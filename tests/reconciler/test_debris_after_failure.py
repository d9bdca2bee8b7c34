"""A target (or the library) that turns read-only between the temporary
file written and its rename: the run fails that action, and the temporary
it cannot remove then (a whole hidden copy, gigabytes for a video) is
removed by the next apply, as a crashed run's debris is (it was left for
good: the debris sweep ran only after a crash)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

import providers.filesystem.store as store_mod
from providers.filesystem import write_marker
from tests.helpers import (
    KEEP_ORIGINALS,
    NAS_AND_USB,
    files_under,
    make_jpeg,
    make_workspace,
    mounted,
)

OLD = datetime(2022, 1, 1, tzinfo=UTC)
ONE_WORKER = "\n[apply]\nworkers = 1\n"


def _remount(at: Path, how: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{how}", str(at)], check=True)


def _tmps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".reconcile-tmp")]


def test_a_temporary_left_by_a_target_gone_read_only_is_removed_by_a_later_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        mounted(tmp_path / "nas", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as nas,
        mounted(tmp_path / "usb", "-t", "tmpfs", "-o", "size=4m", "tmpfs"),
    ):
        try:
            write_marker(tmp_path / "nas", "nas")
            write_marker(tmp_path / "usb", "usb")
            ws = make_workspace(
                tmp_path,
                removal=True,
                targets=NAS_AND_USB,
                extra=KEEP_ORIGINALS + ONE_WORKER,
                stores=("library",),
            )
            originals = {
                "IMG_0.JPG": make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0).read_bytes()
            }
            real = store_mod.link_no_clobber
            done: list[bool] = []

            def link(tmp, dest, *, dir_fd=None):  # type: ignore[no-untyped-def]
                if not done and str(nas) in str(store_mod.Path(str(tmp)).resolve()):
                    done.append(True)
                    _remount(nas, "ro")  # the disk turns read-only after the write
                return real(tmp, dest, dir_fd=dir_fd)

            monkeypatch.setattr(store_mod, "link_no_clobber", link)
            r = ws.run("apply", "--yes", "--detail")
            assert done, r.out
            assert r.code == 1, r
            assert "Read-only file system" in r.out, r.out
            assert files_under(ws.incoming) == originals  # nothing removed: nas failed
            left = _tmps(nas)
            assert left, "the set-up: the read-only disk kept the temporary"
            assert "1 temporary file(s) could not be removed now" in r.out, r.out
            monkeypatch.undo()
            _remount(nas, "rw")  # the disk is fixed
            again = ws.run("apply", "--yes")
            assert again.code == 0, again.out + again.err
            assert "Removed 1 temporary file(s) an earlier run could not remove." in again.out
            assert ws.run("apply", "--yes").code == 0
            assert ws.run("plan", "--detailed-exitcode").code == 0
            assert _tmps(nas) == [], _tmps(nas)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(tmp_path / "nas")], check=False)


def test_an_encode_whose_library_turns_read_only_before_its_replace_leaves_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.media import read_lineage
    from tests.media.conftest import make_jpeg as make_camera_jpeg

    t1 = datetime(2021, 12, 1, tzinfo=UTC)
    root = tmp_path / "ws"
    with mounted(root / "library", "-t", "tmpfs", "-o", "size=8m", "tmpfs") as library:
        try:
            ws = make_workspace(root)
            original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
            real = store_mod.FilesystemStore.replace
            done: list[bool] = []

            def replace(self, tmp, rel_path, *, replaces, sha256):  # type: ignore[no-untyped-def]
                if not done:
                    done.append(True)
                    _remount(library, "ro")
                return real(self, tmp, rel_path, replaces=replaces, sha256=sha256)

            monkeypatch.setattr(store_mod.FilesystemStore, "replace", replace)
            r = ws.run("apply", "--yes", "--detail", now=t1)
            monkeypatch.undo()
            assert done
            assert r.code == 1, r
            (lib,) = list(library.rglob("IMG_1.JPG"))
            assert lib.read_bytes() == original  # the library keeps its original
            assert _tmps(library), "the set-up: the read-only disk kept the encoded temporary"
            _remount(library, "rw")
            assert ws.run("apply", "--yes", now=t1).code == 0
            assert ws.run("plan", "--detailed-exitcode", now=t1).code == 0
            assert read_lineage(lib)[1] == "recent"  # type: ignore[index]
            left = _tmps(library)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(library)], check=False)
    assert left == [], left
