"""Stills: re-encode a JPEG with Pillow or a HEIC with pillow-heif, metadata carried over.

An encode returns the new file's bytes in memory (a 12 MP photo is a few
MB), so that a result which is not worth keeping is never written to disk.

JPEG: Pillow encodes the pixels only; every APPn and COM segment of the
original (JFIF, EXIF, ICC, XMP plus our lineage, extended XMP, IPTC/Photoshop
APP13, Adobe APP14, FlashPix, maker segments, comments) is put back byte for
byte by ``jpeg.carry_segments``. HEIC: EXIF, XMP, ICC or nclx colour,
HDR metadata (content light level, mastering display), chroma and other
metadata boxes travel, and 10/12-bit images stay 10/12-bit.

Pixels are never rotated for display: a JPEG keeps its stored pixels and its
orientation tag. A HEIC is decoded by libheif with its rotation applied, so
the pixels are turned back to their stored orientation and the encoder
writes the rotation again from the orientation tag: the result displays
exactly as the original did.

What a re-encode cannot carry whole raises KeepOriginal, and the library
keeps the file: MPF/MPO secondary images, data after a JPEG's end (a Motion
Photo's video), CMYK JPEGs, a HEIF with several images, a depth map or
auxiliary images (an HDR gain map), metadata libheif cannot write back, a
HEIF Motion Photo (its video in an ``mpvd`` box, or its XMP marks it one),
boxes or bytes after a HEIF's image (a maker's trailer), a still above
``MAX_PIXELS``.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pillow_heif
from PIL import ExifTags, Image, JpegImagePlugin

from reconciler.errors import MediaError
from reconciler.hashing import open_to_read
from reconciler.media import isobmff, jpeg
from reconciler.media.kinds import HEIC, KeepOriginal, marks_motion_photo
from reconciler.media.lineage import parse_xmp_lineage, with_lineage, within

# Everything Pillow and pillow-heif raise for undecodable input; wrapped into
# MediaError so one bad photo is reported, not a crash of the run.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, struct.error)

#: The most pixels a still may have to be re-encoded; a larger one is kept
#: as it is. An encode holds the decoded image in memory (3 bytes a pixel
#: for 8-bit colour, twice that at 10 or 12 bits, plus the encoder's own
#: copies), in each of the pool's processes at once. This is Pillow's own
#: limit (twice ``Image.MAX_IMAGE_PIXELS``, 512 MiB of 8-bit RGB), above
#: which it refuses a file as a likely decompression bomb: every phone's
#: 48-108 MP mode and medium-format cameras' 100-150 MP photos are below
#: it; Samsung's 200 MP mode (16320x12240) is above it and stays as it is.
#: Pillow's guard itself is never turned off: the JPEG header is read, and
#: its size checked against this, before Pillow sees the file.
MAX_PIXELS = 2 * 89_478_485

# One APP1 segment holds 65533 bytes, less the XMP namespace header.
_MAX_JPEG_XMP = jpeg.MAX_PAYLOAD - len(jpeg.XMP_HEADER)

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
    # HDR: without these a PQ or HLG still would be shown with SDR tones.
    "content_light_level",
    "mastering_display_colour_volume",
    "ambient_viewing_environment",
    "nominal_diffuse_white_luminance",
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
    """An encoded still, not yet written, and what it must decode to."""

    data: bytes
    expected_size: tuple[int, int]
    bit_depth: int = 8
    #: JPEG: the coded image (tables, frame, scans) the encoder wrote, before
    #: the original's segments were carried around it; ``data`` must hold it.
    coded: tuple[bytes, ...] = ()


def encode_jpeg(
    src: Path, *, quality: int, original_sha256: str, tier: str, data: bytes | None = None
) -> StillOutput:
    """Re-encode a JPEG at ``quality``, keeping every metadata segment and the stored
    orientation. Raises KeepOriginal for what a re-encode cannot carry whole.
    ``data``, when given, is ``src``'s content, already read."""
    if data is None:
        data = _read(src)
    structure = jpeg.read_structure(data, src)
    kept = structure.uncarried(data) or structure.unencodable(data)
    if kept is not None:
        raise KeepOriginal(kept)
    _check_pixels(structure.dimensions(data))
    xmp = _lineage_xmp(structure.xmp(data), original_sha256, tier, _MAX_JPEG_XMP)
    try:
        # Pixels only: Pillow need not parse metadata that is carried as bytes.
        with _open_jpeg(io.BytesIO(jpeg.pixels_only(data, structure))) as im:
            if im.mode not in ("L", "RGB"):
                raise KeepOriginal(
                    f"its pixels are {im.mode}; only greyscale and colour (YCbCr) JPEGs "
                    "are re-encoded"
                )
            im.load()
            buf = io.BytesIO()
            # Pixels only: the segments are carried from the original below.
            # The original's chroma subsampling (4:4:4, 4:2:2) is kept: a
            # tier asks for a quality, not for half the colour resolution
            # (-1, a sampling Pillow does not name: its default).
            sampling = JpegImagePlugin.get_sampling(im)
            im.save(buf, format="JPEG", quality=quality, subsampling=sampling)
            size = im.size
            components = len(im.getbands())
    except _DECODE_ERRORS as e:
        raise MediaError(f"{src}: cannot decode JPEG: {e}") from e
    pixels = buf.getvalue()
    made = jpeg.read_written(pixels, "encoder output")
    out = jpeg.carry_segments(data, structure, pixels, made, xmp, components=components)
    return StillOutput(
        data=out,
        expected_size=size,
        coded=tuple(jpeg.coded_image(pixels, made)),
    )


