"""The phone's copy must be real (issue 15), against a real loopback pair whose
phone folder does NOT ignore deletes: the liveness canary, freeing that never
deletes on the phone, freed copies that stop counting when the phone loses
them, and deliveries that never land on a path the phone knows."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from providers.syncthing.target import SyncthingTarget
from reconciler.errors import ProviderError
from reconciler.gate import GateRefused, check_removal
from reconciler.model import FileCopy
from tests.providers.syncthing.support import wait_for

pytestmark = pytest.mark.syncthing

MakeFile = Callable[[str, bytes], tuple[Path, str]]


@pytest.fixture(scope="module")
def strict_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncthingPair]:
    """A phone whose receive-only folder applies deletions it receives."""
    base = tmp_path_factory.mktemp("strict")
    with SyncthingPair.create(base, phone_ignore_delete=False) as pair:
        yield pair


@pytest.fixture
def strict(strict_pair: SyncthingPair) -> Iterator[SyncthingTarget]:
    with strict_pair.target(timeout=5.0, liveness_timeout=5.0) as t:
        yield t


def _held(target: SyncthingTarget, src: Path, rel: str, sha: str) -> FileCopy:
    copy = target.put(src, rel, sha)
    answer = wait_for(lambda: target.confirm(copy.path), held=True)
    assert answer.held, answer.reason
    return copy


def _phone_scan(pair: SyncthingPair, rel: str) -> None:
    pair.scan_phone(rel)


def test_canary_proves_the_phone_alive_and_leaves_nothing_behind(
    strict: SyncthingTarget, strict_pair: SyncthingPair
) -> None:
    live = strict.prove_alive()
    assert live.alive, live.reason
    assert live.round_trip_s is not None and live.round_trip_s < 5
    assert strict.prove_alive() is live  # once per run
    assert not (strict.folder_path / ".reconcile-canary").exists()
    # The phone applies the canary's deletion (its folder does not ignore deletes).
    deadline = time.monotonic() + 10
    while (strict_pair.phone_folder / ".reconcile-canary").exists():
        assert time.monotonic() < deadline, "the canary stayed on the phone"
        time.sleep(0.05)


def test_freeing_never_deletes_on_a_phone_that_applies_deletes(
    strict: SyncthingTarget, strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("keep.jpg", b"the phone must keep this")
    copy = _held(strict, src, "free/keep.jpg", sha)

    proof = strict.free_local(copy.path)

    assert proof.held and proof.evidence
    assert not (strict.folder_path / copy.path).exists()
    assert "/free/keep.jpg" in (strict.folder_path / ".stignore").read_text().splitlines()
    time.sleep(1.0)  # time for a deletion to reach the phone, were one announced
    assert (strict_pair.phone_folder / copy.path).read_bytes() == b"the phone must keep this"
    assert strict.confirm_freed(copy.path, proof.evidence).held
    assert strict.verify(copy)  # a freed copy counts at the gate too (finding 4)
    with strict_pair.target(timeout=5.0) as next_run:
        assert not next_run.verify(copy)  # not confirmed in that run yet
        assert next_run.confirm_freed(copy.path, proof.evidence).held
        assert next_run.verify(copy)


def test_a_lost_ignore_line_is_put_back_before_the_phone_hears_of_it(
    strict: SyncthingTarget, strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("line.jpg", b"its .stignore line goes missing")
    copy = _held(strict, src, "line/line.jpg", sha)
    proof = strict.free_local(copy.path)
    stignore = strict.folder_path / ".stignore"
    stignore.write_text(stignore.read_text().replace("/line/line.jpg\n", ""))

    with strict_pair.target(timeout=5.0) as next_run:
        assert next_run.confirm_freed(copy.path, proof.evidence).held

    assert "/line/line.jpg" in stignore.read_text().splitlines()
    with strict_pair.local.client() as client:
        client.scan(strict_pair.folder_id, copy.path)  # no deletion is announced
    time.sleep(0.5)
    assert (strict_pair.phone_folder / copy.path).read_bytes() == b"its .stignore line goes missing"


def test_a_freed_copy_the_phone_deleted_stops_counting(
    strict: SyncthingTarget, strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("lost.jpg", b"deleted on the phone later")
    copy = _held(strict, src, "lost/lost.jpg", sha)
    proof = strict.free_local(copy.path)

    (strict_pair.phone_folder / copy.path).unlink()
    _phone_scan(strict_pair, copy.path)

    answer = wait_for(lambda: strict.confirm_freed(copy.path, proof.evidence), held=False)
    assert answer == type(answer)(False, "the phone deleted or changed its copy")
    with strict_pair.target(timeout=5.0) as next_run:
        assert not next_run.verify(copy)


def test_a_freed_copy_changed_on_the_phone_stops_counting(
    strict: SyncthingTarget, strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("edit.jpg", b"edited on the phone later")
    copy = _held(strict, src, "edit/edit.jpg", sha)
    proof = strict.free_local(copy.path)

    (strict_pair.phone_folder / copy.path).write_bytes(b"other bytes")
    _phone_scan(strict_pair, copy.path)

    answer = wait_for(lambda: strict.confirm_freed(copy.path, proof.evidence), held=False)
    assert not answer.held


def test_delivery_never_lands_on_a_freed_path(
    strict: SyncthingTarget, strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    first, sha1 = make_file("a/IMG_0007.JPG", b"first camera")
    second, sha2 = make_file("b/IMG_0007.JPG", b"second camera, same name and day")
    copy = _held(strict, first, "2022/03/04/IMG_0007.JPG", sha1)
    strict.free_local(copy.path)

    other = strict.put(second, "2022/03/04/IMG_0007.JPG", sha2)

    assert other.path == f"2022/03/04/IMG_0007~{sha2[:10]}.JPG"
    assert wait_for(lambda: strict.confirm(other.path), held=True).held
    assert (strict_pair.phone_folder / copy.path).read_bytes() == b"first camera"
    # The same content again (the phone lost the freed copy): a new name, too.
    again = strict.put(first, "2022/03/04/IMG_0007.JPG", sha1)
    assert again.path == f"2022/03/04/IMG_0007~{sha1[:10]}.JPG"


def test_delivery_never_lands_on_a_path_the_index_knows(
    strict: SyncthingTarget, make_file: MakeFile
) -> None:
    src, sha = make_file("gone.jpg", b"deleted here by hand")
    copy = _held(strict, src, "known/gone.jpg", sha)
    (strict.folder_path / copy.path).unlink()  # a person removed it here
    src2, sha2 = make_file("new.jpg", b"new content")

    placed = strict.put(src2, "known/gone.jpg", sha2)

    assert placed.path == f"known/gone~{sha2[:10]}.jpg"


def test_a_path_no_ignore_line_can_name_is_not_freed(
    strict: SyncthingTarget, make_file: MakeFile
) -> None:
    src, sha = make_file("star.jpg", b"a star in the name")
    copy = _held(strict, src, "odd/IMG [1]*.jpg", sha)

    with pytest.raises(ProviderError, match=r"not freed: .* holds characters"):
        strict.free_local(copy.path)
    assert (strict.folder_path / copy.path).exists()


def test_nothing_counts_while_the_phone_is_offline(
    strict_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("off.jpg", b"confirmed, then the phone goes away")
    with strict_pair.target(timeout=5.0) as t:
        copy = _held(t, src, "off/off.jpg", sha)
    strict_pair.stop_phone()
    try:
        with strict_pair.target(timeout=5.0) as offline_run:
            live = offline_run.prove_alive()
            assert not live.alive
            assert live.reason.startswith("phone offline since 20"), live.reason
            assert not offline_run.verify(copy)
            with pytest.raises(ProviderError, match="did not prove alive"):
                offline_run.free_local(copy.path)
            assert offline_run.status_summary().connected is False
    finally:
        strict_pair.start_phone()


def test_a_missing_phone_folder_is_not_alive(tmp_path: Path, make_file: MakeFile) -> None:
    """Finding 1: with the phone's folder gone, this machine's index still says
    the phone holds every file and the connection is up; only the canary
    tells."""
    with SyncthingPair.create(tmp_path / "pair") as pair:
        src, sha = make_file("card.jpg", b"on an SD card that goes away")
        with pair.target(timeout=5.0) as t:
            copy = _held(t, src, "card/card.jpg", sha)
        shutil.rmtree(pair.phone_folder)  # the folder and its .stfolder marker

        with pair.target(timeout=5.0, liveness_timeout=2.0) as run:
            assert run.confirm(copy.path).held  # the index alone would count it
            live = run.prove_alive()
            assert not live.alive
            assert "did not receive a fresh test file within 2 s" in live.reason
            assert not run.verify(copy)
            with pytest.raises(GateRefused, match=r"0 of 1 verified copies now \(none\)") as e:
                check_removal(
                    [("card.jpg", sha)],
                    need=1,
                    stores={"pixel": run},
                    copies={"pixel": {sha: copy}},
                )
            assert e.value.unavailable  # the next run's question, not a wrong copy
            status = run.status_summary()
        assert status.connected  # the connection is up all the same
        assert hashlib.sha256(b"on an SD card that goes away").hexdigest() == sha
