"""A file that lies about its kind: another program puts a FIFO (or a link to
a device) where a photo was, after the walk saw a regular file there. Every
read of it (hashing, the gate's re-read of a copy, a source's removal check)
refuses it at once: opening a FIFO to read waited for a writer for ever, and
a run hung every night; a device's bytes never end."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from providers.base import FileCopy, Hashed
from providers.filesystem import FilesystemStore, scan_tree, write_marker
from providers.folder import FolderSource
from reconciler import media
from reconciler.errors import MediaError, ProviderError
from reconciler.hashing import copy_file_hashing, sha256_file
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB
from tests.helpers import fifo_at, promptly

T = TypeVar("T")


@pytest.fixture
def photo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store" / "2021" / "IMG_0001.JPG"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xd8 a photo " * 100)
    yield path


def test_hashing_a_fifo_or_a_device_is_refused_at_once(photo: Path, tmp_path: Path) -> None:
    fifo = fifo_at(photo)
    with pytest.raises(OSError) as e:
        promptly(lambda: sha256_file(fifo), fifo.parent)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        promptly(lambda: copy_file_hashing(fifo, tmp_path / "copy"), fifo.parent)
    device = tmp_path / "IMG_0002.JPG"
    device.symlink_to("/dev/zero")  # its bytes never end
    with pytest.raises(OSError):
        sha256_file(device)
    with pytest.raises(OSError):
        sha256_file(tmp_path)  # a folder


def test_a_photo_swapped_for_a_fifo_after_the_walk_is_that_files_error(
    photo: Path, tmp_path: Path
) -> None:
    other = photo.with_name("IMG_0002.JPG")
    other.write_bytes(b"\xff\xd8 another " * 100)
    entries = list(scan_tree(tmp_path / "store"))
    fifo = fifo_at(photo)

    def hash_them() -> list[Hashed]:
        db = StateDB.in_dir(tmp_path / "state")
        try:
            return list(CachedHasher(db).hash_entries(entries))
        finally:
            db.close()

    hashed = promptly(hash_them, fifo.parent)
    by_name = {Path(e.path).name: h for e, h in zip(entries, hashed, strict=True)}
    assert by_name["IMG_0001.JPG"].sha256 is None
    assert "not a regular file" in by_name["IMG_0001.JPG"].error
    assert by_name["IMG_0002.JPG"].sha256 == sha256_file(other)


def test_a_copy_swapped_for_a_fifo_is_no_copy_to_the_gate(photo: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_marker(root, "nas")
    store = FilesystemStore("nas", root)
    copy = FileCopy(
        store_id="nas",
        path="2021/IMG_0001.JPG",
        size=photo.stat().st_size,
        mtime_ns=0,
        sha256=sha256_file(photo),
    )
    assert store.verify(copy)
    fifo = fifo_at(photo)
    assert promptly(lambda: store.verify(copy), fifo.parent) is False


def test_a_source_photo_swapped_for_a_fifo_is_not_removed_and_stays(
    photo: Path, tmp_path: Path
) -> None:
    db = StateDB.in_dir(tmp_path / "state")
    try:
        hasher = CachedHasher(db, now=1e9, reverify_after_s=None, workers=1)
        source = FolderSource("incoming", tmp_path / "store")
        (item,) = list(source.list_items(hasher))
    finally:
        db.close()
    fifo = fifo_at(photo)
    with pytest.raises(ProviderError):
        promptly(lambda: source.remove(item, lambda: None), fifo.parent)
    assert fifo.is_fifo()  # put back where it was, untouched
    assert sorted(p.name for p in fifo.parent.iterdir()) == ["IMG_0001.JPG"]


def test_an_original_swapped_for_a_fifo_is_neither_dated_nor_encoded(
    photo: Path, tmp_path: Path
) -> None:
    fifo = fifo_at(photo)
    with pytest.raises(MediaError, match="not a regular file"):
        promptly(lambda: media.read_capture_date(fifo), fifo.parent)
    with pytest.raises(MediaError, match="not a regular file"):
        promptly(
            lambda: media.encode_file(
                fifo,
                tmp_path / "out.jpg",
                quality=80,
                crf=None,
                original_sha256="0" * 64,
                tier="older",
                replaces_size=1 << 20,
            ),
            fifo.parent,
        )
    assert not (tmp_path / "out.jpg").exists()
