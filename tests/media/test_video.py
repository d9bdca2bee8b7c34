"""Video re-encodes with the real ffmpeg: tiers, metadata, rotation, lineage, bad input."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ffmpeg
import pytest

from reconciler.errors import MediaError
from reconciler.media import encode_file, read_capture_date, read_lineage
from reconciler.media.video import timeout_for

from . import corpus
from .conftest import CREATION_TIME, LOCATION, make_clip
from .faithful import frame_times


def _shown_frames(path: Path) -> int:
    """Frames a clip shows (decoded by ffprobe, its edit list applied)."""
    info = ffmpeg.probe(str(path), select_streams="v:0", count_frames=None)
    return int(info["streams"][0]["nb_read_frames"])


SHA = "cd" * 32
LOCATION_KEY = "com.apple.quicktime.location.ISO6709"


def _probe(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = ffmpeg.probe(str(path))
    return info


def _stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    streams = [s for s in info["streams"] if s["codec_type"] == kind]
    assert len(streams) == 1
    stream: dict[str, Any] = streams[0]
    return stream


def _rotation(stream: dict[str, Any]) -> int | None:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(side["rotation"])
    return None


def test_ffmpeg_is_installed() -> None:
    # The suite must fail, not skip, on a machine without ffmpeg.
    assert shutil.which("ffmpeg"), "ffmpeg not on PATH (make installs it)"
    assert shutil.which("ffprobe"), "ffprobe not on PATH (make installs it)"


@pytest.mark.parametrize(
    ("original", "crf", "codec", "tier"),
    [
        ("mov_original", 26, "libx264", "light"),
        ("mp4_original", 30, "libx264", "heavy"),
        ("mp4_original", 30, "libx265", "medium"),
    ],
)
def test_video_tier_keeps_metadata_rotation_and_audio(
    request: pytest.FixtureRequest, tmp_path: Path, original: str, crf: int, codec: str, tier: str
) -> None:
    src: Path = request.getfixturevalue(original)
    before = src.read_bytes()
    dst = tmp_path / "out.tmp"
    result = encode_file(
        src,
        dst,
        quality=None,
        crf=crf,
        original_sha256=SHA,
        tier=tier,
        replaces_size=len(before),
        video_codec=codec,
    )
    assert result.status == "encoded", result.reason
    assert result.size == dst.stat().st_size < len(before)
    assert result.reason.endswith(f"(crf {crf}, {codec})")
    assert src.read_bytes() == before
    orig, out = _probe(src), _probe(dst)
    # Container follows the original's extension, not dst's ".tmp".
    assert out["format"]["format_name"] == orig["format"]["format_name"]
    assert out["format"]["tags"]["major_brand"] == orig["format"]["tags"]["major_brand"]
    video = _stream(out, "video")
    assert video["codec_name"] == {"libx264": "h264", "libx265": "hevc"}[codec]
    assert (video["width"], video["height"]) == (320, 240)
    assert _rotation(video) == _rotation(_stream(orig, "video")) == 90
    assert _stream(out, "audio")["codec_name"] == "aac"
    assert float(out["format"]["duration"]) == pytest.approx(1.0, abs=0.1)
    tags = out["format"]["tags"]
    assert tags["creation_time"] == CREATION_TIME
    assert tags[LOCATION_KEY] == LOCATION
    assert read_lineage(dst) == (SHA, tier)
    assert read_lineage(src) is None
    assert read_capture_date(dst) == read_capture_date(src)


def test_faststart_moves_the_index_to_the_front(mp4_original: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.tmp"
    encode_file(
        mp4_original,
        dst,
        quality=None,
        crf=30,
        original_sha256=SHA,
        tier="t",
        replaces_size=10**9,
    )
    head = dst.read_bytes()
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


def test_video_not_worth_leaves_no_dst(mov_original: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.tmp"
    result = encode_file(
        mov_original,
        dst,
        quality=None,
        crf=18,
        original_sha256=SHA,
        tier="t",
        replaces_size=1000,
    )
    assert result.status == "not_worth"
    assert result.size == 0
    assert "not smaller" in result.reason
    assert not dst.exists()


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_video_raises_media_error(
    tmp_path: Path, mp4_original: Path, faststart: bool
) -> None:
    if faststart:
        # Index in front: ffprobe reads it, the frames run out half way.
        whole = tmp_path / "whole.mp4"
        ffmpeg.input(str(mp4_original)).output(
            str(whole), c="copy", movflags="+faststart", v="error"
        ).run()
        data = whole.read_bytes()
    else:
        data = mp4_original.read_bytes()  # index at the end: lost with the tail
    src = tmp_path / "truncated.mp4"
    src.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out.tmp"
    with pytest.raises(MediaError, match=r"truncated\.mp4: ") as caught:
        encode_file(
            src,
            dst,
            quality=None,
            crf=30,
            original_sha256=SHA,
            tier="t",
            replaces_size=10**9,
        )
    assert "\n" not in str(caught.value)
    assert src.read_bytes() == data[: len(data) // 2]
    assert not dst.exists()


def test_capture_date_of_video(mov_original: Path, mp4_original: Path, tmp_path: Path) -> None:
    # Apple's creationdate keeps the local offset; it wins over creation_time.
    paris = timezone(timedelta(hours=2))
    assert read_capture_date(mov_original) == datetime(2021, 6, 1, 14, 34, 56, tzinfo=paris)
    assert read_capture_date(mp4_original) == datetime(2021, 6, 1, 12, 34, 56, tzinfo=UTC)
    undated = tmp_path / "undated.mp4"
    ffmpeg.input(str(mp4_original)).output(str(undated), c="copy", map_metadata=-1, v="error").run()
    assert read_capture_date(undated) is None


def test_clip_without_rotation_stays_unrotated(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "flat.mov", rotate=None)
    dst = tmp_path / "out.tmp"
    result = encode_file(
        src, dst, quality=None, crf=30, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded"
    assert _rotation(_stream(_probe(dst), "video")) is None


# A timecode track is written anew by ffmpeg, so not dropped: see
# test_video_tracks.py (what a re-encode carries and leaves out).


def test_decode_errors_mid_stream_are_corrupt_input(mp4_original: Path, tmp_path: Path) -> None:
    # Whole file, index intact, damaged frames: ffmpeg goes on but says so.
    data = bytearray(mp4_original.read_bytes())
    start = data.find(b"mdat") + 3000
    for k in range(start, start + 4000, 7):
        data[k] = (data[k] * 31 + 17) % 256
    src = tmp_path / "damaged.mp4"
    src.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"damaged\.mp4: decoding reported errors: "):
        encode_file(
            src,
            tmp_path / "o",
            quality=None,
            crf=30,
            original_sha256=SHA,
            tier="t",
            replaces_size=10**9,
        )
    assert not (tmp_path / "o").exists()


def test_ffmpeg_timeout_scales_with_duration_and_pixels() -> None:
    def info(seconds: float) -> dict[str, Any]:
        return {"format": {"duration": str(seconds)}}

    hd = {"width": 1920, "height": 1080, "avg_frame_rate": "30/1"}
    uhd60 = {"width": 3840, "height": 2160, "avg_frame_rate": "60/1"}
    assert timeout_for(info(10), hd) == 120 + 40 * 10
    assert timeout_for(info(10), uhd60) == 120 + 40 * 10 * 8
    assert timeout_for(info(1), {"width": 320, "height": 240}) == 120 + 40


def test_a_clip_trimmed_without_re_encoding_is_encoded_whole(tmp_path: Path) -> None:
    # Its track holds 75 frames, its edit list shows 60 of them.
    src = corpus.trimmed_clip(tmp_path / "trimmed.mp4")
    assert _stream(_probe(src), "video")["nb_frames"] == "75"
    dst = tmp_path / "out.mp4"
    result = encode_file(
        src, dst, quality=None, crf=30, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded", result.reason
    assert len(frame_times(dst)) == _shown_frames(src) == 60
    assert float(_probe(dst)["format"]["duration"]) == pytest.approx(2.0, abs=0.1)


def test_a_cover_picture_is_named_as_dropped(tmp_path: Path) -> None:
    src = corpus.clip_with_cover(tmp_path / "VID.mp4")
    dst = tmp_path / "out.mp4"
    result = encode_file(
        src, dst, quality=None, crf=30, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded", result.reason
    info = _probe(dst)
    video = _stream(info, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert len(frame_times(dst)) == 30
    assert info["format"]["tags"]["org.reconcile.dropped"] == "attached picture 2 (png)"


@pytest.mark.parametrize(
    "fault",
    [
        (-9, b""),
        (1, b"av_interleaved_write_frame(): No space left on device\n"),
        (1, b"/library/2021/.reconcile-tmp-1.MOV: Read-only file system\n"),
    ],
    ids=["killed", "disk-full", "read-only"],
)
def test_an_encode_the_machine_stopped_is_tried_again_never_settled(
    mp4_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: tuple[int, bytes]
) -> None:
    """ffmpeg killed (the OOM killer), out of disk space or on a read-only
    library while it wrote:
    the clip plays, so it was kept as it is, settled for good, and never
    compressed at that tier. It is the machine's failure: tried again."""
    import subprocess

    from reconciler.media import video

    real = subprocess.run

    def stopped(args: list[str], **kwargs: Any) -> Any:
        if "-crf" in args:  # the encode itself, not ffprobe nor the decode check
            return subprocess.CompletedProcess(args, fault[0], b"", fault[1])
        return real(args, **kwargs)

    monkeypatch.setattr(video.subprocess, "run", stopped)
    with pytest.raises(video.EncodeTimeout, match="tried again next run"):
        encode_file(
            mp4_original,
            tmp_path / "out.tmp",
            quality=None,
            crf=30,
            original_sha256=SHA,
            tier="t",
            replaces_size=10**9,
        )
