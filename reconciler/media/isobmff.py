"""HEIF boxes, read just far enough to tell a whole file from a cut one.

libheif decodes a HEIC cut short without complaint when the missing bytes
belong to grid tiles: it fills them with green and reports success. The item
location box (``iloc``) says where every coded byte lives, so comparing its
extents with the file's length finds the cut before any pixel is decoded.
(ISO/IEC 14496-12 §8.11.3 for ``iloc``, §4.2 for box headers.)
"""

from __future__ import annotations

from reconciler.errors import MediaError


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


def truncation(data: bytes, name: object) -> str | None:
    """Why this HEIF is not whole (a box or an item's data runs past the end), or None."""
    size = len(data)
    top = _boxes(data, 0, size, name)
    for kind, _, end in top:
        if end > size:
            return f"box {kind.decode('latin-1')!r} ends at byte {end}, the file has {size}"
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
