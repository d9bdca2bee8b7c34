"""Videos: re-encode with ffmpeg (H.264 or HEVC at a CRF), metadata carried over.

The container follows the original's extension (``.mov`` stays QuickTime,
``.mp4``/``.m4v`` stay MP4) because the caller's temporary name says nothing.
Audio is copied untouched. Metadata: ``-map_metadata 0`` carries the
container tags (``creation_time``, ``com.apple.quicktime.location.ISO6709``,
``com.apple.quicktime.creationdate``…) and ``use_metadata_tags`` makes the
muxer write QuickTime keys it has no atom for, ours included.
``-noautorotate`` keeps the stored frames and the rotation display matrix,
so a phone's portrait clip is not turned twice.

Not carried: data tracks (Apple's timed metadata, timecode) and chapters,
which the MP4 muxer often refuses; HDR is not tone-mapped (libx264 output is
always 8-bit 4:2:0, the profile every player decodes).
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg

from reconciler.errors import MediaError
from reconciler.media.lineage import parse_video_lineage, video_lineage_tags

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
PRESET = "medium"

_CONTAINERS = {".mov": "mov", ".mp4": "mp4", ".m4v": "mp4"}
_CODECS = ("libx264", "libx265")
# A re-encode must cover the original's declared duration; less means the
# input ended early (a truncated download with its index at the front).
_DURATION_SLACK_S = 0.5
_DURATION_SLACK_RATIO = 0.02
# Epoch placeholders that cameras with an unset clock write.
_NO_DATE_YEARS = (1904, 1970)
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def container_for(path: Path) -> str:
    """The ffmpeg muxer for a video file, chosen by its extension."""
    try:
        return _CONTAINERS[path.suffix.lower()]
    except KeyError:
        raise MediaError(f"{path}: unsupported video extension {path.suffix!r}") from None


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file (format and streams), or MediaError when it cannot be read."""
    try:
        info: dict[str, Any] = ffmpeg.probe(str(path), cmd=FFPROBE)
    except ffmpeg.Error as e:
        raise MediaError(f"{path}: cannot read video: {_summary(e.stderr, path)}") from e
    except FileNotFoundError as e:
        raise MediaError(f"{FFPROBE} not found: install ffmpeg to encode videos") from e
    return info


def video_stream(info: dict[str, Any], path: Path) -> dict[str, Any]:
    for stream in info.get("streams", []):
        if (
            stream.get("codec_type") == "video"
            and stream.get("disposition", {}).get("attached_pic") != 1
        ):
            return dict(stream)
    raise MediaError(f"{path}: no video stream")


def duration(info: dict[str, Any]) -> float | None:
    """Declared duration in seconds (container first, then the video stream)."""
    values = [info.get("format", {}).get("duration")]
    values += [s.get("duration") for s in info.get("streams", []) if s.get("codec_type") == "video"]
    for value in values:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return None


def encode_video(
    src: Path,
    dst: Path,
    *,
    crf: int,
    codec: str,
    original_sha256: str,
    tier: str,
) -> dict[str, Any]:
    """Encode ``src`` into ``dst`` and return the original's probe.

    Raises MediaError when the original cannot be read or decoded to its end.
    """
    if codec not in _CODECS:
        raise ValueError(f"video_codec must be one of {_CODECS}, got {codec!r}")
    container = container_for(src)
    info = probe(src)
    stream = video_stream(info, src)
    args = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y"]
    args += ["-noautorotate", "-i", str(src)]
    args += ["-map", "0:v:0", "-map", "0:a?", "-c:a", "copy"]
    args += ["-c:v", codec, "-crf", str(crf), "-preset", PRESET]
    args += ["-pix_fmt", _pix_fmt(codec, str(stream.get("pix_fmt", "")))]
    if codec == "libx265":
        # hvc1 is the sample entry Apple players require; x265 is chatty on stderr.
        args += ["-tag:v", "hvc1", "-x265-params", "log-level=error"]
    args += ["-map_metadata", "0"]
    for key, value in video_lineage_tags(original_sha256, tier).items():
        args += ["-metadata", f"{key}={value}"]
    args += ["-movflags", "+faststart+use_metadata_tags", "-f", container, str(dst)]
    # Built as an argument list rather than with ffmpeg-python's graph API:
    # repeated -map/-metadata options in a fixed order are what this needs.
    try:
        done = subprocess.run(args, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise MediaError(f"{FFMPEG} not found: install ffmpeg to encode videos") from e
    if done.returncode != 0:
        raise MediaError(f"{src}: cannot encode video: {_summary(done.stderr, src)}")
    return info


def check_video(dst: Path, original: dict[str, Any], src: Path) -> str | None:
    """Why an encoded video must not be kept, or None when it is complete.

    A short output means the original stopped decoding early: that is bad
    input and raises MediaError, not a "not worth it".
    """
    try:
        out = probe(dst)
        out_stream = video_stream(out, dst)
    except MediaError as e:
        return f"output does not read back: {e}"
    in_stream = video_stream(original, src)
    in_dims = (in_stream.get("width"), in_stream.get("height"))
    out_dims = (out_stream.get("width"), out_stream.get("height"))
    if in_dims != out_dims:
        return f"output is {out_dims[0]}x{out_dims[1]}, original is {in_dims[0]}x{in_dims[1]}"
    expected, got = duration(original), duration(out)
    if expected is not None:
        slack = max(_DURATION_SLACK_S, expected * _DURATION_SLACK_RATIO)
        if got is None or got < expected - slack:
            raise MediaError(
                f"{src}: truncated or corrupt: decoded {got or 0:.1f} s of {expected:.1f} s"
            )
    # Decoding the new file end to end is a fraction of the encode's cost and
    # is the only proof that the copy about to replace the library file plays.
    decode = [FFMPEG, "-nostdin", "-v", "error", "-i", str(dst), "-map", "0:v:0", "-f", "null", "-"]
    done = subprocess.run(decode, capture_output=True, check=False)
    if done.returncode != 0 or done.stderr.strip():
        return f"output does not decode: {_summary(done.stderr, dst)}"
    return None


def read_video_lineage(path: Path) -> tuple[str, str] | None:
    return parse_video_lineage(_tags(probe(path)))


def read_video_capture_date(path: Path) -> datetime | None:
    """When a clip was shot: Apple's local-time creationdate, else creation_time (UTC)."""
    info = probe(path)
    tags = _tags(info)
    candidates = [tags.get("com.apple.quicktime.creationdate"), tags.get("creation_time")]
    candidates += [
        str(s.get("tags", {}).get("creation_time", ""))
        for s in info.get("streams", [])
        if s.get("codec_type") == "video"
    ]
    for text in candidates:
        when = _iso_datetime(text)
        if when is not None:
            return when
    return None


def _iso_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.year in _NO_DATE_YEARS and (when.month, when.day) == (1, 1):
        return None
    return when


def _tags(info: dict[str, Any]) -> dict[str, str]:
    tags = info.get("format", {}).get("tags", {})
    return {str(k): str(v) for k, v in tags.items()}


def _pix_fmt(codec: str, source: str) -> str:
    if codec == "libx265" and "10" in source:
        return "yuv420p10le"
    return "yuv420p"


def _summary(stderr: bytes | None, path: Path | None = None) -> str:
    """ffmpeg's last two distinct complaints on one line, without its "[demuxer @ 0x…]"
    and file-name prefixes (the caller names the file itself)."""
    seen: list[str] = []
    for raw in (stderr or b"").decode("utf-8", "replace").splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        if path is not None:
            line = line.removeprefix(f"{path}: ")
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen[-2:]) if seen else "no detail from ffmpeg"
