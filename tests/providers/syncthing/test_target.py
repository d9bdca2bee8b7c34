"""SyncthingTarget against a real loopback pair: deliver, confirm, wait, free."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.base import Store
from providers.syncthing.pair import SyncthingPair
from providers.syncthing.target import SyncthingTarget
from reconciler.errors import ProviderError
from tests.providers.syncthing.support import Sha256Hasher, wait_for

pytestmark = pytest.mark.syncthing

MakeFile = Callable[[str, bytes], tuple[Path, str]]


def test_is_a_store(target: SyncthingTarget) -> None:
    assert isinstance(target, Store)
    assert target.kind == "syncthing"
    assert target.availability().available


def test_delivers_and_phone_confirms(
    target: SyncthingTarget, syncthing_pair: SyncthingPair, make_file: MakeFile
) -> None:
    data = b"\xff\xd8 jpeg " * 30_000
    src, sha = make_file("IMG_0001.jpg", data)

    copy = target.put(src, "2024/IMG_0001.jpg", sha)

    assert (copy.store_id, copy.path, copy.size, copy.sha256) == (
        "pixel",
        "2024/IMG_0001.jpg",
        len(data),
        sha,
    )
    assert copy.mtime_ns == src.stat().st_mtime_ns  # the capture-ish mtime is kept
    started = time.monotonic()
    answer = wait_for(lambda: target.confirm(copy.path), held=True, timeout=5)
    assert answer.held, answer.reason
    assert answer.reason == "the phone holds this version"
    assert time.monotonic() - started < 5
    assert (syncthing_pair.phone_folder / "2024/IMG_0001.jpg").read_bytes() == data
    assert target.verify(copy)


def test_lists_delivered_files_only(target: SyncthingTarget, make_file: MakeFile) -> None:
    src, sha = make_file("list.jpg", b"listed")
    target.put(src, "listing/list.jpg", sha)
    # Leftovers a crash or Syncthing itself may leave: never copies.
    (target.folder_path / ".reconcile-tmp" / "put-stale").write_bytes(b"half")
    (target.folder_path / "listing" / ".syncthing.x.jpg.tmp").write_bytes(b"half")
    (target.folder_path / "listing" / "~syncthing~y.jpg.tmp").write_bytes(b"half")

    hasher = Sha256Hasher()
    copies = {c.path: c for c in target.list_copies(hasher)}

    assert copies["listing/list.jpg"].sha256 == sha
    assert copies["listing/list.jpg"].store_id == "pixel"
    assert not [p for p in copies if p.startswith(".") or "syncthing" in p]
    assert sorted(hasher.seen) == sorted(copies)


def test_same_content_is_not_written_again(target: SyncthingTarget, make_file: MakeFile) -> None:
    src, sha = make_file("same.jpg", b"same bytes")
    first = target.put(src, "same/same.jpg", sha)
    inode = (target.folder_path / first.path).stat().st_ino

    again = target.put(src, "same/same.jpg", sha)

    assert again == first
    assert (target.folder_path / first.path).stat().st_ino == inode


def test_taken_name_gets_a_collision_proof_one(
    target: SyncthingTarget, syncthing_pair: SyncthingPair, make_file: MakeFile
) -> None:
    a, sha_a = make_file("a/IMG_0002.jpg", b"first photo")
    b, sha_b = make_file("b/IMG_0002.jpg", b"another photo, same name")
    first = target.put(a, "dup/IMG_0002.jpg", sha_a)

    second = target.put(b, "dup/IMG_0002.jpg", sha_b)

    assert second.path == f"dup/IMG_0002~{sha_b[:10]}.jpg"  # as in the library
    assert (target.folder_path / first.path).read_bytes() == b"first photo"
    assert (target.folder_path / second.path).read_bytes() == b"another photo, same name"
    # Delivering the second again lands on the same collision-proof name.
    assert target.put(b, "dup/IMG_0002.jpg", sha_b) == second
    for copy in (first, second):
        answer = wait_for(functools.partial(target.confirm, copy.path), held=True)
        assert answer.held, answer.reason
    assert (syncthing_pair.phone_folder / second.path).read_bytes() == b"another photo, same name"


def test_phone_offline_is_waiting_then_confirms_when_back(
    target: SyncthingTarget, syncthing_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("offline.jpg", b"taken while the phone was away")
    syncthing_pair.stop_phone()
    try:
        copy = target.put(src, "offline/offline.jpg", sha)
        answer = target.confirm(copy.path)
        assert not answer.held
        assert answer.reason.startswith("phone offline since 20"), answer.reason
        assert not target.verify(copy)
        assert target.availability().available  # offline phone: still a usable target
        status = target.status_summary()
        assert status.reachable and not status.connected
        assert status.need_items is not None and status.need_items >= 1
    finally:
        syncthing_pair.start_phone()

    answer = wait_for(lambda: target.confirm(copy.path), held=True)
    assert answer.held, answer.reason
    # This instance's run saw the phone offline: nothing counts in it, even
    # now. The next run (a new instance) proves the phone alive again.
    assert not target.verify(copy)
    with syncthing_pair.target(timeout=5.0) as next_run:
        assert next_run.verify(copy)
        status = next_run.status_summary()
    assert status.connected and status.last_seen is not None


def test_file_changed_on_the_phone_is_not_counted(
    target: SyncthingTarget, syncthing_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("changed.jpg", b"original bytes")
    copy = target.put(src, "changed/changed.jpg", sha)
    assert wait_for(lambda: target.confirm(copy.path), held=True).held

    (syncthing_pair.phone_folder / copy.path).write_bytes(b"edited on the phone")
    syncthing_pair.scan_phone(copy.path)

    answer = wait_for(lambda: target.confirm(copy.path), held=False)
    assert not answer.held
    assert "has not received this version" in answer.reason
    assert not target.verify(copy)
    # Our own staging copy is untouched (send-only here).
    assert (target.folder_path / copy.path).read_bytes() == b"original bytes"


def test_read_to_copies_the_staging_bytes(
    target: SyncthingTarget, make_file: MakeFile, tmp_path: Path
) -> None:
    src, sha = make_file("read.jpg", b"read me back")
    copy = target.put(src, "read/read.jpg", sha)

    target.read_to(copy, tmp_path / "out.jpg")

    assert (tmp_path / "out.jpg").read_bytes() == b"read me back"


def test_read_to_refuses_a_changed_copy(
    target: SyncthingTarget, make_file: MakeFile, tmp_path: Path
) -> None:
    src, sha = make_file("rot.jpg", b"good bytes")
    copy = target.put(src, "rot/rot.jpg", sha)
    (target.folder_path / copy.path).write_bytes(b"rotten bytes")

    with pytest.raises(ProviderError, match=r"rot/rot.jpg no longer hashes to"):
        target.read_to(copy, tmp_path / "out.jpg")
    assert not target.verify(copy)


def test_put_refuses_a_source_that_does_not_match_its_hash(
    target: SyncthingTarget, make_file: MakeFile
) -> None:
    src, _ = make_file("liar.jpg", b"these bytes")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    tmp_dir = target.folder_path / ".reconcile-tmp"
    before = set(tmp_dir.iterdir()) if tmp_dir.exists() else set()

    with pytest.raises(ProviderError, match=r"^syncthing: .*liar.jpg: copy hashes to"):
        target.put(src, "liar/liar.jpg", wrong)

    assert not (target.folder_path / "liar").exists()
    assert set(tmp_dir.iterdir()) == before  # the temporary file is gone too


@pytest.mark.parametrize("bad", ["../escape.jpg", "/abs.jpg", ".stfolder/x", "a//b.jpg", ""])
def test_paths_outside_the_folder_are_refused(
    target: SyncthingTarget, make_file: MakeFile, bad: str
) -> None:
    src, sha = make_file("bad.jpg", b"x")
    with pytest.raises(ProviderError, match="not a usable path"):
        target.put(src, bad, sha)


def test_temp_dir_is_ignored_by_syncthing(target: SyncthingTarget, make_file: MakeFile) -> None:
    src, sha = make_file("ign.jpg", b"ignored temp")
    target.put(src, "ign/ign.jpg", sha)
    lines = (target.folder_path / ".stignore").read_text().splitlines()
    assert lines.count("/.reconcile-tmp") == 1


def test_confirm_of_a_file_never_delivered(target: SyncthingTarget) -> None:
    answer = target.confirm("never/there.jpg")
    assert answer == type(answer)(False, "never/there.jpg has not been delivered")
