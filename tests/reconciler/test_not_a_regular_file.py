"""A file that lies about its kind: another program puts a FIFO (or a link to
a device) where a photo was, after the walk saw a regular file there. Every
read of it (hashing, the gate's re-read of a copy, a source's removal check)
refuses it at once: opening a FIFO to read waited for a writer for ever, and
a run hung every night; a device's bytes never end."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from providers.base import FileCopy, Hashed
from providers.filesystem import FilesystemStore, scan_tree, write_marker
from providers.folder import FolderSource
from reconciler import media
from reconciler.errors import MediaError, ProviderError
from reconciler.hashing import copy_file_hashing, sha256_file
from reconciler.observe import CachedHasher
from reconciler.state import StateDB

T = TypeVar("T")


def _fifo(path: Path) -> Path:
    """``path``, once a regular file, is now a FIFO nobody writes to."""
    path.unlink()
    os.mkfifo(path)
    return path


def _unblock(path: Path) -> None:
    """Let an open(2) waiting on the FIFO ``path`` go (the old code's hang)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _promptly(fn: Callable[[], T], fifo: Path) -> T:
    """``fn()``'s result or its exception; fails if it is still waiting after 10 s."""
    got: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            got.append(fn())
        except BaseException as e:  # handed to the test's thread
            raised.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        # Let it go if it can be (the FIFO may have been moved aside in its
        # folder); a thread still stuck is abandoned, the test fails anyway.
        for _ in range(20):
            for each in fifo.parent.iterdir():
                if each.is_fifo():
                    _unblock(each)
            worker.join(0.1)
        pytest.fail(f"still waiting on the FIFO {fifo} after 10 s")
    if raised:
        raise raised[0]
    return got[0]


@pytest.fixture
def photo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store" / "2021" / "IMG_0001.JPG"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xd8 a photo " * 100)
    yield path


def test_hashing_a_fifo_or_a_device_is_refused_at_once(photo: Path, tmp_path: Path) -> None:
    fifo = _fifo(photo)
    with pytest.raises(OSError) as e:
        _promptly(lambda: sha256_file(fifo), fifo)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        _promptly(lambda: copy_file_hashing(fifo, tmp_path / "copy"), fifo)
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
    fifo = _fifo(photo)

    def hash_them() -> list[Hashed]:
        db = StateDB.in_dir(tmp_path / "state")
        try:
            return list(CachedHasher(db).hash_entries(entries))
        finally:
            db.close()

    hashed = _promptly(hash_them, fifo)
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
    fifo = _fifo(photo)
    assert _promptly(lambda: store.verify(copy), fifo) is False


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
    fifo = _fifo(photo)
    with pytest.raises(ProviderError):
        _promptly(lambda: source.remove(item), fifo)
    assert fifo.is_fifo()  # put back where it was, untouched
    assert sorted(p.name for p in fifo.parent.iterdir()) == ["IMG_0001.JPG"]


def test_an_original_swapped_for_a_fifo_is_neither_dated_nor_encoded(
    photo: Path, tmp_path: Path
) -> None:
    fifo = _fifo(photo)
    with pytest.raises(MediaError, match="not a regular file"):
        _promptly(lambda: media.read_capture_date(fifo), fifo)
    with pytest.raises(MediaError, match="not a regular file"):
        _promptly(
            lambda: media.encode_file(
                fifo,
                tmp_path / "out.jpg",
                quality=80,
                crf=None,
                original_sha256="0" * 64,
                tier="older",
                replaces_size=1 << 20,
            ),
            fifo,
        )
    assert not (tmp_path / "out.jpg").exists()
