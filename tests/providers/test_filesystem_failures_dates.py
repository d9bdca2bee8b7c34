"""A copy's capture date (its mtime: photo apps sort by it) is set on the
temporary before it is put in place, so a copy in place always has its
date, whatever fails after: a target that turns read-only just after a
copy is placed keeps that copy, dated, and the run goes on. A copy found
in place without its date (placed by an older version, or a run killed
before it dated it) is dated when the tool meets it again."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

import providers.filesystem.store as store_mod
from providers.filesystem import FilesystemStore, write_marker
from reconciler.errors import ProviderError
from reconciler.hashing import sha256_file
from tests.helpers import KEEP_ORIGINALS, NAS_AND_USB, make_jpeg, make_workspace, mounted

OLD = datetime(2022, 1, 1, tzinfo=UTC)
OLD_NS = int(OLD.timestamp()) * 10**9


def _remount(at: Path, how: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{how}", str(at)], check=True)


def test_a_copy_placed_as_its_target_turns_read_only_keeps_its_capture_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nas = tmp_path / "nas"
    with (
        mounted(nas, "-t", "tmpfs", "-o", "size=4m", "tmpfs"),
        mounted(tmp_path / "usb", "-t", "tmpfs", "-o", "size=4m", "tmpfs"),
    ):
        try:
            write_marker(nas, "nas")
            write_marker(tmp_path / "usb", "usb")
            ws = make_workspace(
                tmp_path,
                targets=NAS_AND_USB,
                extra=KEEP_ORIGINALS + "\n[apply]\nworkers = 1\n",
                stores=("library",),
            )
            make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
            real = store_mod.FilesystemStore._place
            turned: list[bool] = []

            def place(self, tmp, rel, sha256):  # type: ignore[no-untyped-def]
                copy = real(self, tmp, rel, sha256)
                if self.id == "nas" and not turned:
                    turned.append(True)
                    _remount(nas, "ro")  # the disk's errors: Linux remounts it read-only
                return copy

            monkeypatch.setattr(store_mod.FilesystemStore, "_place", place)
            first = ws.run("apply", "--yes", "--detail")
            monkeypatch.undo()
            assert turned
            # the copy was whole and in place: nothing failed
            assert first.code == 0, first.out + first.err
            (copy,) = list(nas.rglob("IMG_0.JPG"))
            assert copy.stat().st_mtime_ns == OLD_NS
            _remount(nas, "rw")
            assert ws.run("apply", "--yes").code == 0
            assert ws.run("plan", "--detailed-exitcode").code == 0
            assert copy.stat().st_mtime_ns == OLD_NS
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(nas)], check=False)


def _store(root: Path, store_id: str = "nas") -> FilesystemStore:
    write_marker(root, store_id)
    return FilesystemStore(store_id, root)


def test_a_copy_in_place_without_its_date_is_dated_when_met_again(tmp_path: Path) -> None:
    src = make_jpeg(tmp_path / "src.jpg", OLD, seed=1)
    sha = sha256_file(src)
    store = _store(tmp_path / "nas")
    undated = tmp_path / "nas" / "2022" / "01" / "01" / "IMG_1.JPG"
    undated.parent.mkdir(parents=True)
    undated.write_bytes(src.read_bytes())  # placed, never dated (today's mtime)
    try:
        copy = store.put(src, "2022/01/01/IMG_1.JPG", sha, mtime_ns=OLD_NS)
    finally:
        store.close()
    assert copy.path == "2022/01/01/IMG_1.JPG" and copy.mtime_ns == OLD_NS
    assert undated.stat().st_mtime_ns == OLD_NS
    assert sorted(p.name for p in undated.parent.iterdir()) == ["IMG_1.JPG"]


def test_a_copy_in_place_with_other_names_keeps_its_mtime(tmp_path: Path) -> None:
    """A hard link of another file (a source's, whose mtime may be its only
    date) is never re-dated through the copy."""
    src = make_jpeg(tmp_path / "src.jpg", OLD, seed=1)
    sha = sha256_file(src)
    store = _store(tmp_path / "nas")
    there = tmp_path / "nas" / "2022" / "01" / "01" / "IMG_1.JPG"
    there.parent.mkdir(parents=True)
    os.link(src, there)
    before = src.stat().st_mtime_ns
    try:
        copy = store.put(src, "2022/01/01/IMG_1.JPG", sha, mtime_ns=OLD_NS)
    finally:
        store.close()
    assert copy.path == "2022/01/01/IMG_1.JPG"
    assert src.stat().st_mtime_ns == before


def test_a_target_read_only_as_the_copy_is_dated_says_which_and_places_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_jpeg(tmp_path / "src.jpg", OLD, seed=1)
    sha = sha256_file(src)
    with mounted(tmp_path / "nas", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as nas:
        try:
            store = _store(nas)
            real = store_mod.copy_file_hashing

            def copied(a, b):  # type: ignore[no-untyped-def]
                got = real(a, b)
                _remount(nas, "ro")  # after the temporary is written, before it is dated
                return got

            monkeypatch.setattr(store_mod, "copy_file_hashing", copied)
            with pytest.raises(ProviderError) as raised:
                store.put(src, "2022/01/01/IMG_1.JPG", sha, mtime_ns=OLD_NS)
            store.close()
            assert str(raised.value) == (
                "nas: setting the capture date of 2022/01/01/IMG_1.JPG failed: "
                "Read-only file system"
            )
            assert not (nas / "2022" / "01" / "01" / "IMG_1.JPG").exists()
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(tmp_path / "nas")], check=False)
