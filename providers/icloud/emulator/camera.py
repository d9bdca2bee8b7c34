"""Camera-like pictures and clips for the seeded library (``make demo``).

A camera saves a photo at JPEG quality 92-95 (a phone: HEIC at a high
quality) and a video at a bitrate its encoder can afford in real time, so
re-encoding either for an age tier saves most of its bytes. The tiny, flat
pictures the tests seed with do not behave like that: re-encoded, they come
out no smaller, and a demo made of them never shows what compression saves.

These are generated, not photographed: a sky-to-ground gradient, soft
coloured light, objects with hard edges softened as a lens does, a mid-scale
texture and fine sensor grain, all drawn from the caller's ``random.Random``
so the same seed gives the same pixels. A clip is ffmpeg's moving test
pattern with a little temporal grain, encoded as a phone would (fast preset,
high bitrate).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw

#: The demo's photos: 2 MP, small enough that ~50 are made, re-encoded and
#: synced in seconds on two cores, large enough to behave like a camera's.
PHOTO_SIZE = (1600, 1200)
#: The qualities a camera or phone saves its JPEGs at.
JPEG_QUALITIES = (92, 93, 94, 95)
#: A phone's HEIC: high quality; the seed encodes with x265's fastest preset
#: (the bytes differ little from "fast" at this quality, the time a lot).
HEIC_QUALITY = 85
HEIC_PRESET = "ultrafast"
#: A phone's clip: 30 fps at about 3 Mbit/s for this size.
VIDEO_SIZE = (640, 360)
VIDEO_RATE = 30
_VIDEO_CRF = 18


def _field(rng: random.Random, size: tuple[int, int], cells: tuple[int, int]) -> Image.Image:
    """Smooth colour variation: a few random pixels blown up."""
    small = Image.frombytes("RGB", cells, rng.randbytes(cells[0] * cells[1] * 3))
    return small.resize(size, Image.Resampling.BILINEAR)


def _sky_and_ground(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    top = tuple(rng.randrange(90, 230) for _ in range(3))
    bottom = tuple(rng.randrange(20, 140) for _ in range(3))
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def photo(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A photo-like RGB picture of ``size`` with detail at every scale."""
    w, h = size
    # The scene is drawn at half size and scaled up: edges come out soft as
    # a lens draws them, and drawing costs a quarter.
    half = (max(2, w // 2), max(2, h // 2))
    scene = Image.blend(_sky_and_ground(rng, half), _field(rng, half, (5, 4)), 0.35)
    draw = ImageDraw.Draw(scene)
    for _ in range(rng.randrange(10, 20)):
        x0, y0 = rng.randrange(half[0]), rng.randrange(half[1] // 3, half[1])
        x1 = x0 + rng.randrange(8, max(9, half[0] // 4))
        y1 = y0 + rng.randrange(8, max(9, half[1] // 3))
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.randrange(3)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randrange(1, 4))
    # Foliage, fabric, gravel: texture a few pixels across.
    scene = Image.blend(scene, _field(rng, half, (max(1, w // 12), max(1, h // 12))), 0.18)
    full = scene.resize(size, Image.Resampling.BILINEAR)
    grain = Image.frombytes("L", size, rng.randbytes(w * h)).convert("RGB")
    return Image.blend(full, grain, 0.05)


def write_video(
    path: Path,
    when: datetime,
    seconds: float,
    seed: int,
    size: tuple[int, int] = VIDEO_SIZE,
    rate: int = VIDEO_RATE,
) -> None:
    """A phone-like clip: moving test pattern, temporal grain, high bitrate."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to generate videos (apt install ffmpeg)")
    w, h = size
    box = max(8, w // 8)
    subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=duration={seconds}:size={w}x{h}:rate={rate}",
            "-vf",
            # The box's place makes each clip's bytes its own; the grain
            # changes every frame, as a sensor's does.
            f"drawbox=x={seed % max(1, w - box)}:y={seed % max(1, h - box)}:w={box}:h={box}"
            ":color=red:t=fill,noise=alls=3:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            str(_VIDEO_CRF),
            "-pix_fmt",
            "yuv420p",
            "-metadata",
            f"creation_time={when.strftime('%Y-%m-%dT%H:%M:%S.000000Z')}",
            str(path),
        ],
        check=True,
    )
