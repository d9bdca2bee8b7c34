"""JPEG structure: the segments around the pixels, read and carried byte for byte.

Pillow re-encodes the pixels but models only a few segments (EXIF, one ICC
profile, one XMP packet, one comment); IPTC/Photoshop (APP13), Adobe
(APP14), FlashPix (APP2), extended XMP and maker segments would be lost.
So the encoder takes only the *pixels* from Pillow and this module puts
every APPn and COM segment of the original back, in the original's order,
with only the main XMP packet replaced (to add lineage).

It also tells what a re-encode cannot carry at all: secondary images (MPF,
as MPO and some phones write them) and data after the end of the image
(a Google Motion Photo's video, a maker's trailer). Such files stay as they
are. A stream that ends before its end-of-image marker is truncated.
"""

from __future__ import annotations

from typing import BinaryIO

import attrs

from reconciler.errors import MediaError
from reconciler.media.kinds import marks_motion_photo

SOI = b"\xff\xd8"
_SOS = 0xDA
_EOI = b"\xff\xd9"
_APP0, _APP1, _APP2, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
_COM = 0xFE
# Frame headers (SOF0-15, less DHT, JPG and DAC, which share the range).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Frame headers the encoder's decoder (libjpeg, 8-bit) reads: baseline,
# extended sequential, progressive, and their arithmetic-coded kin.
_SOF_ENCODED = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
_SOF_NAMES = {
    0xC3: "lossless",
    0xC5: "hierarchical",
    0xC6: "hierarchical",
    0xC7: "hierarchical lossless",
    0xCB: "lossless",
    0xCD: "hierarchical",
    0xCE: "hierarchical",
    0xCF: "hierarchical lossless",
}
# Markers without a length field: TEM and the restart markers.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_EXIF_HEADER = b"Exif\x00\x00"
#: What a header read takes first: most photos' metadata fits.
_HEADER_READ = 1 << 16
_MPF_HEADER = b"MPF\x00"
_ADOBE_HEADER = b"Adobe"
# Offset of the colour transform byte in an Adobe segment's payload:
# "Adobe" version(2) flags0(2) flags1(2) transform(1).
_ADOBE_TRANSFORM = 11
#: Most bytes one segment holds (its length field counts itself).
MAX_PAYLOAD = 65533


@attrs.frozen(kw_only=True)
class Structure:
    """Where things are in a JPEG file: ``segments`` are (marker, start, end) of
    each marker segment before the first scan, ``end`` is just past EOI."""

    segments: tuple[tuple[int, int, int], ...]
    scan: int
    end: int

    def payload(self, data: bytes, segment: tuple[int, int, int]) -> bytes:
        return data[segment[1] + 4 : segment[2]]

    def dimensions(self, data: bytes) -> tuple[int, int] | None:
        """(width, height) from the frame header, or None if there is none."""
        for marker, start, _ in self.segments:
            if marker in _SOF:
                height = int.from_bytes(data[start + 5 : start + 7], "big")
                width = int.from_bytes(data[start + 7 : start + 9], "big")
                return width, height
        return None

    def unencodable(self, data: bytes) -> str | None:
        """Why this JPEG's coding is one the re-encode does not take (lossless,
        hierarchical, more than 8 bits a sample: valid JPEGs Pillow cannot
        decode), or None. Such a file is kept as it is, not called damaged."""
        for marker, start, _ in self.segments:
            if marker in _SOF:
                precision = data[start + 4] if start + 4 < len(data) else 0
                if marker not in _SOF_ENCODED:
                    return (
                        f"it is a {_SOF_NAMES.get(marker, 'rare')} JPEG (SOF{marker - 0xC0}); "
                        "only baseline and progressive JPEGs are re-encoded"
                    )
                if precision != 8:
                    return f"its samples are {precision}-bit; only 8-bit JPEGs are re-encoded"
        return None

    def exif(self, data: bytes) -> bytes | None:
        """The first EXIF segment's payload (from its ``Exif`` header on, as
        Pillow's ``info["exif"]`` holds it), or None."""
        for seg in self.segments:
            if seg[0] == _APP1:
                body = self.payload(data, seg)
                if body.startswith(_EXIF_HEADER):
                    return body
        return None

    def xmp(self, data: bytes) -> bytes | None:
        """The main XMP packet (not Adobe's extended XMP chunks), or None: the
        first, which the encoder writes the lineage into and every reading of
        the lineage takes (Pillow's ``info["xmp"]`` holds the last)."""
        for seg in self.segments:
            if seg[0] == _APP1:
                body = self.payload(data, seg)
                if body.startswith(XMP_HEADER):
                    return body[len(XMP_HEADER) :]
        return None

    def uncarried(self, data: bytes) -> str | None:
        """Why a re-encode of this file cannot carry it whole, or None."""
        for seg in self.segments:
            if seg[0] == _APP2 and self.payload(data, seg).startswith(_MPF_HEADER):
                return "it holds several images (MPF/MPO); a re-encode keeps only the first"
        trailer = data[self.end :]
        if trailer.strip(b"\x00\xff\r\n\t "):
            return (
                f"{len(trailer)} bytes follow the image (a Motion Photo's video or a "
                "maker's trailer); a re-encode would drop them"
            )
        if marks_motion_photo(self.xmp(data)):
            return "its XMP marks it a Motion Photo; a re-encode would drop the video"
        return None


