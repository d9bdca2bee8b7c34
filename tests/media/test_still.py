"""JPEG and HEIC re-encodes: tiers, metadata carried, lineage, not-worth, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import attrs
import pillow_heif
import pytest
from PIL import ExifTags, Image

from reconciler.errors import MediaError
from reconciler.media import encode_file, jpeg, read_capture_date, read_lineage
from reconciler.media.still import check_jpeg, encode_jpeg

from .conftest import (
    GPS_LATITUDE,
    TAKEN,
    XMP,
    XMP_MARKER,
    camera_exif,
    icc_srgb,
    make_heic,
    make_jpeg,
)

SHA = "ab" * 32


def _exif_of(im: Image.Image) -> Image.Exif:
    return im.getexif()


@pytest.mark.parametrize(("tier", "quality"), [("light", 85), ("medium", 75), ("heavy", 65)])
def test_jpeg_tier_keeps_metadata_and_stored_orientation(
    jpeg_original: Path, tmp_path: Path, tier: str, quality: int
) -> None:
    before = jpeg_original.read_bytes()
    dst = tmp_path / "out.tmp"
    result = encode_file(
        jpeg_original,
        dst,
        quality=quality,
        crf=None,
        original_sha256=SHA,
        tier=tier,
        replaces_size=len(before),
    )
    assert result.status == "encoded"
    assert result.size == dst.stat().st_size < len(before)
    assert result.reason.endswith(f"(q{quality})")
    assert jpeg_original.read_bytes() == before
    with Image.open(jpeg_original) as orig, Image.open(dst) as out:
        assert out.format == "JPEG"
        # Same stored size (480x320): pixels were not turned for display.
        assert out.size == orig.size == (480, 320)
        out.load()
        assert out.getpixel((5, 5))[0] > 200  # the red block is still top-left
        exif = _exif_of(out)
        assert exif[ExifTags.Base.Orientation] == 6
        assert exif[ExifTags.Base.Make] == "Apple"
        assert exif[ExifTags.Base.Model] == "iPhone 12"
        assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == TAKEN
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert tuple(float(v) for v in gps[ExifTags.GPS.GPSLatitude]) == GPS_LATITUDE
        assert out.info["icc_profile"] == icc_srgb()
        assert XMP_MARKER.encode() in out.info["xmp"]
        assert out.info["comment"] == orig.info["comment"] == b"shot on a phone"
        assert out.info["dpi"] == orig.info["dpi"]
    assert read_lineage(dst) == (SHA, tier)
    assert read_capture_date(dst) == read_capture_date(jpeg_original)


def test_lower_quality_gives_smaller_jpeg(jpeg_original: Path, tmp_path: Path) -> None:
    sizes = []
    for quality in (85, 75, 65):
        dst = tmp_path / f"q{quality}.tmp"
        encode_file(
            jpeg_original,
            dst,
            quality=quality,
            crf=None,
            original_sha256=SHA,
            tier="t",
            replaces_size=10**9,
        )
        sizes.append(dst.stat().st_size)
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes)) == 3


def test_jpeg_without_metadata_gets_a_fresh_xmp_for_lineage(tmp_path: Path) -> None:
    src = make_jpeg(tmp_path / "plain.jpg", metadata=False)
    dst = tmp_path / "plain.out"
    result = encode_file(
        src, dst, quality=70, crf=None, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded"
    assert read_lineage(dst) == (SHA, "t")
    assert read_lineage(src) is None
    assert read_capture_date(src) is None


def test_a_jpeg_whose_xmp_leaves_no_room_for_lineage_is_kept(tmp_path: Path) -> None:
    # 65504 bytes is all one JPEG XMP segment holds; leave too little room for
    # lineage, and no padding to give up for it. Encoded without lineage, a
    # lost state database would take the copy for an original.
    padding = b"x" * (65504 - len(XMP) - 50)
    full = XMP.replace(XMP_MARKER.encode(), XMP_MARKER.encode() + padding)
    src = make_jpeg(tmp_path / "full.jpg", xmp=full)
    before = src.read_bytes()
    dst = tmp_path / "full.out"
    result = encode_file(
        src, dst, quality=70, crf=None, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "kept"
    assert result.reason == (
        f"kept as it is: its XMP packet ({len(full)} bytes) leaves no room in its JPEG "
        "segment (at most 65504 bytes) for the lineage (which original the encoded copy "
        "was made from)"
    )
    assert not dst.exists()
    assert src.read_bytes() == before


def test_not_worth_when_output_is_not_smaller(tmp_path: Path) -> None:
    src = make_jpeg(tmp_path / "tiny.jpg", size=(64, 48), quality=20, metadata=False)
    before = src.read_bytes()
    dst = tmp_path / "tiny.out"
    result = encode_file(
        src, dst, quality=95, crf=None, original_sha256=SHA, tier="t", replaces_size=len(before)
    )
    assert result.status == "not_worth"
    assert result.size == 0
    assert result.reason.startswith("output not smaller than current file (")
    assert not dst.exists()
    assert src.read_bytes() == before


def test_not_worth_removes_a_stale_dst(jpeg_original: Path, tmp_path: Path) -> None:
    dst = tmp_path / "stale.tmp"
    dst.write_bytes(b"left over from a crashed run")
    result = encode_file(
        jpeg_original, dst, quality=85, crf=None, original_sha256=SHA, tier="t", replaces_size=1
    )
    assert result.status == "not_worth"
    assert not dst.exists()


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("truncated.jpg", lambda b: b[: len(b) // 2]),
        ("garbage.jpg", lambda b: b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50),
        ("empty.jpg", lambda b: b""),
        ("empty.heic", lambda b: b""),
    ],
)
def test_bad_still_raises_media_error_and_leaves_src(
    jpeg_original: Path, tmp_path: Path, name: str, damage: object
) -> None:
    assert callable(damage)
    src = tmp_path / name
    src.write_bytes(damage(jpeg_original.read_bytes()))
    before = src.read_bytes()
    dst = tmp_path / "out.tmp"
    with pytest.raises(MediaError, match=name) as caught:
        encode_file(
            src, dst, quality=75, crf=None, original_sha256=SHA, tier="t", replaces_size=10**9
        )
    assert "\n" not in str(caught.value)
    assert src.read_bytes() == before
    assert not dst.exists()


def test_corrupt_heic_raises_media_error(heic_original: Path, tmp_path: Path) -> None:
    data = heic_original.read_bytes()
    src = tmp_path / "broken.heic"
    src.write_bytes(data[:200] + b"\x00" * (len(data) - 200))
    before = src.read_bytes()
    with pytest.raises(MediaError, match=r"broken\.heic: cannot decode HEIC"):
        encode_file(
            src,
            tmp_path / "o",
            quality=50,
            crf=None,
            original_sha256=SHA,
            tier="t",
            replaces_size=10**9,
        )
    assert src.read_bytes() == before


@pytest.mark.parametrize(("tier", "quality"), [("light", 75), ("heavy", 50)])
def test_heic_tier_keeps_metadata_and_display_orientation(
    heic_original: Path, tmp_path: Path, tier: str, quality: int
) -> None:
    before = heic_original.read_bytes()
    dst = tmp_path / "out.tmp"
    result = encode_file(
        heic_original,
        dst,
        quality=quality,
        crf=None,
        original_sha256=SHA,
        tier=tier,
        replaces_size=len(before),
        heic_preset="ultrafast",
    )
    assert result.status == "encoded", result.reason
    assert result.size < len(before)
    assert heic_original.read_bytes() == before
    orig = pillow_heif.open_heif(heic_original)[0]
    out = pillow_heif.open_heif(dst)[0]
    # Displayed size and corner: the rotation is applied once, as in the original.
    assert out.size == orig.size == (192, 256)
    shown = out.to_pillow()
    assert shown.getpixel((shown.width - 5, 5))[0] > 200
    exif = Image.Exif()
    exif.load(out.info["exif"])
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif[ExifTags.Base.Model] == "iPhone 12"
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == TAKEN
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert tuple(float(v) for v in gps[ExifTags.GPS.GPSLatitude]) == GPS_LATITUDE
    assert out.info["icc_profile"] == icc_srgb()
    assert XMP_MARKER.encode() in out.info["xmp"]
    assert read_lineage(dst) == (SHA, tier)
    assert read_lineage(heic_original) is None


def test_heic_under_a_jpg_name_is_kept_as_it_is(tmp_path: Path) -> None:
    # The quality was chosen for the name's kind (JPEG), not the HEIC's
    # (tests/media/test_named_kind.py has every pair).
    src = make_heic(tmp_path / "exported.jpg")
    dst = tmp_path / "o"
    result = encode_file(
        src,
        dst,
        quality=40,
        crf=None,
        original_sha256=SHA,
        tier="t",
        replaces_size=10**9,
        heic_preset="ultrafast",
    )
    assert result.status == "kept"
    assert not dst.exists()
    assert read_capture_date(src) == datetime(2021, 6, 1, 12, 34, 56, tzinfo=UTC)


def test_capture_date_of_stills(jpeg_original: Path, heic_original: Path, tmp_path: Path) -> None:
    paris = timezone(timedelta(hours=2))
    assert read_capture_date(jpeg_original) == datetime(2021, 6, 1, 14, 34, 56, tzinfo=paris)
    assert read_capture_date(heic_original) == datetime(2021, 6, 1, 14, 34, 56, tzinfo=paris)
    no_offset = make_jpeg(tmp_path / "utc.jpg", exif=camera_exif(offset=None))
    assert read_capture_date(no_offset) == datetime(2021, 6, 1, 14, 34, 56, tzinfo=UTC)
    zeroed = camera_exif()
    zeroed.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "0000:00:00 00:00:00"
    assert read_capture_date(make_jpeg(tmp_path / "zero.jpg", exif=zeroed)) is None
    date = read_capture_date(jpeg_original)
    assert date is not None
    assert date.utcoffset() == timedelta(hours=2)


def test_jpeg_output_check_refuses_what_is_not_the_encoders_image(
    jpeg_original: Path,
) -> None:
    out = encode_jpeg(jpeg_original, quality=70, original_sha256=SHA, tier="t")
    assert check_jpeg(out.data, out) is None
    damaged = out.data[:-600] + bytes(598) + out.data[-2:]
    assert check_jpeg(damaged, out) == "output's coded image differs from what the encoder wrote"
    not_ended = (
        "output is not a whole JPEG: output: truncated, or bytes after the image "
        "(it does not end with its end-of-image marker)"
    )
    assert check_jpeg(out.data[:-2], out) == not_ended
    # The check reads no scan for its end: the encoder's image must end
    # where the bytes do, not be followed by anything (a second image).
    assert check_jpeg(out.data + b"\xff\xd8junk", out) == not_ended
    assert check_jpeg(out.data + out.data, out) == (
        "output's coded image differs from what the encoder wrote"
    )
    wrong = attrs.evolve(out, expected_size=(10, 10))
    assert check_jpeg(out.data, wrong) == "output is 480x320, original is 10x10"


def test_fill_bytes_before_a_marker_are_read_past(jpeg_original: Path, tmp_path: Path) -> None:
    data = jpeg_original.read_bytes()
    plain = jpeg.read_structure(data, "plain")
    _, start, _ = plain.segments[1]
    padded = data[:start] + b"\xff" * 3 + data[start:]
    structure = jpeg.read_structure(padded, "padded")
    assert [(m, s if s < start else s - 3, e - 3) for m, s, e in structure.segments[1:]] == list(
        plain.segments[1:]
    )
    assert (structure.scan, structure.end) == (plain.scan + 3, plain.end + 3)
    src = tmp_path / "padded.jpg"
    src.write_bytes(padded)
    result = encode_file(
        src,
        tmp_path / "o",
        quality=70,
        crf=None,
        original_sha256=SHA,
        tier="t",
        replaces_size=10**9,
    )
    assert result.status == "encoded", result.reason
    with pytest.raises(
        MediaError, match=r"^cut: truncated or corrupt JPEG \(bad marker at byte \d+\)$"
    ):
        jpeg.read_structure(padded[: start + 2], "cut")
