"""One run with the clock far ahead (a bad RTC at boot, before NTP set it):
the times the tool recorded from that clock lie in the future once the clock
is right, and are not trusted. A copy hashed "in 2036" is read again by the
next run (bit rot is found); a conduit's delivery confirmed "in 2036" settles
from the first run with a right clock (released then, not in ten years)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace
from tests.test_end_to_end_conduit import NO_CHANGES, conduit, until

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AHEAD = NOW + timedelta(days=3650)


def _rot(path: Path) -> None:
    """Flip one byte in place, keeping size, mtime and inode (bit rot)."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("clock_ahead_once", [False, True], ids=["right-clock", "ahead-once"])
def test_bit_rot_is_found_after_one_run_with_the_clock_ahead(
    tmp_path: Path, clock_ahead_once: bool
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2024, 5, 1, tzinfo=UTC), seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    if clock_ahead_once:
        # every file is due then, read, and stamped "hashed in 2036"
        assert ws.run("plan", now=AHEAD).code == 0
    (copy,) = ws.target("nas").rglob("IMG_1.JPG")
    _rot(copy)
    # 400 days on (past two windows of reverify_after_days = 180): every file
    # is read again, the rotted copy found and copied again
    r = ws.run("plan", now=NOW + timedelta(days=400))
    assert "copy-to-target[nas]" in r.out, r.out


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def test_a_delivery_confirmed_with_the_clock_ahead_settles_from_the_right_clock(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws = conduit(tmp_path / "ws", pair)  # settle_days = 7
    make_jpeg(ws.incoming / "IMG_0.JPG", datetime(2022, 3, 4, tzinfo=UTC), seed=0)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    # the phone's confirmation is recorded by a run whose clock is ten years ahead
    assert until(ws, NO_CHANGES, now=AHEAD).out == NO_CHANGES
    # The clock put right, 30 days on: the settle period starts again now
    # (never a release earlier than a right clock would make it)...
    fixed = NOW + timedelta(days=30)
    assert ws.run("plan", "--detailed-exitcode", now=fixed).out == NO_CHANGES
    status = ws.run("status", now=fixed).out
    assert f"next release due {fixed + timedelta(days=7):%Y-%m-%d %H:%M} UTC" in status, status
    # ...and is over seven days later, not in 2036.
    settled = fixed + timedelta(days=7)
    r = ws.run("apply", "--yes", now=settled)
    assert r.code == 0, r.out + r.err
    assert "release-from-phone" in r.out, r.out
    assert until(ws, NO_CHANGES, now=settled).out == NO_CHANGES
    status = ws.run("status", now=settled).out
    assert "1 delivered, 0 settling (0 bytes on the phone), 1 released" in status, status