def read_structure(data: bytes, name: object) -> Structure:
    """Segments, first scan and end of a JPEG; MediaError if it is not whole."""
    segments, scan = _header(data, name)
    # In entropy-coded data 0xFF is always followed by 0x00 or a restart
    # marker, and the markers between progressive scans are not EOI: the
    # first FFD9 after the first scan is the end of the image.
    eoi = data.find(_EOI, scan)
    if eoi < 0:
        raise MediaError(f"{name}: truncated JPEG (no end-of-image marker)")
    return Structure(segments=segments, scan=scan, end=eoi + 2)


def read_written(data: bytes, name: object) -> Structure:
    """Segments and first scan of a JPEG libjpeg just wrote (or that with
    segments carried in front): one whose image ends where its bytes end;
    MediaError for any other. No search of the scans for their end, which
    on small photos cost as much as the metadata work: the encoder's
    entropy-coded data holds no marker (0xFF is always stuffed), so the
    only FFD9 is the last two bytes; bytes after it would be refused."""
    segments, scan = _header(data, name)
    if not data.endswith(_EOI):
        raise MediaError(
            f"{name}: truncated, or bytes after the image (it does not end with its "
            "end-of-image marker)"
        )
    return Structure(segments=segments, scan=scan, end=len(data))


def read_header(f: BinaryIO, name: object) -> tuple[bytes, Structure]:
    """The bytes of a JPEG file up to its first scan, with their segments
    (``end`` is the scan's start): its metadata, read without its pixels, by
    the same parse the encoder writes with."""
    data = f.read(_HEADER_READ)
    while True:
        try:
            segments, scan = _header(data, name)
        except _CutShort:
            more = f.read(max(len(data), _HEADER_READ))
            if not more:
                raise
            data += more
            continue
        return data, Structure(segments=segments, scan=scan, end=scan)


class _CutShort(MediaError):
    """The bytes end before the first scan does."""


