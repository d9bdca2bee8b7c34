"""Stills: re-encode a JPEG with Pillow or a HEIC with pillow-heif, metadata carried over.

An encode returns the new file's bytes in memory (a 12 MP photo is a few
MB), so that a result which is not worth keeping is never written to disk.

What is carried: EXIF as the original's bytes (date, GPS, make/model,
orientation), the ICC profile, the XMP packet (plus our lineage), JFIF
density and the JPEG comment. Pixels are never rotated for display: a JPEG
keeps its stored pixels and its orientation tag. A HEIC is decoded by
libheif with its rotation applied, so the pixels are turned back to their
stored orientation and the encoder writes the rotation again from the
orientation tag: the result displays exactly as the original did.

Not carried: JPEG APP segments Pillow does not model (IPTC, MPF secondary
images, Google extended XMP and appended motion-photo video), and HEIC
depth, auxiliary (HDR gain map) and non-primary images.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pillow_heif
from PIL import ExifTags, Image

from reconciler.errors import MediaError
from reconciler.media.kinds import HEIC, JPEG
from reconciler.media.lineage import parse_xmp_lineage, with_lineage

# Everything Pillow and pillow-heif raise for undecodable input; wrapped into
# MediaError so one bad photo is reported, not a crash of the run.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, struct.error)

# One APP1 segment holds 65533 bytes, less the XMP namespace header.
_MAX_JPEG_XMP = 65533 - len(b"http://ns.adobe.com/xap/1.0/\x00")

# pillow-heif ``info`` keys that describe the primary image and must travel
# to the new file (colour, chroma, other metadata boxes, thumbnail sizes).
_HEIC_CARRIED = (
    "icc_profile",
    "icc_profile_type",
    "nclx_profile",
    "chroma",
    "metadata",
    "thumbnails",
    "pixel_aspect_ratio",
)

# The transpose that takes displayed pixels back to stored ones, per EXIF
# orientation: the inverse of what a viewer applies.
_DISPLAY_TO_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@attrs.frozen(kw_only=True)
class StillOutput:
    """An encoded still, not yet written, and the size it must decode to."""

    data: bytes
    expected_size: tuple[int, int]
    lineage_embedded: bool


def encode_jpeg(src: Path, *, quality: int, original_sha256: str, tier: str) -> StillOutput:
    """Re-encode a JPEG at ``quality``, keeping its metadata and stored orientation."""
    try:
        with Image.open(src) as im:
            if im.format not in ("JPEG", "MPO"):
                raise MediaError(f"{src}: not a JPEG (Pillow reads it as {im.format})")
            im.load()
            info = im.info
            xmp = with_lineage(_as_bytes(info.get("xmp")), original_sha256, tier)
            if xmp is not None and len(xmp) > _MAX_JPEG_XMP:
                # Lineage would push a near-full XMP segment past 64 KB: keep
                # the original packet and leave lineage to the state database.
                xmp = None
            options: dict[str, Any] = {
                "quality": quality,
                "exif": info.get("exif", b""),
                "icc_profile": info.get("icc_profile"),
                "xmp": xmp if xmp is not None else info.get("xmp"),
                "comment": info.get("comment"),
            }
            if "dpi" in info:
                options["dpi"] = info["dpi"]
            buf = io.BytesIO()
            im.save(buf, format="JPEG", **options)
            return StillOutput(
                data=buf.getvalue(), expected_size=im.size, lineage_embedded=xmp is not None
            )
    except _DECODE_ERRORS as e:
        raise MediaError(f"{src}: cannot decode JPEG: {e}") from e


def check_jpeg(data: bytes, expected_size: tuple[int, int]) -> str | None:
    """Why an encoded JPEG must not be kept, or None when it decodes at the right size."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != expected_size:
                return f"output is {_dims(im.size)}, original is {_dims(expected_size)}"
            # Decoding at 1/8 scale still entropy-decodes every block (so a
            # damaged stream fails) but skips most of the IDCT work.
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except _DECODE_ERRORS as e:
        return f"output does not decode: {e}"
    return None


