"""The demo's generated photos behave like a camera's: JPEGs saved at
quality 92-95 with real detail, which every compression tier of the demo's
desired state makes smaller (real Pillow, through the tool's own encoder);
and their capture dates reach every tier."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from providers.icloud.emulator import camera
from providers.icloud.emulator.seed import generate_library, image_date
from reconciler.config import DEFAULT_TIERS
from reconciler.media.encode import ENCODED, encode_file

#: libjpeg's standard luminance quantization table (ITU T.81 Annex K), which
#: it scales by the quality setting; cameras' own tables are close to it.
# fmt: off
IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
# fmt: on


def _ijg_table(quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sorted(min(255, max(1, (v * scale + 50) // 100)) for v in IJG_LUMINANCE)


def estimate_quality(img: Image.Image) -> tuple[int, int]:
    """The quality whose scaled standard table is nearest the file's
    luminance table, and how far off it is (0: exactly libjpeg's table).
    Sorted, so the table's storage order (zigzag or not) does not matter."""
    assert isinstance(img, Image.Image) and img.format == "JPEG"
    table = sorted(img.quantization[0])  # type: ignore[attr-defined]
    return min(
        (
            (q, sum(abs(a - b) for a, b in zip(_ijg_table(q), table, strict=True)))
            for q in range(1, 101)
        ),
        key=lambda qd: qd[1],
    )


def test_the_estimate_reads_pillows_own_tables(tmp_path: Path) -> None:
    img = Image.new("RGB", (16, 16))
    for q in (50, 65, 75, 85, 92, 95):
        img.save(tmp_path / "q.jpg", quality=q)
        with Image.open(tmp_path / "q.jpg") as back:
            assert estimate_quality(back) == (q, 0)


def test_demo_photos_are_camera_like_and_every_tier_makes_them_smaller(tmp_path: Path) -> None:
    # count=4: four JPEGs (the awkward extras, HEICs and videos, come from 11 on).
    files = generate_library(tmp_path / "lib", count=4, photo_size=camera.PHOTO_SIZE)
    assert len(files) == 4
    for path in files:
        with Image.open(path) as img:
            img.load()
            quality, off = estimate_quality(img)
            pixels = img.size[0] * img.size[1]
        assert (img.size, off) == (camera.PHOTO_SIZE, 0)
        assert 92 <= quality <= 95, path
        # Detail: a flat or smooth picture at this quality takes well under
        # one bit per pixel; a camera's photo takes a few.
        assert path.stat().st_size * 8 / pixels > 1.5, path

    original = files[1]
    size = original.stat().st_size
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    saved = {}
    for tier in DEFAULT_TIERS:  # the demo's desired state sets no tiers of its own
        out = tmp_path / f"{tier.name}.jpg"
        result = encode_file(
            original,
            out,
            quality=tier.jpeg_quality,
            crf=None,
            original_sha256=sha,
            tier=tier.name,
            replaces_size=size,
        )
        assert result.status == ENCODED, result.reason
        assert out.stat().st_size == result.size < size
        saved[tier.name] = 1 - result.size / size
    # Each tier older than the last saves more.
    assert list(saved.values()) == sorted(saved.values())
    assert saved["recent"] > 0.1, saved


def test_capture_dates_reach_every_tier(tmp_path: Path) -> None:
    # Tiny photos: dates only (count=10 writes JPEGs alone, one undated).
    files = generate_library(tmp_path / "lib", count=10, years=5)
    now = datetime.now(UTC)
    ages = [now - d for d in map(image_date, files) if d is not None]
    assert len(ages) == 9
    assert all(timedelta(0) <= age <= timedelta(days=5 * 365) for age in ages)
    tiers = set()
    for age in ages:
        tier = next(
            t for t in DEFAULT_TIERS if t.max_age_days is None or age.days <= t.max_age_days
        )
        tiers.add(tier.name)
    assert tiers == {t.name for t in DEFAULT_TIERS}
