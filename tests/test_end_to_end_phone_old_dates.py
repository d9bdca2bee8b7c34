"""Photos dated before a time zone's standard offset (local mean time, an
offset with seconds): Syncthing writes a file's time in its local time with
the offset cut to whole minutes, so its record reads up to a minute off the
file. That loss alone must not keep the phone's copy from ever counting,
and no really different time may pass for it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing.folder import same_mtime
from providers.syncthing.pair import SyncthingPair
from tests.helpers import files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
S = 10**9
#: 1920-06-10T03:33:20Z and 123 ns; Amsterdam was at +00:19:32 then, in
#: summer time +01:19:32. The text is the real pair's (Syncthing 1.19).
AMSTERDAM_1920 = -1_564_000_000 * S + 123
AMSTERDAM_TEXT = "1920-06-10T04:52:52.000000123+01:19"


@pytest.fixture
def zone() -> Iterator[Callable[[str], None]]:
    """Set this process's time zone (and a Syncthing started meanwhile's)."""
    before = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_only_the_seconds_a_zone_offset_had_are_forgiven(zone: Callable[[str], None]) -> None:
    zone("Europe/Amsterdam")
    assert same_mtime(AMSTERDAM_TEXT, AMSTERDAM_1920)
    # Any other time is another time: the text's face value (32 s later) too.
    for off in (1, S, 32 * S, -32 * S, 60 * S):
        assert not same_mtime(AMSTERDAM_TEXT, AMSTERDAM_1920 + off)
    assert same_mtime("2022-03-04T06:06:00.5+01:00", 1646370360 * S + S // 2)
    # Dublin Mean Time, 1912: -00:25:21, written "-00:25" (cut toward zero).
    zone("Europe/Dublin")
    at = -1_800_000_000 * S  # 1912-12-17T16:00:00Z
    assert same_mtime("1912-12-17T15:34:39-00:25", at)
    assert not same_mtime("1912-12-17T15:34:39-00:25", at + S)
    assert not same_mtime("1912-12-17T15:34:39-00:25", at - 21 * S)  # its face value
    # Syncthing in another zone than this machine's (here UTC): the seconds
    # lost count only where some zone's offset then had exactly them.
    zone("UTC")
    assert same_mtime("1920-06-10T03:33:20.000000123Z", AMSTERDAM_1920)
    assert same_mtime(AMSTERDAM_TEXT, AMSTERDAM_1920)  # Amsterdam's +01:19:32
    assert not same_mtime(AMSTERDAM_TEXT, AMSTERDAM_1920 + S)  # +01:19:31: no zone's
    assert not same_mtime(AMSTERDAM_TEXT, AMSTERDAM_1920 + 1)
    assert not same_mtime("2022-03-04T06:06:05+01:00", 1646370360 * S)  # no zone had +01:00:05


@pytest.fixture
def amsterdam(
    tmp_path: Path, zone: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SyncthingPair]:
    zone("Europe/Amsterdam")  # this machine's, Syncthing's here and the phone's
    with SyncthingPair.create(tmp_path / "st") as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def test_a_photo_from_1920_in_amsterdam_counts_on_the_phone(
    tmp_path: Path, amsterdam: SyncthingPair
) -> None:
    pair = amsterdam
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 10\n"
    )
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", datetime(1920, 6, 1, 12, 0), seed=1)
    data = photo.read_bytes()
    deadline = time.monotonic() + 30
    while files_under(ws.incoming):
        r = ws.run("apply", "--yes", now=NOW)
        assert time.monotonic() < deadline, r.out + r.err  # before: waiting for ever
        time.sleep(0.3)
    assert data in phone_files(pair).values()
