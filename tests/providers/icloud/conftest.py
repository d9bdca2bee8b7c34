"""Fixtures: a small awkward library served by a fresh emulator per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.icloud.source import ICloudSource


@attrs.frozen
class Library:
    account: Account
    jpeg: EmulatedAsset
    live: EmulatedAsset
    undated: EmulatedAsset
    video: EmulatedAsset
    twin_a: EmulatedAsset
    twin_b: EmulatedAsset


def make_library() -> Library:
    account = Account()
    jpeg = account.add_asset(
        b"\xff\xd8jpeg" * 40000, "IMG_0001.JPG", asset_date=datetime(2019, 6, 1, 12, tzinfo=UTC)
    )
    live = account.add_asset(
        b"heic-still" * 3000,
        "IMG_0002.HEIC",
        asset_date=datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC),
        live_video=b"mov-video" * 7000,
    )
    undated = account.add_asset(b"no date here" * 100, "SCAN.JPG", asset_date=None)
    video = account.add_asset(
        b"\x00\x00\x00\x18ftypqt" * 4000,
        "IMG_0003.MOV",
        asset_date=datetime(2022, 1, 1, tzinfo=UTC),
    )
    # Same name, same size, different bytes: two distinct photos.
    twin_a = account.add_asset(
        b"A" * 4096, "IMG_1234.JPG", asset_date=datetime(2020, 1, 1, tzinfo=UTC)
    )
    twin_b = account.add_asset(
        b"B" * 4096, "IMG_1234.JPG", asset_date=datetime(2020, 1, 2, tzinfo=UTC)
    )
    return Library(account, jpeg, live, undated, video, twin_a, twin_b)


@pytest.fixture
def library() -> Library:
    return make_library()


@pytest.fixture
def emulator(library: Library) -> Iterator[RunningEmulator]:
    with running_emulator(library.account) as emu:
        yield emu


@pytest.fixture
def session_dir(tmp_path: Path, emulator: RunningEmulator) -> Path:
    directory = tmp_path / "icloud-session"
    seed_trusted_session(emulator, directory)
    return directory


@pytest.fixture
def source(emulator: RunningEmulator, session_dir: Path) -> Iterator[ICloudSource]:
    with ICloudSource(
        "icloud",
        username=emulator.username,
        password=None,
        session_dir=session_dir,
        endpoint=emulator.url,
        timeouts=(2.0, 2.0),
    ) as src:
        yield src