def check_jpeg(data: bytes, expected: StillOutput) -> str | None:
    """Why an encoded JPEG must not be kept, or None when it is whole, at the
    right size, and holds exactly the coded image libjpeg just wrote.

    No second decode: the coded image is libjpeg's own output for pixels
    that were just decoded, and what this module adds around it (metadata
    segments) is checked here not to touch a byte of it. A decode of the
    output cost more than the encode itself on small photos.
    """
    try:
        structure = jpeg.read_written(data, "output")
        size = structure.dimensions(data)
        if size != expected.expected_size:
            return f"output is {_dims(size or (0, 0))}, original is {_dims(expected.expected_size)}"
        if tuple(jpeg.coded_image(data, structure)) != expected.coded:
            return "output's coded image differs from what the encoder wrote"
    except MediaError as e:
        return f"output is not a whole JPEG: {e}"
    return None


def encode_heic(
    src: Path,
    *,
    quality: int,
    preset: str,
    original_sha256: str,
    tier: str,
    threads: int = 0,
    data: bytes | None = None,
) -> StillOutput:
    """Re-encode the primary image of a HEIC/HEIF at ``quality`` with the x265 ``preset``,
    at the original's bit depth. Raises KeepOriginal when the file holds more than
    that one image (a burst, a stereo pair, a depth or gain map). ``data``,
    when given, is ``src``'s content, already read."""
    if data is None:
        data = _read(src)
    cut = isobmff.truncation(data, src)
    if cut is not None:
        raise MediaError(f"{src}: truncated or corrupt HEIF: {cut}")
    if threads:
        pillow_heif.options.DECODE_THREADS = threads
    try:
        # Native bit depth: 10 and 12-bit images stay 10 and 12-bit.
        heif = pillow_heif.open_heif(
            io.BytesIO(data), convert_hdr_to_8bit=False, hdr_to_16bit=False
        )
        # After libheif has read the items' metadata: bytes after a box of
        # zeros are damage it reports, not a trailer to keep.
        uncarried = isobmff.uncarried(data)
        if uncarried is not None:
            raise KeepOriginal(uncarried)
        if len(heif) > 1:
            raise KeepOriginal(
                f"it holds {len(heif)} images (a burst, a stereo pair or a sequence); "
                "a re-encode keeps only one"
            )
        primary = heif[heif.primary_index]
        info: dict[str, Any] = primary.info
        held = isobmff.metadata_items(data, src)
        carried_items = (
            bool(info.get("exif")) + bool(info.get("xmp")) + len(info.get("metadata") or [])
        )
        if len(held) > carried_items:
            raise KeepOriginal(
                f"it holds {len(held)} metadata items ({', '.join(held)}), of which a "
                f"re-encode carries {carried_items}"
            )
        if marks_motion_photo(_as_bytes(info.get("xmp"))):
            # The video may live where no box says (Samsung's trailer, gone
            # from a copy that dropped it): the mark alone decides.
            raise KeepOriginal("its XMP marks it a Motion Photo; a re-encode would drop the video")
        _check_pixels(primary.size)
        xmp = _lineage_xmp(_as_bytes(info.get("xmp")), original_sha256, tier, None)
        if info.get("depth_images"):
            raise KeepOriginal("it holds a depth map; a re-encode would drop it")
        aux = sorted(str(kind) for kind in (info.get("aux") or {}))
        if aux:
            raise KeepOriginal(
                f"it holds auxiliary images ({', '.join(aux)}); a re-encode would drop them"
            )
        primary.load()
        mode, bit_depth = primary.mode, int(info["bit_depth"])
        size = (int(primary.size[0]), int(primary.size[1]))
        raw, stride = bytes(primary.data), int(primary.stride)
    except _DECODE_ERRORS as e:
        raise MediaError(f"{src}: cannot decode HEIC: {e}") from e
    if not _channels(mode):
        raise KeepOriginal(f"its pixels are {mode}, which this encoder does not handle")
    pixels = _packed(raw, stride, size, mode)
    # libheif applied the rotation: turn the pixels back to their stored
    # orientation; the encoder writes the rotation again from the EXIF tag.
    try:
        orientation = pillow_heif.set_orientation(dict(info)) or 1
    except (*_DECODE_ERRORS, TypeError, KeyError) as e:
        raise KeepOriginal(f"its orientation cannot be read from its EXIF ({e})") from e
    turn = _DISPLAY_TO_STORED.get(orientation)
    stored_size, stored = size, pixels
    if turn is not None:
        stored_size, stored = _transpose(mode, size, pixels, turn)
    carried = {key: info[key] for key in _HEIC_CARRIED if info.get(key) is not None}
    params = {"preset": preset}
    if threads:
        params["x265:pools"] = str(threads)
    try:
        out = pillow_heif.from_bytes(mode, stored_size, stored)
        buf = io.BytesIO()
        out.save(
            buf,
            quality=quality,
            enc_params=params,
            exif=info.get("exif"),
            xmp=xmp,
            **carried,
        )
    except (*_DECODE_ERRORS, TypeError) as e:
        # The pixels decoded; it is what travels with them that libheif
        # refused to write back. Not bad input: the file stays as it is.
        raise KeepOriginal(f"its metadata cannot be written back by libheif ({e})") from e
    return StillOutput(
        data=buf.getvalue(),
        expected_size=size,
        bit_depth=bit_depth,
    )


