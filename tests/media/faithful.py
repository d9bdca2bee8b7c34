"""The independent check: an encoded file compared with its original by outside
readers — ffprobe for clips, pillow-heif and Pillow for stills — never by the
code under test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image, ImageChops, ImageStat


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
    )
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def _streams(path: Path) -> list[dict[str, Any]]:
    streams: list[dict[str, Any]] = ffprobe(path, "-show_streams")["streams"]
    return streams


def frame_times(path: Path) -> list[str]:
    """Presentation times of every video frame, in order (``pts_time`` of each packet)."""
    info = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time")
    return sorted((p["pts_time"] for p in info["packets"]), key=float)


def first_frame_side_data(path: Path) -> list[dict[str, Any]]:
    info = ffprobe(
        path, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries", "frame"
    )
    sides: list[dict[str, Any]] = info["frames"][0].get("side_data_list", [])
    return [s for s in sides if "User Data" not in s.get("side_data_type", "")]


def _rotation(stream: dict[str, Any]) -> int | None:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(side["rotation"])
    return None


_COLOUR = ("pix_fmt", "color_transfer", "color_primaries", "color_space", "color_range")
_AUDIO = ("codec_name", "channels", "sample_rate", "nb_frames")


def assert_video_faithful(original: Path, encoded: Path) -> None:
    before, after = _streams(original), _streams(encoded)
    kinds = [s["codec_type"] for s in before if s["codec_type"] in ("video", "audio")]
    assert [s["codec_type"] for s in after] == kinds
    v0 = next(s for s in before if s["codec_type"] == "video")
    v1 = next(s for s in after if s["codec_type"] == "video")
    for key in (*_COLOUR, "width", "height"):
        assert v1.get(key) == v0.get(key), f"{key}: {v1.get(key)} != {v0.get(key)}"
    assert _rotation(v1) == _rotation(v0)
    # Same frames at the same times: nothing duplicated, nothing dropped.
    assert frame_times(encoded) == frame_times(original)
    a0 = [s for s in before if s["codec_type"] == "audio"]
    a1 = [s for s in after if s["codec_type"] == "audio"]
    assert [[s.get(k) for k in _AUDIO] for s in a1] == [[s.get(k) for k in _AUDIO] for s in a0]
    assert first_frame_side_data(encoded) == first_frame_side_data(original)


def _heif_facts(path: Path) -> list[tuple[object, ...]]:
    heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False, hdr_to_16bit=False)
    return [
        (
            im.mode,
            im.info["bit_depth"],
            im.info.get("icc_profile"),
            im.info.get("exif"),
            im.info.get("nclx_profile") is not None,
            sorted(im.info.get("aux") or {}),
            len(im.info.get("depth_images") or []),
        )
        for im in heif
    ]


def assert_heif_faithful(original: Path, encoded: Path) -> None:
    """Same number of images, and each with its mode, bit depth, ICC, EXIF and
    auxiliary images; the displayed size of the primary image."""
    assert _heif_facts(encoded) == _heif_facts(original)
    a, b = pillow_heif.open_heif(original), pillow_heif.open_heif(encoded)
    assert b[b.primary_index].size == a[a.primary_index].size
    # As displayed (libheif applies the rotation): the same picture.
    assert_looks_alike(a[a.primary_index].to_pillow(), b[b.primary_index].to_pillow())


def assert_looks_alike(a: Image.Image, b: Image.Image) -> None:
    """The same picture, the same way up: thumbnails differ by little on average
    (a turned or mirrored picture, or wrong colours, differ by a lot)."""
    size = (24, 24)
    ta, tb = a.convert("RGB").resize(size), b.convert("RGB").resize(size)
    diff = ImageChops.difference(ta, tb).convert("L")
    mean = ImageStat.Stat(diff).mean[0]
    assert mean < 5, f"pictures differ: mean difference {mean:.1f} of 255"


def jpeg_segments(path: Path) -> list[tuple[str, bytes]]:
    """Pillow's list of APPn segments (marker name, payload), XMP excepted
    (it gains our lineage)."""
    with Image.open(path) as im:
        applist: list[tuple[str, bytes]] = list(getattr(im, "applist", []))
    return [(m, p) for m, p in applist if not p.startswith(b"http://ns.adobe.com/xap/1.0/")]


def assert_jpeg_faithful(original: Path, encoded: Path) -> None:
    """Same size, mode, ICC, EXIF, and every APPn segment byte for byte
    (Adobe's colour transform aside, which must say YCbCr for YCbCr data)."""
    with Image.open(original) as a, Image.open(encoded) as b:
        assert (b.format, b.size, b.mode) == ("JPEG", a.size, a.mode)
        assert b.info.get("icc_profile") == a.info.get("icc_profile")
        assert b.info.get("exif") == a.info.get("exif")
        assert b.info.get("comment") == a.info.get("comment")
        assert getattr(b, "n_frames", 1) == getattr(a, "n_frames", 1) == 1

    with Image.open(original) as a, Image.open(encoded) as b:
        assert_looks_alike(a, b)

    def plain(segments: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(m, p[:11] if p.startswith(b"Adobe") else p) for m, p in segments]

    assert plain(jpeg_segments(encoded)) == plain(jpeg_segments(original))
