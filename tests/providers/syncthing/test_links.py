"""Nothing in the shared folder is read, written or deleted through a folder
that is a symbolic link (against a real loopback pair).

Syncthing never sends what is behind a link, so nothing there is the
phone's; and a deletion through one reaches outside the shared folder. The
attack each test makes: a folder the phone holds a copy in is swapped, after
the delivery, for a link to the NAS's folder holding the same photo under
the same name. Before, releasing or freeing that copy deleted the NAS's
file, and the copy behind the link still counted at the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.syncthing.target import SyncthingTarget
from reconciler.errors import ProviderError
from reconciler.model import FileCopy
from tests.providers.syncthing.support import wait_for

pytestmark = pytest.mark.syncthing

MakeFile = Callable[[str, bytes], tuple[Path, str]]


@pytest.fixture
def swapped(
    target: SyncthingTarget, make_file: MakeFile, tmp_path: Path
) -> Iterator[tuple[FileCopy, Path]]:
    """A copy the phone holds, whose folder here is then swapped for a link
    to the NAS's folder holding the same bytes; the NAS's file."""
    folder = f"swap-{tmp_path.name}"
    data = f"the photo in {folder}".encode()
    src, sha = make_file("IMG_0001.JPG", data)
    copy = target.put(src, f"{folder}/IMG_0001.JPG", sha)
    answer = wait_for(lambda: target.confirm(copy.path), held=True)
    assert answer.held, answer.reason
    nas = tmp_path / "nas" / folder
    nas.mkdir(parents=True)
    (nas / "IMG_0001.JPG").write_bytes(data)
    here = target.folder_path / folder
    here.rename(tmp_path / "moved-away")
    here.symlink_to(nas, target_is_directory=True)
    try:
        yield copy, nas / "IMG_0001.JPG"
    finally:
        here.unlink()


def test_releasing_never_deletes_through_a_linked_folder(
    target: SyncthingTarget, swapped: tuple[FileCopy, Path]
) -> None:
    copy, nas_file = swapped
    with pytest.raises(ProviderError, match=r"is a symbolic link: nothing is read or written"):
        target.release(copy.path)
    assert nas_file.read_bytes().startswith(b"the photo in")


def test_freeing_never_deletes_through_a_linked_folder(
    target: SyncthingTarget, swapped: tuple[FileCopy, Path]
) -> None:
    copy, nas_file = swapped
    with pytest.raises(ProviderError, match=r"not freed: .* is a symbolic link"):
        target.free_local(copy.path)
    assert nas_file.read_bytes().startswith(b"the photo in")
    # and the path was never made ignored (its copy here was not freed)
    stignore = (target.folder_path / ".stignore").read_text()
    assert copy.path not in stignore


def test_a_copy_behind_a_linked_folder_is_not_counted_nor_read(
    target: SyncthingTarget, swapped: tuple[FileCopy, Path], tmp_path: Path
) -> None:
    copy, _ = swapped
    assert not target.verify(copy)
    with pytest.raises(ProviderError, match=r"reading .* failed"):
        target.read_to(copy, tmp_path / "out.jpg")


def test_a_copy_that_is_itself_a_link_is_not_counted(
    target: SyncthingTarget, make_file: MakeFile, tmp_path: Path
) -> None:
    src, sha = make_file("IMG_0002.JPG", b"linked at its name")
    copy = target.put(src, f"self-{tmp_path.name}/IMG_0002.JPG", sha)
    assert wait_for(lambda: target.confirm(copy.path), held=True).held
    path = target.folder_path / copy.path
    path.rename(tmp_path / "elsewhere.jpg")
    path.symlink_to(tmp_path / "elsewhere.jpg")
    try:
        assert not target.verify(copy)
    finally:
        path.unlink()


def test_nothing_is_delivered_through_a_linked_folder(
    target: SyncthingTarget, make_file: MakeFile, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    here = target.folder_path / f"linked-{tmp_path.name}"
    here.symlink_to(nas, target_is_directory=True)
    try:
        src, sha = make_file("IMG_0003.JPG", b"never written into the NAS")
        with pytest.raises(ProviderError, match=r"is a symbolic link"):
            target.put(src, f"{here.name}/IMG_0003.JPG", sha)
        with pytest.raises(ProviderError, match=r"is a symbolic link"):
            target.put_sidecar(f"{here.name}/IMG_0003.xmp", b"<x/>")
        assert list(nas.iterdir()) == []
    finally:
        here.unlink()