def _header(data: bytes, name: object) -> tuple[tuple[tuple[int, int, int], ...], int]:
    """The marker segments before the first scan, and where the scan starts."""
    if not data.startswith(SOI):
        raise MediaError(f"{name}: not a JPEG (no start-of-image marker)")
    segments: list[tuple[int, int, int]] = []
    pos, size = 2, len(data)
    # Run three times per encode (original, encoder output, the check): on
    # small photos its loop costs as much as the metadata work, so it reads
    # bytes by index rather than by slice.
    while True:
        if pos + 4 > size:
            raise _CutShort(f"{name}: truncated or corrupt JPEG (bad marker at byte {pos})")
        if data[pos] != 0xFF:
            # Bytes that start no marker: libjpeg skips them with a warning
            # ("extraneous bytes before marker"), and every viewer shows
            # the photo whole; so does this parse (they are not carried).
            found = data.find(b"\xff", pos)
            if found < 0:
                raise _CutShort(f"{name}: truncated or corrupt JPEG (no marker after byte {pos})")
            pos = found
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # a fill byte before a marker
            continue
        if marker == 0x00:
            pos += 2  # a stuffed zero outside any scan: skipped, as libjpeg does
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + (data[pos + 2] << 8 | data[pos + 3])
        if end > size:
            raise _CutShort(f"{name}: truncated JPEG (segment at byte {pos} runs past the end)")
        if marker == _SOS:
            return tuple(segments), pos
        segments.append((marker, pos, end))
        pos = end


def pixels_only(data: bytes, structure: Structure) -> bytes:
    """The image without its metadata: what a decoder needs (tables, frame,
    scans, and the JFIF and Adobe segments, which say how colour is coded).
    Decoding this skips Pillow's parse of EXIF, ICC and XMP, which on small
    photos costs more than the pixels."""
    out = [SOI]
    for marker, start, end in structure.segments:
        body = data[start + 4 : end]
        if (
            not _is_metadata(marker)
            or (marker == _APP0 and body.startswith(b"JFIF\x00"))
            or (marker == _APP14 and body.startswith(_ADOBE_HEADER))
        ):
            out.append(data[start:end])
    out.append(data[structure.scan : structure.end])
    return b"".join(out)


def coded_image(data: bytes, structure: Structure) -> list[bytes]:
    """The parts of a JPEG a decoder turns into pixels (tables, frame header,
    scans), without metadata segments: equal lists mean equal pixels."""
    tables = [data[s:e] for m, s, e in structure.segments if not _is_metadata(m)]
    return [*tables, data[structure.scan : structure.end]]


def carry_segments(
    original: bytes,
    structure: Structure,
    encoded: bytes,
    new: Structure,
    xmp: bytes | None,
    *,
    components: int,
) -> bytes:
    """``encoded`` (Pillow's output, pixels only; ``new`` its structure) with
    every APPn and COM segment of ``original`` in front of its tables, the
    main XMP packet replaced by ``xmp`` (kept as it is when None).

    An Adobe segment's colour transform is set to YCbCr for a three-component
    result: copied as "none" (an RGB-coded original) it would make every
    viewer show the new YCbCr data in wrong colours.
    """
    out = [SOI]
    xmp_done = xmp is None
    for marker, start, end in structure.segments:
        if not (_APP0 <= marker <= _APP15 or marker == _COM):
            continue
        body = original[start + 4 : end]
        if marker == _APP1 and body.startswith(XMP_HEADER) and not xmp_done:
            # The first packet is the one readers use (and ``xmp`` came from).
            out.append(segment(_APP1, XMP_HEADER + (xmp or b"")))
            xmp_done = True
            continue
        if (
            marker == _APP14
            and body.startswith(_ADOBE_HEADER)
            and components == 3
            and len(body) > _ADOBE_TRANSFORM
            and body[_ADOBE_TRANSFORM] != 1
        ):
            body = body[:_ADOBE_TRANSFORM] + b"\x01" + body[_ADOBE_TRANSFORM + 1 :]
            out.append(segment(marker, body))
            continue
        out.append(original[start:end])
    if not xmp_done and xmp is not None:
        out.append(segment(_APP1, XMP_HEADER + xmp))
    # Pillow's own tables, frame header and scans; not its APPn/COM segments,
    # which only repeat (or contradict, for JFIF density) the original's.
    first_table = next((s for m, s, _ in new.segments if not _is_metadata(m)), new.scan)
    out.append(encoded[first_table : new.end])
    return b"".join(out)


def segment(marker: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"JPEG segment payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _is_metadata(marker: int) -> bool:
    return _APP0 <= marker <= _APP15 or marker == _COM
