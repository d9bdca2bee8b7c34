"""Files the encoder keeps as they are instead of calling them bad input or losing
part of them: stills too large to decode, HEIC Motion Photos and trailers,
clips without video or whose sound the container by their name cannot hold.
Results are checked with exiftool and ffprobe, not with the code under test."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reconciler.errors import MediaError
from reconciler.media import capture_timestamp, encode_file, read_capture_date, still
from reconciler.media.encode import EncodeResult
from tests.helpers import make_workspace

from . import corpus
from .conftest import make_clip, make_heic, make_jpeg
from .faithful import ffprobe

SHA = "ef" * 32
TAKEN_AT = datetime(2021, 6, 1, 14, 34, 56, tzinfo=timezone(timedelta(hours=2)))


def _encode(src: Path, dst: Path, *, video: bool = False) -> EncodeResult:
    return encode_file(
        src,
        dst,
        quality=None if video else 50,
        crf=30 if video else None,
        original_sha256=SHA,
        tier="archive",
        replaces_size=src.stat().st_size,
        heic_preset="ultrafast",
        threads=1,
    )


def _exiftool(path: Path) -> dict[str, Any]:
    done = subprocess.run(["exiftool", "-j", "-n", str(path)], capture_output=True, check=True)
    info: dict[str, Any] = json.loads(done.stdout)[0]
    return info


def _kept(src: Path, dst: Path, result: EncodeResult, before: bytes) -> str:
    assert result.status == "kept", result
    assert not dst.exists()
    assert src.read_bytes() == before
    return result.reason


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "part.mp4", rotate=None)


# Stills too large to decode


def test_a_200mp_jpeg_has_its_capture_date_read_from_its_header(tmp_path: Path) -> None:
    src = corpus.header_only_jpeg(tmp_path / "IMG_200MP.JPG")
    assert (_exiftool(src)["ImageWidth"], _exiftool(src)["ImageHeight"]) == (16320, 12240)
    assert read_capture_date(src) == TAKEN_AT
    assert capture_timestamp(src) == TAKEN_AT.timestamp()


def test_a_200mp_jpeg_is_kept_as_it_is_with_its_size_as_the_reason(tmp_path: Path) -> None:
    src = corpus.header_only_jpeg(tmp_path / "IMG_200MP.JPG")
    before, dst = src.read_bytes(), tmp_path / "out.jpg"
    assert _kept(src, dst, _encode(src, dst), before) == (
        "kept as it is: it has 199.8 megapixels (16320x12240), whose decode alone would "
        "take 599 MB of memory; stills above 179 MP are not re-encoded"
    )


def test_a_photo_in_pillows_warning_range_is_read_and_encoded_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow warns between MAX_IMAGE_PIXELS and twice that (89.5-179 MP), an
    # error under this suite's filterwarnings: lowered here so that a small
    # real photo (480x320) stands for such a large one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    src = make_jpeg(tmp_path / "IMG_100MP.JPG")
    dst = tmp_path / "out.jpg"
    assert read_capture_date(src) == TAKEN_AT
    result = _encode(src, dst)
    assert result.status == "encoded", result
    out = _exiftool(dst)
    assert (out["ImageWidth"], out["ImageHeight"]) == (480, 320)
    assert out["DateTimeOriginal"] == "2021:06:01 14:34:56"


@pytest.mark.parametrize(
    ("name", "make", "said"),
    [
        ("IMG.JPG", make_jpeg, "0.2 megapixels (480x320)"),
        # libheif gives the displayed size (the photo is turned by its orientation tag).
        ("IMG.HEIC", make_heic, "0.0 megapixels (192x256)"),
    ],
)
def test_a_still_above_the_pixel_limit_is_kept(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    make: Callable[[Path], Path],
    said: str,
) -> None:
    monkeypatch.setattr(still, "MAX_PIXELS", 40_000)
    src = make(tmp_path / name)
    before, dst = src.read_bytes(), tmp_path / "out"
    reason = _kept(src, dst, _encode(src, dst), before)
    assert reason.startswith(f"kept as it is: it has {said}, whose decode alone would take ")
    assert reason.endswith("stills above 0 MP are not re-encoded")


# HEIC Motion Photos and trailers


def test_a_heic_motion_photo_is_kept_with_its_video(tmp_path: Path, clip: Path) -> None:
    src = corpus.heic_motion_photo(tmp_path / "PXL_0001.MP.HEIC", clip)
    before, dst = src.read_bytes(), tmp_path / "out.heic"
    assert _kept(src, dst, _encode(src, dst), before) == (
        "kept as it is: it holds a Motion Photo's video (an 'mpvd' box); a re-encode would drop it"
    )


def test_a_heic_its_xmp_marks_a_motion_photo_is_kept(tmp_path: Path) -> None:
    # The mark alone decides, as for a JPEG: where the video lies is the phone's business.
    src = corpus.heic_with_xmp(tmp_path / "PXL_0002.MP.HEIC", corpus.MOTION_XMP)
    assert _exiftool(src)["MotionPhoto"] == 1
    before, dst = src.read_bytes(), tmp_path / "out.heic"
    assert _kept(src, dst, _encode(src, dst), before) == (
        "kept as it is: its XMP marks it a Motion Photo; a re-encode would drop the video"
    )


def test_a_heic_with_a_makers_trailer_is_kept_not_called_corrupt(
    tmp_path: Path, clip: Path
) -> None:
    src = corpus.heic_with_trailer(tmp_path / "20210601_123456.heic", clip)
    # "MotionPhoto_Data", the clip, and a 36-byte SEF trailer
    trailer = 16 + clip.stat().st_size + 36
    before, dst = src.read_bytes(), tmp_path / "out.heic"
    assert _kept(src, dst, _encode(src, dst), before) == (
        f"kept as it is: {trailer} bytes follow its last box (a Motion Photo's video or a "
        "maker's trailer); a re-encode would drop them"
    )
    assert read_capture_date(src) == TAKEN_AT


def test_a_heic_whose_last_box_is_cut_short_is_still_corrupt(tmp_path: Path, clip: Path) -> None:
    src = corpus.heic_motion_photo(tmp_path / "cut.heic", clip)
    src.write_bytes(src.read_bytes()[:-100])
    with pytest.raises(
        MediaError, match=r"cut\.heic: truncated or corrupt HEIF: box 'mpvd' at byte \d+ runs past"
    ):
        _encode(src, tmp_path / "out.heic")


# Clips


def test_a_sound_only_mov_is_kept(tmp_path: Path) -> None:
    src = corpus.audio_only_mov(tmp_path / "Audio Recording.mov")
    before, dst = src.read_bytes(), tmp_path / "out.mov"
    assert _kept(src, dst, _encode(src, dst, video=True), before) == (
        "kept as it is: it holds no video (only audio); there is nothing to re-encode"
    )
    assert read_capture_date(src) is not None


def _audio_md5(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def test_pcm_sound_in_an_mp4_is_carried_as_it_is(tmp_path: Path) -> None:
    src = corpus.clip_with_audio(tmp_path / "C0001.MP4", "pcm_s16le", "mov")
    dst = tmp_path / "out.mp4"
    result = _encode(src, dst, video=True)
    assert result.status == "encoded", result
    info = ffprobe(dst, "-show_streams", "-show_format")
    assert [s["codec_name"] for s in info["streams"]] == ["h264", "pcm_s16le"]
    assert info["format"]["tags"]["creation_time"] == "2021-06-01T12:34:56.000000Z"
    assert info["format"]["tags"]["org.reconcile.original_sha256"] == SHA
    assert _audio_md5(dst) == _audio_md5(src)


def test_a_clip_ffmpeg_cannot_write_back_is_kept_not_called_corrupt(tmp_path: Path) -> None:
    # Opus in a file named .mov: it plays, but the QuickTime muxer refuses Opus.
    src = corpus.clip_with_audio(tmp_path / "VID.mov", "libopus", "mp4")
    before, dst = src.read_bytes(), tmp_path / "out.mov"
    reason = _kept(src, dst, _encode(src, dst, video=True), before)
    assert reason.startswith("kept as it is: ffmpeg cannot write it back (")
    assert "Could not write header" in reason
    assert reason.endswith("the original decodes without error")


# Through the whole tool


def test_a_run_keeps_them_and_exits_cleanly(tmp_path: Path, clip: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    corpus.header_only_jpeg(ws.incoming / "IMG_200MP.JPG")
    motion = corpus.heic_motion_photo(ws.incoming / "PXL_0001.MP.HEIC", clip).read_bytes()
    corpus.audio_only_mov(ws.incoming / "Audio Recording.mov")
    corpus.clip_with_audio(ws.incoming / "C0001.MP4", "pcm_s16le", "mov")
    r = ws.run("apply", "--yes", now=datetime(2025, 1, 1, tzinfo=UTC))
    print(r.out, r.err)
    assert (r.code, r.err) == (0, "")
    # Each once, whatever the output's layout around it.
    kept = sorted(
        line[line.index("incoming:") :] for line in r.out.splitlines() if "kept as it is" in line
    )
    assert kept == [
        "incoming:Audio Recording.mov: kept as it is: it holds no video (only "
        "audio); there is nothing to re-encode",
        "incoming:IMG_200MP.JPG: kept as it is: it has 199.8 megapixels "
        "(16320x12240), whose decode alone would take 599 MB of memory; stills above "
        "179 MP are not re-encoded",
        "incoming:PXL_0001.MP.HEIC: kept as it is: it holds a Motion Photo's "
        "video (an 'mpvd' box); a re-encode would drop it",
    ]
    (library_motion,) = ws.library.rglob("PXL_0001.MP.HEIC")
    assert library_motion.read_bytes() == motion
    (library_clip,) = ws.library.rglob("C0001.MP4")
    streams = ffprobe(library_clip, "-show_streams")["streams"]
    assert [s["codec_name"] for s in streams] == ["h264", "pcm_s16le"]
    assert "No changes" in ws.run("plan", now=datetime(2025, 1, 1, tzinfo=UTC)).out
