"""What a clip's re-encode carries, leaves out, or cannot make: the tracks
beside its picture, its timeline, the bytes after its last box, its alpha
channel, and the original's name. Real clips made with ffmpeg, encoded by
``encode_file`` as the applier calls it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.media import encode_file, read_lineage
from reconciler.media.encode import EncodeResult
from reconciler.media.lineage import VIDEO_DROPPED_KEY
from reconciler.media.video import EncodeTimeout, probe

SHA = "cd" * 32
FFMPEG = ("ffmpeg", "-nostdin", "-v", "error", "-y")
H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "8")
CREATED = ("-metadata", "creation_time=2021-06-01T12:34:56Z")


def _picture(seconds: float, size: str = "160x120") -> list[str]:
    return ["-t", str(seconds), "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"]


def _sound(seconds: float) -> list[str]:
    return ["-t", str(seconds), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]


def _ffmpeg(*args: str) -> None:
    subprocess.run([*FFMPEG, *args], check=True)


def _encode(src: Path, dst: Path) -> EncodeResult:
    return encode_file(
        src, dst, quality=None, crf=30, original_sha256=SHA, tier="t", replaces_size=10**9
    )


def _tags(path: Path) -> dict[str, Any]:
    tags: dict[str, Any] = probe(path)["format"].get("tags", {})
    return tags


def _subtitled(path: Path, srt: str, seconds: float = 2) -> Path:
    """A clip with sound and a timed-text track (``tx3g`` in an MP4)."""
    subs = path.with_name("subs.srt")
    subs.write_text(srt)
    _ffmpeg(
        *_picture(seconds), *_sound(seconds), "-i", str(subs),
        *("-map", "0", "-map", "1", "-map", "2"),
        *H264, "-c:a", "aac", "-c:s", "mov_text", *CREATED, str(path),
    )  # fmt: skip
    return path


# ---------------------------------------------------------------- what is compared


def test_a_subtitle_track_outlasting_the_picture_is_no_truncation(tmp_path: Path) -> None:
    """A 2 s clip whose last caption lasts until 8 s is whole: the file's
    duration is the caption's. Compared with it, the encode (2 s of
    picture) was taken for a truncated original, bad input for ever."""
    srt = "1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:05,000 --> 00:00:08,000\nworld\n"
    src = _subtitled(tmp_path / "VID_1.MP4", srt)
    assert float(probe(src)["format"]["duration"]) == 8.0

    result = _encode(src, tmp_path / ".reconcile-tmp-1.MP4")
    assert result.status == "encoded", result.reason
    assert read_lineage(tmp_path / ".reconcile-tmp-1.MP4") == (SHA, "t")


def test_a_timeline_starting_late_is_no_truncation(tmp_path: Path) -> None:
    """A clip copied with its first timestamp kept (an AVCHD ``.MTS``
    re-wrapped into MP4 starts at 1.4 s, an empty edit before it): 4 s
    of picture in a file of 5.4 s, all of it carried."""
    src = tmp_path / "00001.MP4"
    _ffmpeg(
        *_picture(4), *_sound(4), *H264, "-c:a", "aac",
        "-output_ts_offset", "1.4", *CREATED, str(src),
    )  # fmt: skip
    assert float(probe(src)["format"]["duration"]) == pytest.approx(5.4)

    dst = tmp_path / ".reconcile-tmp-2.MP4"
    result = _encode(src, dst)
    assert result.status == "encoded", result.reason
    video = next(s for s in probe(dst)["streams"] if s["codec_type"] == "video")
    assert float(video["duration"]) == pytest.approx(4.0, abs=0.1)


# ---------------------------------------------------------------- what is left out


def test_what_an_encode_leaves_out_is_said_in_its_result(tmp_path: Path) -> None:
    """A DJI drone keeps its flight log (position, altitude) as a subtitle
    track. The encode keeps picture and sound only: the result's reason,
    which apply prints, names the track, as the file's own tag does."""
    srt = "".join(
        f"{i + 1}\n00:00:0{i},000 --> 00:00:0{i + 1},000\nGPS(8.54{i},47.37{i},120) H 88.{i}\n\n"
        for i in range(2)
    )
    src = _subtitled(tmp_path / "DJI_0001.MP4", srt)
    dst = tmp_path / ".reconcile-tmp-3.MP4"

    result = _encode(src, dst)
    assert result.status == "encoded", result.reason
    assert result.reason.endswith("(crf 30, libx264); left out: subtitle track 2 (tx3g)")
    assert [s["codec_type"] for s in probe(dst)["streams"]] == ["video", "audio"]
    assert _tags(dst)[VIDEO_DROPPED_KEY] == "subtitle track 2 (tx3g)"


def test_nothing_left_out_adds_nothing_to_the_result(mp4_original: Path, tmp_path: Path) -> None:
    result = _encode(mp4_original, tmp_path / ".reconcile-tmp-4.mp4")
    assert result.status == "encoded", result.reason
    assert "left out" not in result.reason
    assert VIDEO_DROPPED_KEY not in _tags(tmp_path / ".reconcile-tmp-4.mp4")


