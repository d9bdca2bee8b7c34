"""A phone's variable-frame-rate clip: ~30 fps on a 1/600 s time base with a
few ms of jitter, as an iPhone writes it. Two of its frames can round to one
tick of 1/30 s, where ffmpeg's null sink complains ("non monotonically
increasing dts") of a clip every decoder reads whole: the decode checks must
not take that for a decode error, and the encode keeps every frame's time."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from reconciler.media import encode_file
from reconciler.media.encode import EncodeResult
from reconciler.media.video import check_video, probe

from .corpus import FFMPEG
from .faithful import ffprobe, frame_times

SHA = "9a" * 32
FRAMES = 45


def phone_clip(path: Path, *, audio: str = "aac", muxer: str = "mov") -> Path:
    """45 frames 17 and 23 ticks of 1/600 s apart in turn (28 and 38 ms,
    ~30 fps): frames 2k+1 and 2k+2 round to one tick of 1/30 s."""
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=192x128:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-frames:v", str(FRAMES), "-t", "1.5"),
            *("-vf", r"settb=1/600,setpts='20*N+9*gt(N\,0)+3*mod(N\,2)'"),
            *("-fps_mode", "passthrough", "-enc_time_base", "1:600"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-c:a", audio),
            *("-video_track_timescale", "600", "-f", muxer, str(path)),
        ],
        check=True,
    )
    return path


def _encode(src: Path, dst: Path) -> EncodeResult:
    return encode_file(
        src,
        dst,
        quality=None,
        crf=30,
        original_sha256=SHA,
        tier="t",
        replaces_size=10**9,
        threads=1,
    )


def _decode_dts(path: Path) -> list[int]:
    info = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=dts")
    return [int(p["dts"]) for p in info["packets"]]


def test_a_phone_vfr_clip_is_encoded_with_every_frame_at_its_own_time(tmp_path: Path) -> None:
    src = phone_clip(tmp_path / "IMG_0001.MOV")
    dst = tmp_path / "out.mov"
    result = _encode(src, dst)
    assert result.status == "encoded", result.reason
    # Every frame at the original's time: the rate stays variable.
    times = [float(t) for t in frame_times(dst)]
    assert times == pytest.approx([float(t) for t in frame_times(src)], abs=1e-6)
    assert len(times) == FRAMES
    assert {round(b - a, 4) for a, b in itertools.pairwise(times)} == {0.0283, 0.0383, 0.0533}
    # ...written with decode times that only go up, as a player needs.
    dts = _decode_dts(dst)
    assert all(a < b for a, b in itertools.pairwise(dts)), dts


def test_a_phone_vfr_clip_ffmpeg_cannot_write_back_is_kept_not_called_corrupt(
    tmp_path: Path,
) -> None:
    # Opus in a file named .mov: the QuickTime muxer refuses it, and the
    # original, decoded to check it is not bad input, plays whole.
    src = phone_clip(tmp_path / "IMG_0002.MOV", audio="libopus", muxer="mp4")
    before, dst = src.read_bytes(), tmp_path / "out.mov"
    result = _encode(src, dst)
    assert result.status == "kept", result
    assert result.reason.endswith("the original decodes without error"), result.reason
    assert src.read_bytes() == before
    assert not dst.exists()


def test_the_output_check_still_names_corrupt_frames(tmp_path: Path) -> None:
    # Index whole, frames damaged: only the decoder can tell.
    src = phone_clip(tmp_path / "IMG_0003.MOV")
    data = bytearray(src.read_bytes())
    start = data.find(b"mdat") + 3000
    for k in range(start, start + 4000, 7):
        data[k] = (data[k] * 31 + 17) % 256
    damaged = tmp_path / "damaged.mov"
    damaged.write_bytes(bytes(data))
    problem = check_video(damaged, probe(src), src)
    assert problem is not None
    assert problem.startswith("output does not decode: "), problem
    assert "dts" not in problem