def encode_heic(
    src: Path, *, quality: int, preset: str, original_sha256: str, tier: str
) -> StillOutput:
    """Re-encode the primary image of a HEIC/HEIF at ``quality`` with the x265 ``preset``."""
    try:
        heif = pillow_heif.open_heif(src)
        primary = heif[heif.primary_index]
        displayed = primary.to_pillow()
        turn = _DISPLAY_TO_STORED.get(displayed.info.get("original_orientation") or 1)
        stored = displayed.transpose(turn) if turn is not None else displayed
        info = primary.info
        xmp = with_lineage(_as_bytes(info.get("xmp")), original_sha256, tier)
        carried = {key: info[key] for key in _HEIC_CARRIED if info.get(key) is not None}
        out = pillow_heif.from_bytes(stored.mode, stored.size, stored.tobytes())
        buf = io.BytesIO()
        out.save(
            buf,
            quality=quality,
            enc_params={"preset": preset},
            exif=info.get("exif"),
            xmp=xmp if xmp is not None else info.get("xmp"),
            **carried,
        )
        return StillOutput(
            data=buf.getvalue(), expected_size=displayed.size, lineage_embedded=xmp is not None
        )
    except _DECODE_ERRORS as e:
        raise MediaError(f"{src}: cannot decode HEIC: {e}") from e


def check_heic(data: bytes, expected_size: tuple[int, int]) -> str | None:
    """Why an encoded HEIC must not be kept, or None when it decodes at the right size."""
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data))
        primary = heif[heif.primary_index]
        size = tuple(primary.size)
        if size != expected_size:
            return f"output is {_dims(size)}, original is {_dims(expected_size)}"
        primary.load()
    except _DECODE_ERRORS as e:
        return f"output does not decode: {e}"
    return None


def read_still_metadata(path: Path, kind: str) -> tuple[bytes | None, bytes | None]:
    """(EXIF, XMP) of a still, read from its headers without decoding pixels."""
    try:
        if kind == HEIC:
            heif = pillow_heif.open_heif(path)
            info = heif[heif.primary_index].info
            return _as_bytes(info.get("exif")), _as_bytes(info.get("xmp"))
        with Image.open(path) as im:
            if kind == JPEG and im.format not in ("JPEG", "MPO"):
                raise MediaError(f"{path}: not a JPEG (Pillow reads it as {im.format})")
            return _as_bytes(im.info.get("exif")), _as_bytes(im.info.get("xmp"))
    except _DECODE_ERRORS as e:
        raise MediaError(f"{path}: cannot read metadata: {e}") from e


def read_still_lineage(path: Path, kind: str) -> tuple[str, str] | None:
    return parse_xmp_lineage(read_still_metadata(path, kind)[1])


def read_still_capture_date(path: Path, kind: str) -> datetime | None:
    exif_bytes = read_still_metadata(path, kind)[0]
    if not exif_bytes:
        return None
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except _DECODE_ERRORS:
        # Broken EXIF is "date unknown", not a broken photo.
        return None
    return exif_datetime(
        sub.get(ExifTags.Base.DateTimeOriginal),
        sub.get(ExifTags.Base.SubsecTimeOriginal),
        sub.get(ExifTags.Base.OffsetTimeOriginal),
    )


def exif_datetime(value: object, subsec: object = None, offset: object = None) -> datetime | None:
    """A tz-aware datetime from EXIF ``YYYY:MM:DD HH:MM:SS`` (+ sub-seconds, + offset).

    Without an offset the time is taken as UTC, as agreed with the core; a
    zeroed or malformed value (cameras write ``0000:00:00 00:00:00``) is None.
    """
    text = _exif_text(value)
    if text is None:
        return None
    try:
        naive = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    digits = _exif_text(subsec)
    if digits and digits.isdigit():
        naive = naive.replace(microsecond=int(digits[:6].ljust(6, "0")))
    return naive.replace(tzinfo=_exif_offset(_exif_text(offset)))


def _exif_offset(text: str | None) -> timezone:
    if text and len(text) == 6 and text[0] in "+-" and text[3] == ":":
        try:
            hours, minutes = int(text[1:3]), int(text[4:6])
        except ValueError:
            return UTC
        if hours <= 14 and minutes < 60:
            sign = -1 if text[0] == "-" else 1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    return UTC


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    return value or None


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return None


def _dims(size: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in size)