def test_tracks_the_output_holds_again_are_not_called_dropped(tmp_path: Path) -> None:
    """ffmpeg writes a timecode track and a chapter track anew from what it
    read of the original's: the file's record of what it lacks must be true."""
    timecoded = tmp_path / "C0001.MOV"
    _ffmpeg(*_picture(1), *H264, "-timecode", "01:00:00:00", *CREATED, str(timecoded))
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=one\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=two\n"
    )
    chaptered = tmp_path / "CHAP.MP4"
    _ffmpeg(
        *_picture(1), "-i", str(chapters), "-map", "0", "-map_chapters", "1",
        *H264, *CREATED, str(chaptered),
    )  # fmt: skip
    for src, kept in ((timecoded, "tmcd"), (chaptered, "text")):
        assert [s["codec_tag_string"] for s in probe(src)["streams"]] == ["avc1", kept]
        dst = tmp_path / f".reconcile-tmp-{src.name}"
        result = _encode(src, dst)
        assert result.status == "encoded", result.reason
        assert [s["codec_tag_string"] for s in probe(dst)["streams"]] == ["avc1", kept]
        assert VIDEO_DROPPED_KEY not in _tags(dst), src.name
        assert "left out" not in result.reason


# ---------------------------------------------------------------- kept as it is


SEF_TRAILER = (
    b"\x00\x00\x23\x08Image_UTC_Data1622550896000"
    b"SEFH\x6a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x23\x08\x2c\x00\x00\x00\x1b\x00\x00\x00SEFT"
)


@pytest.mark.parametrize(
    "tail",
    [SEF_TRAILER, b"\x00\x00\x10\x00uuid" + bytes(100)],
    ids=["samsung-trailer", "box-cut-short"],
)
def test_bytes_after_the_last_box_keep_the_clip_as_it_is(
    mp4_original: Path, tmp_path: Path, tail: bytes
) -> None:
    """Samsung phones append their SEF trailer after a clip's last box, as
    after a JPEG or HEIC; a download cut short in a box after the movie
    leaves part of it. ffmpeg reads neither and a re-encode would drop them
    without a name: the clip is kept, as a HEIC with a trailer is."""
    src = tmp_path / "20210601_123456.mp4"
    src.write_bytes(mp4_original.read_bytes() + tail)
    dst = tmp_path / ".reconcile-tmp-5.mp4"

    result = _encode(src, dst)
    assert (result.status, result.reason) == (
        "kept",
        f"kept as it is: {len(tail)} bytes follow its last box (a maker's trailer, or a box "
        "cut short); a re-encode would drop them",
    )
    assert not dst.exists()


@pytest.mark.parametrize(
    ("codec", "pix_fmt"),
    # ffmpeg reads a ProRes 4444 with alpha as 12-bit, whatever it was written from.
    [("qtrle", "argb"), ("prores_ks", "yuva444p12le")],
    ids=["animation", "prores-4444"],
)
def test_an_alpha_channel_keeps_the_clip_as_it_is(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    """A title or a screen capture with transparency, in QuickTime Animation
    or ProRes 4444: H.264 at 4:2:0 would drop the alpha without a word."""
    src = tmp_path / "TITLE.MOV"
    written = "yuva444p10le" if codec == "prores_ks" else pix_fmt
    _ffmpeg(*_picture(0.2), "-c:v", codec, "-pix_fmt", written, *CREATED, str(src))
    assert probe(src)["streams"][0]["pix_fmt"] == pix_fmt

    result = _encode(src, tmp_path / ".reconcile-tmp-6.MOV")
    assert (result.status, result.reason) == (
        "kept",
        f"kept as it is: its pictures have an alpha channel ({pix_fmt}); a re-encode would "
        "drop the transparency",
    )


# ---------------------------------------------------------------- the original's name


@pytest.mark.parametrize(
    ("dst_name", "brand"),
    [(".reconcile-tmp-7.MOV", b"qt  "), (".reconcile-tmp-7.mp4", b"isom"), ("out.tmp", b"qt  ")],
    ids=["library-mov", "library-mp4", "by-content"],
)
def test_an_original_fetched_without_its_name_is_encoded(
    mov_original: Path, tmp_path: Path, dst_name: str, brand: bytes
) -> None:
    """An original fetched from iCloud or a remote target lands in a file
    named ``original``: its missing extension was taken for an unsupported
    container, and the clip settled as bad input for ever. The container
    comes from the output's (library) name, else from the content."""
    src = tmp_path / "original"
    src.write_bytes(mov_original.read_bytes())
    dst = tmp_path / dst_name

    result = _encode(src, dst)
    assert result.status == "encoded", result.reason
    # The file type box the muxer wrote (its "major_brand" tag is the original's, copied).
    assert dst.read_bytes()[4:12] == b"ftyp" + brand


def test_a_missing_ffmpeg_is_tried_again_never_settled_as_bad_input(
    mov_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool's own set-up failing is no fault of the clip: the encode
    fails for this run (EncodeTimeout is what the applier retries)."""
    from reconciler.media import video

    monkeypatch.setattr(video, "FFMPEG", "ffmpeg-not-installed")
    with pytest.raises(EncodeTimeout, match="ffmpeg-not-installed not found: install ffmpeg"):
        _encode(mov_original, tmp_path / ".reconcile-tmp-8.MOV")