def check_heic(data: bytes, expected: StillOutput) -> str | None:
    """Why an encoded HEIC must not be kept, or None when it decodes at the right
    size and bit depth."""
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        primary = heif[heif.primary_index]
        size = tuple(primary.size)
        info: dict[str, Any] = primary.info
        if size != expected.expected_size:
            return f"output is {_dims(size)}, original is {_dims(expected.expected_size)}"
        depth = int(info["bit_depth"])
        if depth != expected.bit_depth:
            return f"output is {depth}-bit, original is {expected.bit_depth}-bit"
        primary.load()
    except _DECODE_ERRORS as e:
        return f"output does not decode: {e}"
    return None


def _lineage_xmp(xmp: bytes | None, original_sha256: str, tier: str, limit: int | None) -> bytes:
    """The still's XMP packet with the lineage added, at most ``limit`` bytes
    (the packet's padding given up for it if need be). KeepOriginal when the
    lineage cannot be embedded: without it, a lost state database would take
    the encoded file for an original, archive it as one and encode it again."""
    packet = with_lineage(xmp, original_sha256, tier)
    if packet is None:
        raise KeepOriginal(
            "its XMP packet has no rdf:RDF element to hold the lineage (which original "
            "the encoded copy was made from)"
        )
    if limit is not None and len(packet) > limit:
        fitted = within(packet, limit)
        if fitted is None:
            raise KeepOriginal(
                f"its XMP packet ({len(xmp or b'')} bytes) leaves no room in its JPEG segment "
                f"(at most {limit} bytes) for the lineage (which original the encoded copy "
                "was made from)"
            )
        packet = fitted
    return packet


