"""A clip encoded from an original fetched to a temporary file, end to end.

When the library holds an encoded copy and no source or target file is on
this machine (the backup disks unplugged), the original is fetched from
iCloud into a file named ``original``: its name says nothing of the clip.
The encode takes its container from the library's name; and what it
leaves out of the clip (a drone's flight log) is said in the run's output,
not only inside the file."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import MARKER
from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from reconciler.media import read_lineage
from tests.helpers import Workspace, make_workspace

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # shot 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # 1.6 years on: tier older
SHOT = datetime(2021, 6, 1, 12, 34, 56, tzinfo=UTC)
LEFT_OUT = "left out: subtitle track 2 (tx3g)"


def _drone_clip(tmp: Path) -> bytes:
    """A DJI drone's clip: picture, sound and its flight log as a subtitle track."""
    log = tmp / "flight.srt"
    log.write_text(
        "".join(
            f"{i + 1}\n00:00:0{i},000 --> 00:00:0{i + 1},000\nGPS(8.54{i},47.37{i},120)\n\n"
            for i in range(2)
        )
    )
    clip = tmp / "DJI_0001.MP4"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            *("-t", "2", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"),
            *("-t", "2", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-i", str(log), "-map", "0", "-map", "1", "-map", "2"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "8"),
            *("-c:a", "aac", "-c:s", "mov_text"),
            *("-metadata", "creation_time=2021-06-01T12:34:56Z", str(clip)),
        ],
        check=True,
    )
    return clip.read_bytes()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    account.add_asset(_drone_clip(tmp_path), "DJI_0001.MP4", asset_date=SHOT)
    return account


@pytest.fixture
def icloud_ws(tmp_path: Path, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
    ws = make_workspace(root, removal=False, sources=icloud)
    seed_trusted_session(emu, root / "state" / "icloud-session")
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    return ws


@contextlib.contextmanager
def _unplugged(ws: Workspace) -> Iterator[None]:
    """The backup disks away: their markers set aside."""
    for disk in ("nas", "usb"):
        (ws.target(disk) / MARKER).rename(ws.target(disk) / "marker-aside")
    try:
        yield
    finally:
        for disk in ("nas", "usb"):
            (ws.target(disk) / "marker-aside").rename(ws.target(disk) / MARKER)


def test_a_clip_whose_original_is_fetched_is_encoded_for_its_next_tier(
    icloud_ws: Workspace,
) -> None:
    ws = icloud_ws
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib,) = ws.library.rglob("DJI_0001.MP4")
    assert read_lineage(lib)[1] == "recent"
    # The flight log is not in the library copy, and the run said so.
    encoded = [line for line in r.out.splitlines() if "changed encode icloud:DJI_0001" in line]
    assert len(encoded) == 1 and encoded[0].endswith(LEFT_OUT), r.out

    # The day the clip ages into "older", the backup disks are unplugged:
    # iCloud holds the only original this machine can read, fetched to a
    # temporary file named "original".
    with _unplugged(ws):
        r = ws.run("apply", "--yes", now=T2)
    assert read_lineage(lib)[1] == "older", r.out + r.err
    assert "cannot encode" not in r.out, r.out
    encoded = [line for line in r.out.splitlines() if "changed encode icloud:DJI_0001" in line]
    assert len(encoded) == 1 and encoded[0].endswith(LEFT_OUT), r.out

    again = ws.run("apply", "--yes", now=T2)
    assert again.code == 0, again.out + again.err
    assert "encode" not in again.out, again.out
