"""Videos: re-encode with ffmpeg (H.264 or HEVC at a CRF), metadata carried over.

The container follows the original's extension (``.mov`` stays QuickTime,
``.mp4``/``.m4v`` stay MP4); an original fetched to a temporary file without
one goes by the output's (the library file's) extension, else by its content
(a QuickTime ``ftyp`` brand, or none). A missing ffmpeg fails the encode for
this run only (``EncodeTimeout``): the tool's own set-up is no bad input.
Audio is copied untouched. Metadata: ``-map_metadata 0`` carries the
container tags (``creation_time``, ``com.apple.quicktime.location.ISO6709``,
``com.apple.quicktime.creationdate``…) and ``use_metadata_tags`` makes the
muxer write QuickTime keys it has no atom for, ours included.
``-noautorotate`` keeps the stored frames and the rotation display matrix,
so a phone's portrait clip is not turned twice.

Frame timing is kept: ``-fps_mode passthrough`` with the input's time base
passes every frame with its own timestamp, so a variable-frame-rate clip is
not padded to a constant rate with duplicated frames; the decode checks of
an original and of an output hear only the decoders, so two frames closer
than the nominal rate are no decode error (``_decode_only``). The colour tags
(primaries, transfer, matrix, range) are copied. A clip deeper than 8 bits
or in HDR (HLG, PQ) is encoded with x265 at 10 or 12 bits whatever the
configured codec, with HDR10's mastering display and light levels passed to
x265; Dolby Vision, clips with more than one video track and clips with
an alpha channel (QuickTime Animation in ARGB, ProRes 4444 with alpha) are
kept as they are (KeepOriginal), as a re-encode would drop the RPU, the
track or the transparency.

XMP (an MP4's top-level ``uuid`` box, QuickTime's ``moov/udta/XMP_``) and
the user-data items ffmpeg has no tag for (``©des``, ``dscp``…) are copied
box for box into the output after the encode (``isobmff``). Not carried:
subtitle and data tracks (a drone's flight log, Apple's timed metadata) and
attached (cover) pictures, which the MP4 muxer often refuses or drops,
other top-level boxes, and the items of an item list (``udta/meta/ilst``)
ffmpeg does not read. What the output lacks of them (ffmpeg writes a
timecode track and chapters anew, so those are not lost) is named in the
``dropped`` lineage tag, written after the encode, and in the result's
reason. Bytes after the last box (a Samsung trailer) cannot be carried: such
a clip is kept as it is, as a HEIC would be. A ``.mp4`` whose sound the MP4
muxer cannot hold (a camera's PCM) is written as QuickTime, which carries it
as it is; a clip without video, or one ffmpeg cannot write back although it
decodes cleanly, is kept as it is. ffmpeg gets a bounded number of threads
and a timeout scaled by the clip's duration and pixel rate; ffprobe a fixed
one, and only a regular file (a FIFO put in a clip's place would hold it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs

from reconciler.errors import MediaError
from reconciler.hashing import open_to_read
from reconciler.media import isobmff
from reconciler.media.files import writing
from reconciler.media.kinds import KeepOriginal
from reconciler.media.lineage import VIDEO_DROPPED_KEY, parse_video_lineage, video_lineage_tags
from reconciler.media.metadata import is_placeholder_date

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
PRESET = "medium"

_CONTAINERS = {".mov": "mov", ".mp4": "mp4", ".m4v": "mp4"}
_CODECS = ("libx264", "libx265")
# Audio codecs ffmpeg's MP4 muxer writes (no PCM before ffmpeg 6.1); an
# ``.mp4`` with any other goes to the QuickTime muxer, which copies them all.
_MP4_AUDIO = frozenset(
    {"aac", "mp3", "mp2", "mp1", "ac3", "eac3", "alac", "flac", "opus", "dts", "truehd"}
)
# A re-encode's video must last as long as the original's video track
# declares; less means the input ended early (a truncated download with its
# index at the front).
_DURATION_SLACK_S = 0.5
_DURATION_SLACK_RATIO = 0.02
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
_DOLBY_TAGS = frozenset({"dvh1", "dvhe", "dva1", "dvav"})
# Pixel formats with transparency (libavutil's alpha flag: ``argb`` of
# QuickTime Animation, ``yuva444p10le`` of ProRes 4444, a palette's ``pal8``),
# which the 4:2:0 and 4:4:4 YUV the encoders write here cannot hold.
_ALPHA_PIX_FMT = re.compile(r"^(yuva|ya|gbrap|ayuv|vuya|pal8)|rgba|bgra|argb|abgr")
# Pixel formats x265 writes as they are; other deep ones become 4:2:0 10-bit.
_X265_DEEP = frozenset(
    f"yuv{chroma}p{depth}le" for chroma in ("420", "422", "444") for depth in (10, 12)
)
# ffmpeg's colour options and the ffprobe fields they copy.
_COLOUR = (
    ("-color_primaries", "color_primaries"),
    ("-color_trc", "color_transfer"),
    ("-colorspace", "color_space"),
    ("-color_range", "color_range"),
)
# Timeout: a fixed allowance plus this much per second of 1080p30 video, so
# a hung ffmpeg is stopped but a long 4K clip on one slow core is not.
_TIMEOUT_BASE_S = 120.0
_TIMEOUT_PER_SECOND = 40.0
_REFERENCE_PIXEL_RATE = 1920 * 1080 * 30


class EncodeTimeout(MediaError):
    """ffmpeg ran past its time limit, or the machine stopped it (a signal,
    no memory, no disk space): the machine, not the input, may be at fault,
    and the next run tries again."""


#: What ffmpeg says when the machine, not the file, failed it (the output's
#: disk full or read-only, the output folder not writable: the original was
#: read already).
_MACHINE_FAULTS = (
    b"No space left on device",
    b"Cannot allocate memory",
    b"Disk quota exceeded",
    b"Read-only file system",
    b"Permission denied",
)


@attrs.frozen
class EncodedVideo:
    """What ``encode_video`` made: the original's probe, the codec used, and
    what of the original the output lacks ("" when nothing)."""

    original: dict[str, Any]
    codec: str
    dropped: str = ""


def container_for(src: Path, dst: Path, name: Path | None = None) -> str:
    """The ffmpeg muxer for a clip: by the original's extension (its
    ``name``'s, when ``src`` is a path that reads it by its descriptor),
    else by the output's (an original fetched to a temporary file has none;
    the output is named as the library file), else by the content."""
    for path in (name or src, dst):
        container = _CONTAINERS.get(path.suffix.lower())
        if container is not None:
            return container
    # An ftyp's major brand 'qt  ' is QuickTime; a file without one is the
    # QuickTime of before ftyp (kinds.sniff_kind let only these through).
    with open(open_to_read(src), "rb") as f:
        head = f.read(12)
    return "mp4" if head[4:8] == b"ftyp" and head[8:12] != b"qt  " else "mov"


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file (format and streams), or MediaError when it
    cannot be read: not a regular file (a FIFO would hold ffprobe for ever),
    not a video, or ffprobe still reading after ``_TIMEOUT_BASE_S``."""
    try:
        os.close(open_to_read(path))
    except OSError as e:
        raise MediaError(f"{path}: cannot read video: {e.strerror or e}") from e
    args = [FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    done = _run(args, _TIMEOUT_BASE_S, path, FFPROBE)
    if done.returncode != 0:
        raise MediaError(f"{path}: cannot read video: {_summary(done.stderr, path)}")
    try:
        info = json.loads(done.stdout)
    except ValueError as e:
        raise MediaError(f"{path}: cannot read video: {FFPROBE} said no JSON ({e})") from e
    if not isinstance(info, dict):
        raise MediaError(f"{path}: cannot read video: {FFPROBE} said no JSON object")
    return info


def _run(args: list[str], limit: float, src: Path, tool: str) -> subprocess.CompletedProcess[bytes]:
    """``args`` run to their end within ``limit`` s, output captured, no
    stdin; EncodeTimeout when still running then (it is stopped)."""
    try:
        return subprocess.run(
            args, capture_output=True, check=False, timeout=limit, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as e:
        # The machine's set-up, not the clip: never settled as bad input.
        raise EncodeTimeout(
            f"{args[0]} not found: install ffmpeg to encode videos (tried again next run)"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise EncodeTimeout(
            f"{src}: {tool} did not finish within {limit:.0f} s; it was stopped "
            "(a busy machine? it is tried again next run)"
        ) from e


def video_stream(info: dict[str, Any], path: Path) -> dict[str, Any]:
    for stream in info.get("streams", []):
        if _is_video(stream):
            return dict(stream)
    raise MediaError(f"{path}: no video stream")


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def picture_duration(info: dict[str, Any], stream: dict[str, Any]) -> float | None:
    """How long the video track ``stream`` of a clip lasts, from its first
    frame (a timeline starting late, as an AVCHD clip re-wrapped keeps it,
    is not counted); the container's span, its start taken off, when the
    track declares none. Not the container's duration: a subtitle track or
    a flight log may outlast the picture."""
    own = _seconds(stream.get("duration"))
    if own is not None:
        return own
    fmt = info.get("format", {})
    span = _seconds(fmt.get("duration"))
    if span is None:
        return None
    return span - max(0.0, _seconds(fmt.get("start_time")) or 0.0)


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
    threads: int = 0,
    name: Path | None = None,
) -> EncodedVideo:
    """Encode ``src`` into ``dst``; return the original's probe, the codec
    used and what the output lacks. ``name``: the original's own name, when
    ``src`` is a path that reads it by its descriptor.

    Raises MediaError when the original cannot be read or decoded to its end
    (EncodeTimeout when ffmpeg overran or is missing), KeepOriginal when a
    re-encode could not carry it faithfully.
    """
    if codec not in _CODECS:
        raise ValueError(f"video_codec must be one of {_CODECS}, got {codec!r}")
    info = probe(src)
    container = container_for(src, dst, name)
    _check_has_video(info, src)
    stream = video_stream(info, src)
    container = _muxer_for(container, info)
    videos = [s for s in info.get("streams", []) if _is_video(s)]
    if len(videos) > 1:
        raise KeepOriginal(f"it has {len(videos)} video tracks; a re-encode keeps only one")
    if _is_dolby_vision(stream):
        raise KeepOriginal("it is Dolby Vision; a re-encode would drop its dynamic metadata")
    _check_opaque(stream)
    pix_fmt, deep_args = _depth_and_hdr(src, stream)
    if deep_args is not None:
        codec = "libx265"  # x264 here is 8-bit only: HDR and 10-bit go to HEVC
    # What ffmpeg does not carry of the container's metadata (XMP, QuickTime
    # user data it has no tag for) is copied into its output afterwards;
    # what cannot be is named in ``dropped`` with the tracks left out.
    extras = isobmff.read_movie_extras(src)
    if extras.trailing is not None:
        raise KeepOriginal(extras.trailing)
    thread_args = ["-threads", str(threads)] if threads else []
    args = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y", *thread_args]
    args += ["-noautorotate", "-i", str(src)]
    # The video track by its index: ``0:v:0`` would be a cover picture
    # stored before it.
    args += ["-map", f"0:{stream.get('index', 'v:0')}", "-map", "0:a?", "-c:a", "copy"]
    # Every frame with its own timestamp, in the input's time base: a
    # variable frame rate stays variable.
    args += ["-fps_mode", "passthrough", "-enc_time_base", "-1"]
    args += ["-c:v", codec, "-crf", str(crf), "-preset", PRESET, *thread_args]
    args += ["-pix_fmt", pix_fmt]
    for option, field in _COLOUR:
        value = stream.get(field)
        if value not in (None, "", "unknown", "reserved") and not (
            field == "color_space" and value == "gbr"
        ):
            args += [option, str(value)]
    if codec == "libx265":
        x265 = ["log-level=error", *(deep_args or [])]
        if threads:
            x265 += [f"pools={threads}", f"frame-threads={min(threads, 4)}"]
        # hvc1 is the sample entry Apple players require.
        args += ["-tag:v", "hvc1", "-x265-params", ":".join(x265)]
    args += ["-map_metadata", "0"]
    # ``dropped`` is written after the encode, from what the output holds;
    # one the original carries (a library copy imported as an original) is
    # not its own.
    tags = {**video_lineage_tags(original_sha256, tier), VIDEO_DROPPED_KEY: ""}
    for key, value in tags.items():
        args += ["-metadata", f"{key}={value}"]
    args += ["-movflags", "+faststart+use_metadata_tags", "-f", container, str(dst)]
    # Built as an argument list rather than with ffmpeg-python's graph API:
    # repeated -map/-metadata options in a fixed order are what this needs.
    limit = timeout_for(info, stream)
    done = _run(args, limit, src, "ffmpeg")
    if done.returncode < 0 or any(fault in done.stderr for fault in _MACHINE_FAULTS):
        why = _summary(done.stderr, src) or f"signal {-done.returncode}"
        raise EncodeTimeout(f"{src}: ffmpeg was stopped ({why}); it is tried again next run")
    if done.returncode != 0:
        if _decodes_cleanly(src, stream, limit):
            # The original plays: it is the re-encode (a muxer, an encoder
            # option) that cannot be made, not bad input.
            raise KeepOriginal(
                f"ffmpeg cannot write it back ({_summary(done.stderr, src)}); the original "
                "decodes without error"
            )
        raise MediaError(f"{src}: cannot encode video: {_summary(done.stderr, src)}")
    if done.stderr.strip():
        # -v error: anything said is a decode error, even when ffmpeg went on.
        raise MediaError(f"{src}: decoding reported errors: {_summary(done.stderr, src)}")
    dropped = _listed([*_left_out_tracks(info, stream, dst), *extras.uncarried])
    try:
        with writing(dst):  # a full disk names the output, not nothing
            isobmff.write_movie_extras(dst, extras, {VIDEO_DROPPED_KEY: dropped} if dropped else {})
    except MediaError as e:
        # The output, not the original, is at fault: keep the original whole.
        raise KeepOriginal(f"its XMP and user data cannot be written back ({e})") from e
    return EncodedVideo(original=info, codec=codec, dropped=dropped)


def _check_opaque(stream: dict[str, Any]) -> None:
    """KeepOriginal for a clip whose pixels hold transparency: H.264 and HEVC
    as encoded here have no alpha, and the clip would lose it without a word."""
    pix_fmt = str(stream.get("pix_fmt") or "")
    if _ALPHA_PIX_FMT.search(pix_fmt):
        raise KeepOriginal(
            f"its pictures have an alpha channel ({pix_fmt}); a re-encode would drop "
            "the transparency"
        )


def _check_has_video(info: dict[str, Any], src: Path) -> None:
    """KeepOriginal for a file with tracks but no video (a QuickTime sound
    recording, only cover art); MediaError for one without any track."""
    streams = info.get("streams", [])
    if any(_is_video(s) for s in streams):
        return
    if not streams:
        raise MediaError(f"{src}: no video or audio stream")
    kinds = sorted({str(s.get("codec_type") or "unknown") for s in streams})
    raise KeepOriginal(
        f"it holds no video (only {', '.join(kinds)}); there is nothing to re-encode"
    )


def _muxer_for(container: str, info: dict[str, Any]) -> str:
    """The muxer that carries the original's audio as it is: ``mov`` for a
    ``.mp4`` whose sound the MP4 muxer cannot hold (a camera's PCM). QuickTime
    is the format MP4 grew from, with the same boxes, so the sound is copied
    rather than converted (PCM to ALAC would change its codec, and not every
    PCM fits ALAC)."""
    audio = {
        str(s.get("codec_name")) for s in info.get("streams", []) if s.get("codec_type") == "audio"
    }
    if container == "mp4" and audio - _MP4_AUDIO:
        return "mov"
    return container


def _decodes_cleanly(src: Path, stream: dict[str, Any], limit: float) -> bool:
    """Whether ffmpeg decodes the original's video and audio to the end without a complaint."""
    args = _decode_only(src, f"0:{stream.get('index', 'v:0')}", "0:a?")
    try:
        done = subprocess.run(args, capture_output=True, check=False, timeout=limit)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and not done.stderr.strip()


def _decode_only(src: Path, *maps: str) -> list[str]:
    """ffmpeg decoding the streams ``maps`` of ``src`` to nothing, so that
    what it says at ``-v error`` is what the demuxer and decoders found.

    The null sink is a muxer like any other and checks the timestamps it
    gets, rounded to one tick per frame at the clip's nominal rate: two
    frames of a phone's variable-frame-rate clip (~30 fps, a few ms of
    jitter) can round to one tick, and it complains ("non monotonically
    increasing dts") of a clip that decodes whole. So the video's
    timestamps are dropped and the audio's counted afresh from its samples:
    the sink has nothing to check, and a truncated or corrupt stream is
    still named by its decoder."""
    args = [FFMPEG, "-nostdin", "-v", "error", "-i", str(src)]
    for stream in maps:
        args += ["-map", stream]
    return [*args, "-fps_mode", "drop", "-af", "asetpts=N/SR/TB", "-f", "null", "-"]


def timeout_for(info: dict[str, Any], stream: dict[str, Any]) -> float:
    """Seconds ffmpeg may take for this clip: scaled by duration and pixel rate."""
    seconds = duration(info) or 600.0
    try:
        num, _, den = str(stream.get("avg_frame_rate") or "30/1").partition("/")
        fps = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        fps = 30.0
    pixels = int(stream.get("width") or 1920) * int(stream.get("height") or 1080)
    scale = max(1.0, pixels * max(fps, 1.0) / _REFERENCE_PIXEL_RATE)
    return _TIMEOUT_BASE_S + _TIMEOUT_PER_SECOND * seconds * scale


def _is_video(stream: dict[str, Any]) -> bool:
    return bool(
        stream.get("codec_type") == "video"
        and stream.get("disposition", {}).get("attached_pic") != 1
    )


def _is_dolby_vision(stream: dict[str, Any]) -> bool:
    if str(stream.get("codec_tag_string", "")).lower() in _DOLBY_TAGS:
        return True
    return any(
        "DOVI" in str(side.get("side_data_type", "")) for side in stream.get("side_data_list", [])
    )


#: The ``dropped`` tag is one line of a run's output too: a few words, not
#: a list of thousands of boxes.
DROPPED_MAX = 2000


def _listed(names: list[str]) -> str:
    """``names`` joined for the ``dropped`` tag, at most ``DROPPED_MAX``
    characters: the rest counted."""
    out = ""
    for i, name in enumerate(names):
        joined = f"{out}, {name}" if out else name
        if len(joined) > DROPPED_MAX:
            return f"{out}, and {len(names) - i} more" if out else f"{len(names)} items"
        out = joined
    return out


def _left_out_tracks(info: dict[str, Any], video: dict[str, Any], dst: Path) -> list[str]:
    """The original's tracks that the output ``dst`` lacks (subtitles, data,
    cover pictures), for lineage: only its video and audio are mapped, but
    ffmpeg writes a timecode track and a chapter track anew, so what the
    output holds is looked at before anything is called dropped."""
    others = [
        s
        for s in info.get("streams", [])
        if s.get("codec_type") != "audio" and s.get("index") != video.get("index")
    ]
    if not others:
        return []
    try:
        written = probe(dst).get("streams", [])
    except EncodeTimeout:
        raise
    except MediaError:
        # The output, not the original, is at fault: nothing of it counts as
        # carried, and check_video refuses it.
        written = []
    carried = Counter(
        _track_kind(s) for s in written if s.get("codec_type") not in ("audio", "video")
    )
    names = []
    for s in others:
        if carried[_track_kind(s)] > 0:
            carried[_track_kind(s)] -= 1
            continue
        if s.get("codec_type") == "video":  # not the clip's own: an attached (cover) picture
            names.append(f"attached picture {s.get('index')} ({s.get('codec_name') or '?'})")
            continue
        tag = s.get("codec_tag_string") or s.get("codec_name") or "?"
        names.append(f"{s.get('codec_type')} track {s.get('index')} ({tag})")
    return names


def _track_kind(stream: dict[str, Any]) -> tuple[str, str]:
    return str(stream.get("codec_type")), str(stream.get("codec_tag_string"))


def _depth_and_hdr(src: Path, stream: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The output pixel format, and x265 parameters when the clip is deep or HDR
    (None: an ordinary 8-bit SDR clip, encoded with the configured codec)."""
    source = str(stream.get("pix_fmt", ""))
    deep = int(stream.get("bits_per_raw_sample") or 0) > 8 or "p10" in source or "p12" in source
    transfer = stream.get("color_transfer")
    if not deep and transfer not in _HDR_TRANSFERS:
        return "yuv420p", None
    pix_fmt = source if source in _X265_DEEP else "yuv420p10le"
    params: list[str] = []
    if transfer == "smpte2084":
        params = ["hdr10=1", *_hdr10_params(src)]
    return pix_fmt, params


def _hdr10_params(src: Path) -> list[str]:
    """x265's master-display and max-cll from the first frame's side data (this
    ffmpeg does not pass them to x265 itself)."""
    args = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"]
    args += ["-show_frames", "-of", "json", str(src)]
    done = _run(args, _TIMEOUT_BASE_S, src, FFPROBE)
    try:
        frames = json.loads(done.stdout or b"{}").get("frames", [])
    except ValueError:
        frames = []
    sides = [side for frame in frames for side in frame.get("side_data_list", [])]
    params = []
    for side in sides:
        kind = side.get("side_data_type", "")
        try:
            if kind == "Mastering display metadata":

                def xy(key: str, side: dict[str, Any] = side) -> str:
                    return str(round(Fraction(side[key]) * 50000))

                lum = (
                    round(Fraction(side["max_luminance"]) * 10000),
                    round(Fraction(side["min_luminance"]) * 10000),
                )
                params.append(
                    f"master-display=G({xy('green_x')},{xy('green_y')})"
                    f"B({xy('blue_x')},{xy('blue_y')})R({xy('red_x')},{xy('red_y')})"
                    f"WP({xy('white_point_x')},{xy('white_point_y')})L({lum[0]},{lum[1]})"
                )
            elif kind == "Content light level metadata":
                params.append(f"max-cll={int(side['max_content'])},{int(side['max_average'])}")
        except (KeyError, ValueError, ZeroDivisionError) as e:
            raise KeepOriginal(f"its HDR10 metadata cannot be read ({kind}: {e})") from e
    return params


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
    # Like with like: the pictures' span in both (the output holds neither
    # the subtitle track that may outlast them nor the original's late start).
    expected = picture_duration(original, in_stream)
    got = picture_duration(out, out_stream)
    if expected is not None:
        slack = max(_DURATION_SLACK_S, expected * _DURATION_SLACK_RATIO)
        if got is None or got < expected - slack:
            raise MediaError(
                f"{src}: truncated or corrupt: decoded {got or 0:.1f} s of {expected:.1f} s"
            )
    frames = (in_stream.get("nb_frames"), out_stream.get("nb_frames"))
    if all(str(n).isdigit() for n in frames) and frames[0] != frames[1]:
        # nb_frames counts the track's samples, also those an edit list
        # hides (a clip trimmed without re-encoding keeps the frames before
        # its cut to decode from): count what the original shows.
        shown = _shown_frames(src, in_stream, timeout_for(original, in_stream))
        if shown is None or str(shown) != str(frames[1]):
            said = f"shows {shown}" if shown is not None else f"has {frames[0]}"
            return f"output has {frames[1]} frames, original {said}"
    # Decoding the new file end to end is a fraction of the encode's cost and
    # is the only proof that the copy about to replace the library file plays.
    done = _run(_decode_only(dst, "0:v:0"), timeout_for(original, in_stream), dst, "ffmpeg")
    if done.returncode != 0 or done.stderr.strip():
        return f"output does not decode: {_summary(done.stderr, dst)}"
    return None


def _shown_frames(src: Path, stream: dict[str, Any], limit: float) -> int | None:
    """How many frames of its video track ``stream`` a clip shows, decoded with
    its edit list applied; None when ffprobe cannot tell."""
    select = str(stream.get("index", "v:0"))
    args = [FFPROBE, "-v", "error", "-select_streams", select, "-count_frames"]
    args += ["-show_entries", "stream=nb_read_frames", "-of", "json", str(src)]
    try:
        done = subprocess.run(args, capture_output=True, check=False, timeout=limit)
        streams = json.loads(done.stdout or b"{}").get("streams", [])
        return int(streams[0]["nb_read_frames"])
    except (OSError, subprocess.TimeoutExpired, ValueError, LookupError, TypeError):
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
    if is_placeholder_date(when):  # a camera's clock never set
        return None
    return when


def _tags(info: dict[str, Any]) -> dict[str, str]:
    tags = info.get("format", {}).get("tags", {})
    return {str(k): str(v) for k, v in tags.items()}


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