def _check_pixels(size: tuple[int, int] | None) -> None:
    """KeepOriginal for a still too large to decode within ``MAX_PIXELS``."""
    if size is None:
        return  # no frame header: the decoder says what is wrong
    pixels = int(size[0]) * int(size[1])
    if pixels > MAX_PIXELS:
        raise KeepOriginal(
            f"it has {pixels / 1e6:.1f} megapixels ({_dims(size)}), whose decode alone "
            f"would take {pixels * 3 / 1e6:.0f} MB of memory; stills above "
            f"{MAX_PIXELS / 1e6:.0f} MP are not re-encoded"
        )


def _read(src: Path) -> bytes:
    """All of the regular file ``src`` (a FIFO or a device there, put after
    its kind was sniffed, is refused rather than read for ever)."""
    try:
        with open(open_to_read(src), "rb") as f:
            return f.read()
    except OSError as e:
        raise MediaError(f"{src}: cannot read: {e.strerror or e}") from e


def _open_jpeg(fp: BinaryIO) -> JpegImagePlugin.JpegImageFile:
    """Pillow's JPEG reader, without ``Image.open``'s decompression-bomb check:
    the caller either decodes nothing (metadata) or has checked the size against
    ``MAX_PIXELS`` (the same limit), and the check's warning for photos of
    89-179 MP would only be noise on stderr. Raises SyntaxError for a stream
    that is not a JPEG."""
    return JpegImagePlugin.JpegImageFile(fp)


def _channels(mode: str) -> int:
    # "RGBa": premultiplied alpha, four channels all the same.
    return {"L": 1, "I": 1, "RGB": 3, "RGBA": 4}.get(mode.split(";")[0].upper(), 0)


def _sample_bytes(mode: str) -> int:
    return 1 if ";" not in mode and mode.upper() in ("L", "RGB", "RGBA") else 2


def _packed(data: bytes, stride: int, size: tuple[int, int], mode: str) -> bytes:
    """Pixel rows without the decoder's row padding."""
    row = size[0] * _channels(mode) * _sample_bytes(mode)
    if not row:
        raise ValueError(f"unsupported HEIF pixel mode {mode}")
    if stride == row:
        return data[: row * size[1]]
    return b"".join(data[y * stride : y * stride + row] for y in range(size[1]))


def _transpose(
    mode: str, size: tuple[int, int], pixels: bytes, turn: Image.Transpose
) -> tuple[tuple[int, int], bytes]:
    """Turn packed pixels of any bit depth. 8-bit modes go through Pillow
    directly; deeper ones one 16-bit plane at a time, as Pillow has no 16-bit
    colour mode (the slices run at memory speed)."""
    if _sample_bytes(mode) == 1:
        turned = Image.frombytes(mode, size, pixels).transpose(turn)
        return turned.size, turned.tobytes()
    channels = _channels(mode)
    step = 2 * channels
    out = bytearray(len(pixels))
    new_size = size
    for c in range(channels):
        plane = bytearray(size[0] * size[1] * 2)
        plane[0::2] = pixels[2 * c :: step]
        plane[1::2] = pixels[2 * c + 1 :: step]
        turned = Image.frombytes("I;16", size, bytes(plane)).transpose(turn)
        new_size, flat = turned.size, turned.tobytes()
        out[2 * c :: step] = flat[0::2]
        out[2 * c + 1 :: step] = flat[1::2]
    return new_size, bytes(out)


def read_still_metadata(path: Path, kind: str) -> tuple[bytes | None, bytes | None]:
    """(EXIF, XMP) of a still, read from its headers without decoding pixels."""
    try:
        # Opened as a regular file only: another program may have put a FIFO
        # or a device at the path since its kind was sniffed.
        with open(open_to_read(path), "rb") as f:
            if kind == HEIC:
                heif = pillow_heif.open_heif(f)
                info = heif[heif.primary_index].info
                return _as_bytes(info.get("exif")), _as_bytes(info.get("xmp"))
            # Headers only, by the parse the encoder writes with: a photo of
            # any size is read, none is decoded, and of two XMP packets the
            # one read is the one the lineage was written into.
            data, structure = jpeg.read_header(f, path)
            return structure.exif(data), structure.xmp(data)
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
