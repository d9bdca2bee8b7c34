"""The phone as a conduit to Google Photos (issue 13), on a real loopback
Syncthing pair whose phone folder applies deletes: deliver, confirm, settle
(a controlled clock), release, never deliver again; a byte budget; counting
only with ``count_as_copy``."""

from __future__ import annotations

import hashlib
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from reconciler.media import read_lineage
from tests.helpers import (
    KEEP_ORIGINALS,
    Run,
    Workspace,
    files_under,
    make_jpeg,
    make_workspace,
    phone_files,
    phone_workspace,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=8)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def conduit(
    root: Path, pair: SyncthingPair, *, removal: bool = False, extra: str = ""
) -> Workspace:
    options = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\n'
    return phone_workspace(root, pair, removal=removal, phone_options=options + extra)


def until(ws: Workspace, text: str, now: datetime = NOW, timeout: float = 20.0) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=now)
        if text in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def phone_jpegs(pair: SyncthingPair) -> dict[str, bytes]:
    return {k: v for k, v in phone_files(pair).items() if k.endswith(".JPG")}


def test_deliver_settle_release_and_never_again(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = conduit(tmp_path / "ws", pair)
    for n in range(2):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert until(ws, NO_CHANGES).out == NO_CHANGES  # confirmed; settling
    assert len(phone_jpegs(pair)) == 2
    status = ws.run("status", now=NOW).out
    assert "phone (conduit): 2 delivered, 2 settling (" in status
    assert "next release due 2026-12-02 12:00 UTC" in status

    r = ws.run("plan", "--detail", now=LATER)
    assert "- release-from-phone phone:2022/03/04/IMG_0.JPG: delivered 2026-11-25, settled" in r.out
    assert ws.run("apply", "--yes", now=LATER).code == 0
    deadline = time.monotonic() + 10
    while phone_jpegs(pair):
        assert time.monotonic() < deadline, "the release did not reach the phone"
        time.sleep(0.05)
    final = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert (final.code, final.out) == (0, NO_CHANGES)  # never delivered again
    assert "2 delivered, 0 settling (0 bytes on the phone), 2 released" in ws.run("status").out


def test_the_phone_removing_a_file_before_it_settled_is_said_not_resent(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws = conduit(tmp_path / "ws", pair)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    until(ws, NO_CHANGES)
    (pair.phone_folder / "2022/03/04/IMG_1.JPG").unlink()  # "Free up space"
    pair.scan_phone("2022/03/04/IMG_1.JPG")

    r = until(ws, "removed it before it settled")
    assert (
        "  … waiting phone:2022/03/04/IMG_1.JPG: the phone removed it before it settled; not resent"
    ) in r.out
    assert "copy-to-target" not in r.out


def test_the_byte_budget_feeds_the_phone_in_batches(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = conduit(tmp_path / "ws", pair, extra="max_bytes_on_phone = 1\n")
    for n in range(2):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n)
    first = ws.run("apply", "--yes", now=NOW)
    assert first.code == 0
    assert "  … waiting target phone: 1 file(s) (" in first.out
    assert "held back: the phone holds 0 of max_bytes_on_phone 1 bytes" in first.out
    until(ws, "held back: the phone holds ")
    assert len(phone_jpegs(pair)) == 1

    assert ws.run("apply", "--yes", now=LATER).code == 0  # releases the first
    assert ws.run("apply", "--yes", now=LATER).code == 0  # and so makes room
    deadline = time.monotonic() + 10
    while len(phone_jpegs(pair)) != 1 or "IMG_1.JPG" not in str(phone_jpegs(pair)):
        assert time.monotonic() < deadline, phone_jpegs(pair)
        time.sleep(0.05)


@pytest.mark.parametrize("trusted", [False, True])
def test_a_conduit_counts_only_with_count_as_copy(
    tmp_path: Path, pair: SyncthingPair, trusted: bool
) -> None:
    extra = "count_as_copy = true\n" if trusted else ""
    ws = conduit(tmp_path / "ws", pair, removal=True, extra=extra)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    if trusted:
        assert "trusting Google Photos without verification" in ws.run("validate").out
        until(ws, "- remove-from-source")
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out
        assert files_under(ws.incoming) == {}
    else:
        r = until(ws, "1 of 2 verified copies; kept in the source")
        assert "1 of 2 verified copies; kept in the source" in r.out, r.out
        assert ws.run("apply", "--yes", now=NOW).code == 0
        assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]


def test_an_off_loaded_original_is_compressed_once_the_nas_and_a_trusted_conduit_hold_it(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    """The encode that replaces the library's last original reads the NAS's
    copy first and counts the conduit's confirmed delivery (its record is
    read before the encodes' threads start: they read no state)."""
    ws = conduit(tmp_path / "ws", pair, removal=True, extra="count_as_copy = true\n")
    original = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    until(ws, "- remove-from-source")
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}  # off-loaded: the library's is the last original
    ws.config.write_text(
        ws.config.read_text().replace(
            KEEP_ORIGINALS, '[[policy.tiers]]\nname = "small"\njpeg_quality = 40\n'
        )
    )
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "encode library:2022/03/04/IMG_1.JPG" in r.out, r.out
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "small")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_conduit_settings_are_checked(tmp_path: Path) -> None:
    targets = textwrap.dedent(
        """
        [targets.phone]
        kind = "syncthing"
        path = "phone"
        folder_id = "f"
        device_id = "D"
        role = "conduit"
        delete_local_copy = true
        settle_days = -1
        [targets.pixel]
        kind = "syncthing"
        path = "pixel"
        folder_id = "g"
        device_id = "E"
        count_as_copy = true
        """
    )
    ws = make_workspace(tmp_path / "ws", targets=targets, stores=("library",))
    r = ws.run("validate")
    assert r.code == 1
    assert r.err.replace(f"{ws.config}: ", "").splitlines() == [
        "error: targets.phone.delete_local_copy: not with role = "
        '"conduit" (a conduit\'s files leave the phone on their own after settle_days)',
        "error: targets.phone.settle_days: must be more than 0 (the phone keeps each file "
        "this long for Google Photos to take it before it is released)",
        'error: targets.pixel.count_as_copy: only with role = "conduit"',
    ]
    # nor 0: released in the run that first saw it arrive, before Google
    # Photos could have taken it
    ws.config.write_text(
        ws.config.read_text()
        .replace("settle_days = -1", "settle_days = 0")
        .replace("delete_local_copy = true\n", "")
        .replace("count_as_copy = true\n", "")
    )
    r = ws.run("validate")
    assert r.code == 1 and "targets.phone.settle_days: must be more than 0" in r.err, r.err
