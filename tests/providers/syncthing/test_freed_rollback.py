"""A freed copy whose record is gone (the state database lost, or restored
from a backup older than the freeing), against a real loopback pair: the
tool's freed line and the version the phone announces prove it again
(``recognise_freed``), and a delivery of the same content takes it back
instead of putting a second copy on the phone (``put``). Never without
proof: a phone that changed its copy gets the bytes anew, and one away
proves nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from reconciler.errors import ProviderError
from reconciler.model import FileCopy
from tests.providers.syncthing.support import wait_for

pytestmark = pytest.mark.syncthing

MakeFile = Callable[[str, bytes], tuple[Path, str]]
CAPTURED = 1_646_370_360 * 10**9  # 2022-03-04 05:06 UTC, as the applier dates a delivery


@pytest.fixture(scope="module")
def rb_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncthingPair]:
    """A pair of this module's own: one test takes its phone offline."""
    with SyncthingPair.create(tmp_path_factory.mktemp("rollback")) as pair:
        yield pair


def freed(pair: SyncthingPair, src: Path, rel: str, sha: str) -> tuple[FileCopy, str]:
    """``src`` delivered at ``rel`` dated at its capture, held by the phone
    and freed here; the copy and the proof's evidence."""
    with pair.target(timeout=5.0, liveness_timeout=5.0) as run:
        copy = run.put(src, rel, sha, mtime_ns=CAPTURED)
        assert copy.path == rel
        assert wait_for(lambda: run.confirm(rel), held=True).held
        proof = run.free_local(rel)
    assert proof.held and proof.evidence
    assert not (pair.local_folder / rel).exists()
    return copy, proof.evidence


def test_a_freed_copy_is_recognised_with_no_record_of_it(
    rb_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("IMG_1.JPG", b"freed, then its record lost")
    copy, evidence = freed(rb_pair, src, "rb/known/IMG_1.JPG", sha)

    with rb_pair.target(timeout=5.0, liveness_timeout=5.0) as next_run:
        assert next_run.freed_here(copy.path)
        assert not next_run.freed_here("rb/known/IMG_2.JPG")
        assert not next_run.verify(copy)  # not proven in this run yet
        assert not next_run.recognise_freed(copy.path, copy.size + 1, "").held
        assert not next_run.recognise_freed(copy.path, copy.size, "1:1/1").held
        assert not next_run.recognise_freed("rb/known/IMG_2.JPG", copy.size, "").held
        answer = next_run.recognise_freed(copy.path, copy.size, "")
        assert answer.held and answer.evidence == evidence, answer
        assert next_run.recognise_freed(copy.path, copy.size, evidence).held
        assert next_run.verify(copy)  # proven this run: counts at the gate too
    assert (rb_pair.phone_folder / copy.path).read_bytes() == b"freed, then its record lost"


def test_a_freed_copy_is_taken_back_not_sent_again(
    rb_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("IMG_3.JPG", b"delivered again after a fresh start")
    copy, _ = freed(rb_pair, src, "rb/again/IMG_3.JPG", sha)

    with rb_pair.target(timeout=5.0) as next_run:
        again = next_run.put(src, copy.path, sha, mtime_ns=CAPTURED)
        assert again == FileCopy(
            store_id=copy.store_id,
            path=copy.path,
            size=copy.size,
            mtime_ns=CAPTURED,
            sha256=sha,
        )
        assert not (rb_pair.local_folder / copy.path).exists()  # nothing written here
        # Dated otherwise, or not dated at all: not that delivery; a name of its own.
        other = next_run.put(src, copy.path, sha, mtime_ns=CAPTURED + 10**9)
        assert other.path == f"rb/again/IMG_3~{sha[:10]}.JPG"
        undated = next_run.put(src, copy.path, sha)
        assert undated.path == other.path  # (the same bytes here already)
    assert "/rb/again/IMG_3.JPG" in (rb_pair.local_folder / ".stignore").read_text().split("\n")


def test_a_freed_copy_changed_on_the_phone_is_sent_anew(
    rb_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("IMG_4.JPG", b"edited on the phone later")
    copy, _ = freed(rb_pair, src, "rb/edited/IMG_4.JPG", sha)
    (rb_pair.phone_folder / copy.path).write_bytes(b"other bytes")  # "locally changed" there
    rb_pair.scan_phone(copy.path)

    with rb_pair.target(timeout=5.0) as next_run:
        answer = wait_for(lambda: next_run.recognise_freed(copy.path, copy.size, ""), held=False)
        assert not answer.held, answer
        sent = next_run.put(src, copy.path, sha, mtime_ns=CAPTURED)
        assert sent.path == f"rb/edited/IMG_4~{sha[:10]}.JPG"
        assert (rb_pair.local_folder / sent.path).read_bytes() == b"edited on the phone later"


def test_a_phone_away_proves_nothing_and_gets_no_second_copy(
    rb_pair: SyncthingPair, make_file: MakeFile
) -> None:
    src, sha = make_file("IMG_5.JPG", b"freed; the phone goes away")
    copy, _ = freed(rb_pair, src, "rb/away/IMG_5.JPG", sha)
    rb_pair.stop_phone()
    try:
        with rb_pair.target(timeout=5.0) as next_run:
            deadline = time.monotonic() + 10
            while next_run.status_summary().connected:  # this machine sees it gone
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # Taken back as the delivery (it waits for the phone), not sent twice...
            assert next_run.put(src, copy.path, sha, mtime_ns=CAPTURED).path == copy.path
            assert not (rb_pair.local_folder / copy.path).exists()
            # ... and not counted: the phone cannot say it holds it.
            with pytest.raises(ProviderError) as raised:
                next_run.recognise_freed(copy.path, copy.size, "")
            assert raised.value.transient
            assert not next_run.verify(copy)
    finally:
        rb_pair.start_phone()
