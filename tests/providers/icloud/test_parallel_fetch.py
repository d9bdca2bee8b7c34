"""Downloads run as parallel streams, and each stream is still checked whole.

``ICloudSource.fetch`` is called from many threads at once by the applier:
the requests must overlap (Apple's round trip, not this machine, sets the
rate of one stream), and every stream must still count its bytes against the
resource size, resume a short one, and report a failed one on its own.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler.errors import ProviderError
from reconciler.model import MediaFile, SourceItem
from tests.providers.icloud.conftest import Library
from tests.providers.icloud.test_source import NoHasher

STREAMS = 8


def every_file(source: ICloudSource) -> list[tuple[SourceItem, MediaFile]]:
    return [(item, f) for item in source.list_items(NoHasher()) for f in item.files]


def every_sha(library: Library) -> set[str]:
    assets = library.account.live_assets()
    blobs = [a.master.original for a in assets] + [a.master.live_video for a in assets]
    return {b.sha256 for b in blobs if b is not None}


def fetch_all(
    source: ICloudSource, files: list[tuple[SourceItem, MediaFile]], out: Path
) -> list[tuple[MediaFile, Path, str | BaseException]]:
    """Fetch every file from its own thread; (file, dest, sha or error) each."""
    out.mkdir()

    def one(n: int, item: SourceItem, f: MediaFile) -> tuple[MediaFile, Path, str | BaseException]:
        dest = out / f"{n}-{f.name}"
        try:
            return f, dest, source.fetch(item, f, dest)
        except ProviderError as e:
            return f, dest, e

    with ThreadPoolExecutor(STREAMS) as pool:
        return list(pool.map(lambda a: one(*a), ((n, *p) for n, p in enumerate(files))))


def test_parallel_streams_overlap_and_each_is_verified(
    source: ICloudSource, emulator: RunningEmulator, library: Library, tmp_path: Path
) -> None:
    files = every_file(source)
    assert len(files) == 7
    emulator.server.latency = 0.2  # every answer waits, as on Apple's round trip
    # Three streams are cut short with a Content-Length that matches what is
    # sent: only a count against the listed size notices.
    emulator.server.inject_truncation(fraction=0.3, mode="lie", times=3)
    results = fetch_all(source, files, tmp_path / "out")
    assert emulator.server.peak_downloads >= 2  # they did not wait for each other
    for f, dest, got in results:
        assert isinstance(got, str), got
        data = dest.read_bytes()
        assert len(data) == f.size
        assert got == hashlib.sha256(data).hexdigest()
    assert {got for _, _, got in results} == every_sha(library)
    # The short ones were read again whole, not resumed from nor taken as whole.
    assert emulator.server.range_requests == []
    assert emulator.server.hits["download"] == len(files) + 3


@pytest.mark.parametrize(("status", "times"), [(503, 2), (503, None), (404, None)])
def test_a_failed_stream_is_retried_or_reported_and_the_others_complete(
    source: ICloudSource,
    emulator: RunningEmulator,
    library: Library,
    tmp_path: Path,
    status: int,
    times: int | None,
) -> None:
    files = every_file(source)
    emulator.server.latency = 0.1
    # Only the video's stream fails: ``times`` answers, or every one.
    emulator.server.inject("download", status=status, times=times, path_contains="IMG_0003.MOV")
    results = fetch_all(source, files, tmp_path / "out")
    failed = [(f.name, got) for f, _, got in results if not isinstance(got, str)]
    if times is not None:  # busy for a moment: retried in the same stream
        assert failed == []
        assert emulator.server.hits["download"] == len(files) + times
    else:
        assert [name for name, _ in failed] == ["IMG_0003.MOV"]
        error = failed[0][1]
        assert isinstance(error, ProviderError)
        assert "(IMG_0003.MOV)" in str(error)
        assert error.transient is (status == 503)  # the applier's retry decides
    for f, dest, got in results:
        if isinstance(got, str):
            assert dest.stat().st_size == f.size
            assert hashlib.sha256(dest.read_bytes()).hexdigest() == got
    assert {got for _, _, got in results if isinstance(got, str)} == every_sha(library) - (
        {library.video.master.original.sha256} if times is None else set()
    )
