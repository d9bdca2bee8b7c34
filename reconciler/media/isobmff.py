"""HEIF boxes, read just far enough to tell a whole file from a cut one.

libheif decodes a HEIC cut short without complaint when the missing bytes
belong to grid tiles: it fills them with green and reports success. The item
location box (``iloc``) says where every coded byte lives, so comparing its
extents with the file's length finds the cut before any pixel is decoded.
(ISO/IEC 14496-12 §8.11.3 for ``iloc``, §4.2 for box headers.)

A cut is told from a trailer by where the file stops being boxes: a HEIF
box (``mdat``, ``meta``…) running past the end is a cut, while bytes after
the last whole box that are no box at all (Samsung's ``MotionPhoto_Data``,
its SEF trailer) are a trailer. A file with a trailer, or with top-level
boxes besides the image's own (a Motion Photo's ``mpvd`` video), plays
fine; a re-encode, which writes the image items only, would drop that part,
so such files are kept as they are (``uncarried``).
"""

from __future__ import annotations

from reconciler.errors import MediaError

# Top-level boxes of a HEIF still that a re-encode writes anew (ISO/IEC
# 23008-12 §10.2: the file type, the items' metadata and their coded data).
_IMAGE_BOXES = frozenset({b"ftyp", b"meta", b"mdat", b"free", b"skip"})
# Boxes of HEIF and its ISO-BMFF base: one of them running past the end of
# the file means the file was cut, not that something follows it.
_HEIF_BOXES = frozenset(
    {b"ftyp", b"meta", b"mdat", b"moov", b"moof", b"free", b"skip", b"uuid", b"mpvd"}
)


def _boxes(data: bytes, start: int, end: int, name: object) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise MediaError(f"{name}: truncated HEIF (box header at byte {pos})")
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = end - pos  # the last box runs to the end of the file
        if size < header:
            raise MediaError(f"{name}: corrupt HEIF (box {kind!r} at byte {pos} has size {size})")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _top_level(data: bytes) -> tuple[list[tuple[bytes, int, int]], int | None]:
    """The whole top-level boxes, and where the bytes that are not one begin
    (a box running past the end, or no box at all), or None."""
    out: list[tuple[bytes, int, int]] = []
    pos, size = 0, len(data)
    while pos < size:
        if pos + 8 > size:
            return out, pos
        length = int.from_bytes(data[pos : pos + 4], "big")
        header = 8
        if length == 1:
            if pos + 16 > size:
                return out, pos
            length = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif length == 0:
            length = size - pos  # the last box runs to the end of the file
        kind = data[pos + 4 : pos + 8]
        if length < header or pos + length > size or not _is_box_type(kind):
            return out, pos
        out.append((kind, pos + header, pos + length))
        pos += length
    return out, None


def _is_box_type(kind: bytes) -> bool:
    # Box types are four printable characters (ISO/IEC 14496-12 §4.2 uses
    # ASCII names); zeros or binary bytes are no box, whatever they follow.
    return all(0x20 <= c <= 0x7E for c in kind)


def truncation(data: bytes, name: object) -> str | None:
    """Why this HEIF is not whole (a box or an item's data runs past the end), or None.

    Bytes after the last box that do not start a HEIF box are a trailer, not
    a cut: ``uncarried`` names them."""
    size = len(data)
    top, tail = _top_level(data)
    if tail is not None and data[tail + 4 : tail + 8] in _HEIF_BOXES:
        kind = data[tail + 4 : tail + 8].decode("latin-1")
        return f"box {kind!r} at byte {tail} runs past the end of the file ({size} bytes)"
    meta = next(((s, e) for k, s, e in top if k == b"meta"), None)
    if meta is None:
        return "no 'meta' box"
    # meta is a full box: version and flags before its children.
    children = _boxes(data, meta[0] + 4, meta[1], name)
    iloc = next(((s, e) for k, s, e in children if k == b"iloc"), None)
    if iloc is None:
        return "no 'iloc' box"
    try:
        return _iloc_past_end(data, iloc[0], iloc[1], size)
    except IndexError:
        return "its 'iloc' box is cut short"


def uncarried(data: bytes) -> str | None:
    """Why a re-encode, which writes the image items only, cannot carry this
    HEIF whole (a Motion Photo's video box, other top-level boxes, bytes
    after the last box), or None."""
    top, tail = _top_level(data)
    others = [kind for kind, _, _ in top if kind not in _IMAGE_BOXES]
    if b"mpvd" in others:
        return "it holds a Motion Photo's video (an 'mpvd' box); a re-encode would drop it"
    if others:
        names = ", ".join(repr(kind.decode("latin-1")) for kind in others)
        return f"it holds boxes besides the image ({names}); a re-encode would drop them"
    if tail is not None:
        return (
            f"{len(data) - tail} bytes follow its last box (a Motion Photo's video or a "
            "maker's trailer); a re-encode would drop them"
        )
    return None


def _iloc_past_end(data: bytes, pos: int, end: int, size: int) -> str | None:
    def take(n: int) -> int:
        nonlocal pos
        if pos + n > end:
            raise IndexError(pos)
        value = int.from_bytes(data[pos : pos + n], "big")
        pos += n
        return value

    version = take(1)
    take(3)  # flags
    sizes = take(1)
    offset_size, length_size = sizes >> 4, sizes & 0xF
    sizes = take(1)
    base_offset_size = sizes >> 4
    index_size = sizes & 0xF if version in (1, 2) else 0
    count = take(2 if version < 2 else 4)
    for _ in range(count):
        item = take(2 if version < 2 else 4)
        method = take(2) & 0xF if version in (1, 2) else 0
        take(2)  # data reference index
        base = take(base_offset_size)
        for _ in range(take(2)):
            take(index_size)
            offset, length = take(offset_size), take(length_size)
            # Method 0: bytes of this file (1 and 2 point into other boxes or items).
            if method == 0 and base + offset + length > size:
                return (
                    f"item {item} needs bytes up to {base + offset + length}, the file has {size}"
                )
    return None
