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

import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from providers.syncthing.target import SyncthingTarget
from reconciler import config
from reconciler.connect import connect
from reconciler.errors import ProviderError
from reconciler.model import FileCopy
from reconciler.sweep import sweep_debris
from tests.helpers import make_workspace
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


def test_a_staging_folder_that_is_a_link_is_neither_written_nor_swept(
    target: SyncthingTarget,
    syncthing_pair: SyncthingPair,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    """``.reconcile-tmp`` swapped for a link to the NAS's folder: a delivery
    would write its temporary there, and the sweep after a killed run
    deleted every file in it older than the run's lock."""
    staging = target.folder_path / ".reconcile-tmp"
    kept = tmp_path / "kept-aside"
    staging.rename(kept)
    nas = tmp_path / "nas"
    nas.mkdir()
    backup = nas / "IMG_0004.JPG"
    backup.write_bytes(b"a backup, older than any run")
    os.utime(backup, (0, 0))
    staging.symlink_to(nas, target_is_directory=True)
    try:
        src, sha = make_file("IMG_0004.JPG", b"delivered later")
        with pytest.raises(ProviderError, match=r"\.reconcile-tmp is a symbolic link"):
            target.put(src, f"staged-{tmp_path.name}/IMG_0004.JPG", sha)
        ws = make_workspace(
            tmp_path / "ws",
            targets=textwrap.dedent(
                f"""
                [targets.phone]
                kind = "syncthing"
                path = "{syncthing_pair.local_folder}"
                folder_id = "{syncthing_pair.folder_id}"
                device_id = "{syncthing_pair.phone.device_id}"
                url = "{syncthing_pair.local.url}"
                """
            ),
            stores=("library",),
        )
        ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
        desired = config.load(ws.config)
        conn = connect(desired, {"SYNCTHING_API_KEY": syncthing_pair.local.api_key})
        try:
            removed = sweep_debris(desired, conn, before=time.time())
        finally:
            conn.close()
        assert backup.exists(), removed
        assert list(nas.iterdir()) == [backup]  # no temporary written there either
    finally:
        staging.unlink()
        kept.rename(staging)
