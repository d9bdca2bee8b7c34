"""A photo or clip swapped for a FIFO after its kind was sniffed, and an
ffprobe or ffmpeg that never ends: each read ends promptly with a MediaError.

The sniff is the one read guarded by ``open_to_read``; the metadata reader,
the encoders and ffprobe then opened the path again by name, and a FIFO put
there meanwhile held the observer for ever (ffprobe had no time limit at all).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reconciler.errors import MediaError
from reconciler.media import metadata, still, video
from reconciler.media.video import EncodeTimeout
from tests.helpers import fifo_at, promptly

T = TypeVar("T")
SHA = "ab" * 32


def _copy(original: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(original, tmp_path / original.name))


@pytest.mark.parametrize("original", ["jpeg_original", "heic_original", "mov_original"])
def test_a_capture_date_of_a_file_swapped_for_a_fifo_after_the_sniff_is_a_media_error(
    original: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy(request.getfixturevalue(original), tmp_path)
    sniff = metadata.read_kind

    def read_kind(p: Path) -> str:
        kind = sniff(p)
        fifo_at(p)  # another program, just after the sniff
        return kind

    monkeypatch.setattr(metadata, "read_kind", read_kind)

    with pytest.raises(MediaError, match="not a regular file"):
        promptly(lambda: metadata.read_capture_date(path), tmp_path)


@pytest.mark.parametrize(
    "encode",
    [
        lambda src: still.encode_jpeg(src, quality=80, original_sha256=SHA, tier="t"),
        lambda src: still.encode_heic(
            src, quality=50, preset="ultrafast", original_sha256=SHA, tier="t"
        ),
    ],
    ids=["jpeg", "heic"],
)
def test_an_encode_of_a_fifo_is_a_media_error(
    encode: Callable[[Path], object], tmp_path: Path
) -> None:
    src = fifo_at(tmp_path / "IMG_0001.JPG")
    with pytest.raises(MediaError, match=r"IMG_0001\.JPG: cannot read: not a regular file"):
        promptly(lambda: encode(src), tmp_path)


def _stall(monkeypatch: pytest.MonkeyPatch, folder: Path, *tools: str) -> None:
    """``tools`` (``FFPROBE``, ``FFMPEG``) never finish (a stalled disk, a
    FIFO's open); every time limit is 2 s."""
    sleeper = folder / "stalled"
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    sleeper.chmod(0o755)
    for tool in tools:
        monkeypatch.setattr(video, tool, str(sleeper))
    monkeypatch.setattr(video, "_TIMEOUT_BASE_S", 2.0)
    monkeypatch.setattr(video, "_TIMEOUT_PER_SECOND", 0.0)


@pytest.mark.parametrize("read", [video.probe, video._hdr10_params], ids=["probe", "hdr10"])
def test_an_ffprobe_that_never_ends_is_stopped(
    read: Callable[[Path], object],
    mov_original: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stall(monkeypatch, tmp_path, "FFPROBE")
    with pytest.raises(EncodeTimeout, match=r"IMG_0003\.MOV: .*stalled did not finish within 2 s"):
        promptly(lambda: read(mov_original), tmp_path)


def test_the_decode_check_of_an_encoded_clip_is_stopped_too(
    mov_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info: dict[str, Any] = video.probe(mov_original)
    _stall(monkeypatch, tmp_path, "FFMPEG")  # ffprobe stays the real one
    with pytest.raises(EncodeTimeout, match=r"IMG_0003\.MOV: ffmpeg did not finish within 2 s"):
        promptly(lambda: video.check_video(mov_original, info, mov_original), tmp_path)
