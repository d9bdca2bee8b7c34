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

For clips, the metadata ffmpeg does not carry through a re-encode (XMP in
an MP4's ``uuid`` box or QuickTime's ``udta/XMP_``, user-data items it has
no tag for) is read from the original (``read_movie_extras``) and written
into ffmpeg's output (``write_movie_extras``), moving the tracks' chunk
offsets by the bytes added before the media data. Bytes after a clip's last
whole box are read as for a HEIF: a trailer (Samsung's SEF) or a box cut
short that ffmpeg never reads, which a re-encode would drop (``trailing``);
a movie box cut short is left to the decoder, which tells a clip missing
frames from one that only declares more bytes than it holds.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from reconciler.errors import MediaError
from reconciler.hashing import open_to_read

# Top-level boxes of a HEIF still that a re-encode writes anew (ISO/IEC
# 23008-12 §10.2: the file type, the items' metadata and their coded data).
_IMAGE_BOXES = frozenset({b"ftyp", b"meta", b"mdat", b"free", b"skip"})
# Boxes of HEIF and its ISO-BMFF base: one of them running past the end of
# the file means the file was cut, not that something follows it.
_HEIF_BOXES = frozenset(
    {b"ftyp", b"meta", b"mdat", b"moov", b"moof", b"free", b"skip", b"uuid", b"mpvd"}
)


def _boxes(
    data: bytes | bytearray, start: int, end: int, name: object
) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = bytes(data[pos + 4 : pos + 8])
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


def metadata_items(data: bytes, name: object) -> list[str]:
    """The metadata items of a HEIF (``Exif``, and each ``mime`` item by its
    content type: XMP is ``application/rdf+xml``), from its item info box
    (ISO/IEC 14496-12 §8.11.6). libheif reports one item of each kind to
    the encoder; the rest would be dropped without a word."""
    top, _ = _top_level(data)
    meta = next(((s, e) for k, s, e in top if k == b"meta"), None)
    if meta is None:
        return []
    children = _boxes(data, meta[0] + 4, meta[1], name)
    iinf = next(((s, e) for k, s, e in children if k == b"iinf"), None)
    if iinf is None:
        return []
    count_size = 2 if data[iinf[0]] == 0 else 4  # iinf is a full box
    found: list[str] = []
    for kind, start, end in _boxes(data, iinf[0] + 4 + count_size, iinf[1], name):
        if kind != b"infe" or start + 4 > end or data[start] < 2:
            continue  # versions 0 and 1 name no item type
        pos = start + 4 + (2 if data[start] == 2 else 4) + 2  # item id, protection index
        item_type = bytes(data[pos : pos + 4])
        if item_type == b"Exif":
            found.append("Exif")
        elif item_type == b"mime":
            item_name_end = data.find(b"\x00", pos + 4, end)
            type_end = data.find(b"\x00", item_name_end + 1, end) if item_name_end >= 0 else -1
            content = data[item_name_end + 1 : type_end if type_end >= 0 else end]
            found.append(bytes(content).decode("latin-1") or "mime")
    return found


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


# ---------------------------------------------------------------- a clip's user data

#: The UUID of the box in which XMP lives at the top of an MP4 (XMP
#: Specification Part 3, §1.2.7: Lightroom, Premiere, exiftool write it so).
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
# Top-level boxes of a clip that the re-encode writes anew (or that hold
# nothing): the movie, its media and their structure and indexes (a
# fragmented MP4's ``moof`` per fragment holds the sample tables of frames
# the encode carries: nothing of them is dropped).
_MOVIE_BOXES = frozenset(
    {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
    | {b"moof", b"mfra", b"sidx", b"ssix", b"styp"}
)
# Item-list entries ffmpeg's QuickTime demuxer reads as tags (libavformat/mov.c,
# mov_read_udta_string) and, with -map_metadata 0, writes back as keys: only
# for naming what of a ``udta/meta`` item list is lost. A ``udta`` item is
# copied box for box whatever ffmpeg makes of it: several items become one
# key (©aut and ©ART "artist", ©swr, ©too and ©enc "encoder", which ffmpeg
# then sets to its own), so its keys alone would lose some.
_FFMPEG_READS = frozenset(
    {b"aART", b"catg", b"cprt", b"desc", b"disk", b"egid", b"hdvd", b"keyw", b"ldes", b"pcst"}
    | {b"pgap", b"purl", b"rtng", b"sdes", b"sonm", b"soal", b"soar", b"soco", b"stik", b"tmpo"}
    | {b"trkn", b"tven", b"tves", b"tvnn", b"tvsh", b"covr", b"gnre", b"cpil", b"loci"}
    | {b"\xa9" + name for name in (b"ART", b"PRD", b"alb", b"aut", b"cmt", b"cpy", b"day")}
    | {b"\xa9" + name for name in (b"dir", b"dis", b"enc", b"ed1", b"gen", b"grp", b"hst")}
    | {b"\xa9" + name for name in (b"inf", b"lyr", b"mak", b"mod", b"nam", b"ope", b"prd")}
    | {b"\xa9" + name for name in (b"prf", b"req", b"src", b"swr", b"too", b"url", b"wrn")}
    | {b"\xa9wrt", b"\xa9xyz"}
)
# Boxes that lead from a movie to its chunk offset tables.
_TO_CHUNK_OFFSETS = frozenset({b"trak", b"mdia", b"minf", b"stbl"})


@attrs.frozen
class MovieExtras:
    """What of a clip's metadata ffmpeg does not carry and is copied after the
    encode: top-level boxes (the XMP ``uuid`` box of an MP4) and ``moov/udta``
    items (QuickTime's ``XMP_``, ``©des``, ``dscp``…), whole; and what cannot
    be copied, named for the ``dropped`` lineage tag."""

    top: tuple[bytes, ...] = ()
    user_data: tuple[bytes, ...] = ()
    uncarried: tuple[str, ...] = ()
    #: Why the clip cannot be carried whole at all (bytes after its last
    #: box, which nothing names): it is kept as it is.
    trailing: str | None = None


def read_movie_extras(path: Path) -> MovieExtras:
    """The metadata of the clip at ``path`` that a re-encode by ffmpeg loses."""
    top: list[bytes] = []
    user_data: list[bytes] = []
    uncarried: list[str] = []
    with open(open_to_read(path), "rb") as f:
        boxes, tail = _movie_layout(f)
        trailing = _trailing(f, tail)
        for kind, start, header, end in boxes:
            if kind == b"uuid":
                f.seek(start)
                box = f.read(end - start)
                if box[header : header + 16] == XMP_UUID:
                    top.append(box)
                else:
                    uncarried.append(f"box 'uuid' {box[header : header + 16].hex()}")
            elif kind == b"moov":
                f.seek(start)
                moov = f.read(end - start)
                udta = next((b for b in _spans(moov, header, len(moov)) if b[0] == b"udta"), None)
                for item, at, s, e in _spans(moov, udta[2], udta[3]) if udta else ():
                    if item == b"meta":
                        uncarried += _unread_items(moov, s, e, path)
                    else:
                        user_data.append(moov[at:e])
            elif kind not in _MOVIE_BOXES:
                uncarried.append(f"box {kind.decode('latin-1')!r}")
    return MovieExtras(
        top=tuple(top), user_data=tuple(user_data), uncarried=_counted(uncarried), trailing=trailing
    )


def _movie_layout(f: BinaryIO) -> tuple[list[tuple[bytes, int, int, int]], int | None]:
    """The whole top-level boxes of an open clip, as ``_file_boxes`` gives
    them, and where the bytes that are not one begin (a box running past the
    end, or no box at all: a type that is no four printable characters), or
    None."""
    size = os.fstat(f.fileno()).st_size
    boxes: list[tuple[bytes, int, int, int]] = []
    for box in _file_boxes(f):
        kind, pos, _, _ = box
        if not _is_box_type(kind):
            return boxes, pos
        boxes.append(box)
    end = boxes[-1][3] if boxes else 0
    return boxes, (end if end < size else None)


def _trailing(f: BinaryIO, tail: int | None) -> str | None:
    """Why the bytes from ``tail`` on cannot be carried, or None: a movie's
    own box cut short (its media data, its index) is for the decoder to
    judge, anything else would be dropped without a name."""
    if tail is None:
        return None
    size = os.fstat(f.fileno()).st_size
    f.seek(tail + 4)
    if f.read(4) in _MOVIE_BOXES:
        return None
    return (
        f"{size - tail} bytes follow its last box (a maker's trailer, or a box cut "
        "short); a re-encode would drop them"
    )


def _counted(names: list[str]) -> tuple[str, ...]:
    """Each name once, in order, with how many times it came when more than
    once (a clip of thousands of ``emsg`` boxes names them in a few words)."""
    seen = Counter(names)
    return tuple(n if seen[n] == 1 else f"{n} (x{seen[n]})" for n in dict.fromkeys(names))


def write_movie_extras(path: Path, extras: MovieExtras, tags: dict[str, str]) -> None:
    """Put ``extras`` into the clip ffmpeg just wrote at ``path``: the user-data
    items into its ``moov/udta`` (the chunk offsets of every track moved by
    the bytes added when the movie box comes before its data, as
    ``+faststart`` puts it), the top-level boxes after its last box, and
    ``tags`` as QuickTime metadata keys beside those ffmpeg wrote (known to
    be absent there). Raises MediaError when the file is not one that can
    take them."""
    if not extras.top and not extras.user_data and not tags:
        return
    with open(path, "rb") as f:
        boxes = list(_file_boxes(f))
        moovs = [b for b in boxes if b[0] == b"moov"]
        if len(moovs) != 1 or any(e <= s for _, s, _, e in boxes):
            raise MediaError(f"{path}: the encoder's output has no single movie box")
        _, start, header, end = moovs[0]
        f.seek(start)
        moov = f.read(end - start)
        new_moov = _with_tags(_with_user_data(moov, header, extras.user_data, path), tags, path)
        delta = len(new_moov) - len(moov)
        if delta:
            _shift_chunk_offsets(new_moov, header, end, delta, path)
        spare = path.with_name(path.name + ".meta")
        try:
            with open(spare, "wb") as out:
                f.seek(0)
                _copy(f, out, start)
                out.write(new_moov)
                f.seek(end)
                shutil.copyfileobj(f, out, 1 << 20)
                for box in extras.top:
                    out.write(box)
            os.replace(spare, path)
        finally:
            spare.unlink(missing_ok=True)


def _file_boxes(f: BinaryIO) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, start, header length, end) of each top-level box of an open file;
    a box declared to run to the end of the file ends there."""
    size = os.fstat(f.fileno()).st_size
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        length, kind, header = int.from_bytes(head[0:4], "big"), head[4:8], 8
        if length == 1 and len(head) == 16:
            length, header = int.from_bytes(head[8:16], "big"), 16
        elif length == 0:
            length = size - pos
        if length < header or pos + length > size:
            return
        yield kind, pos, header, pos + length
        pos += length


def _spans(data: bytes | bytearray, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box in data[start:end]."""
    out = []
    for kind, payload, box_end in _boxes(data, start, end, "movie"):
        out.append((kind, start, payload, box_end))
        start = box_end
    return out


def _unread_items(moov: bytes, start: int, end: int, name: object) -> list[str]:
    """The items of a ``udta/meta`` item list that ffmpeg does not read (it
    writes its own ``udta/meta``, so this one cannot be copied beside it)."""
    # meta is a full box in MP4 (version and flags before its children), a
    # plain one in QuickTime: its children start where a known box type does.
    offset = 4 if moov[start + 8 : start + 12] in (b"hdlr", b"keys", b"ilst") else 0
    children = _boxes(moov, start + offset, end, name)
    ilst = next((b for b in children if b[0] == b"ilst"), None)
    if ilst is None:
        return []
    # An item named by the index of a key (Apple's, ffmpeg's own: 1, 2…) is
    # read whatever its key; one named by four letters only if ffmpeg knows them.
    return [
        f"user data item {kind.decode('latin-1')!r}"
        for kind, _, _ in _boxes(moov, ilst[1], ilst[2], name)
        if kind not in _FFMPEG_READS and kind[0] != 0
    ]


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _with_user_data(moov: bytes, header: int, items: tuple[bytes, ...], name: object) -> bytearray:
    """``moov`` with ``items`` (the original's) in its ``udta`` (made when it
    has none): an item of a type the encoder wrote too is the original's
    (its ©swr is the camera's firmware, the encoder's is ffmpeg's)."""
    if header != 8:
        raise MediaError(f"{name}: the encoder's movie box has a 64-bit size")
    if not items:
        return bytearray(moov)
    ours = {item[4:8] for item in items}
    added = b"".join(items)
    udta = next((b for b in _spans(moov, header, len(moov)) if b[0] == b"udta"), None)
    if udta is None:
        body = moov[header:] + _box(b"udta", added)
    else:
        _, at, payload, end = udta
        kept = b"".join(
            moov[s:e] for kind, s, _, e in _spans(moov, payload, end) if kind not in ours
        )
        body = moov[header:at] + _box(b"udta", kept + added) + moov[end:]
    return bytearray(_box(b"moov", body))


def _with_tags(movie: bytearray, tags: dict[str, str], name: object) -> bytearray:
    """``moov`` with ``tags`` added to its QuickTime metadata keys
    (``udta/meta`` with its ``keys`` and ``ilst``, as ffmpeg writes them with
    ``use_metadata_tags``): each key appended to ``keys``, its value a UTF-8
    ``data`` item in ``ilst`` named by the key's index (QuickTime File
    Format, Metadata)."""
    if not tags:
        return movie
    moov = bytes(movie)
    udta = next((b for b in _spans(moov, 8, len(moov)) if b[0] == b"udta"), None)
    if udta is None:
        raise MediaError(f"{name}: the encoder's output has no user data box")
    _, udta_at, udta_payload, udta_end = udta
    meta = next((b for b in _spans(moov, udta_payload, udta_end) if b[0] == b"meta"), None)
    if meta is None:
        raise MediaError(f"{name}: the encoder's output has no metadata keys")
    _, meta_at, meta_payload, meta_end = meta
    # A full box as ffmpeg writes it (version and flags first), or a plain one.
    offset = 4 if moov[meta_payload + 8 : meta_payload + 12] in (b"hdlr", b"keys", b"ilst") else 0
    children = _spans(moov, meta_payload + offset, meta_end)
    keys = next((b for b in children if b[0] == b"keys"), None)
    if keys is None or not any(b[0] == b"ilst" for b in children):
        raise MediaError(f"{name}: the encoder's output has no metadata keys")
    count = int.from_bytes(moov[keys[2] + 4 : keys[2] + 8], "big")
    new_keys = b"".join(
        (8 + len(key.encode())).to_bytes(4, "big") + b"mdta" + key.encode() for key in tags
    )
    # Type 1: UTF-8 text; locale 0: any.
    new_items = b"".join(
        _box((count + i).to_bytes(4, "big"), _box(b"data", b"\0\0\0\x01\0\0\0\0" + value.encode()))
        for i, value in enumerate(tags.values(), start=1)
    )
    body = bytes(moov[meta_payload : meta_payload + offset])
    for kind, at, payload, end in children:
        if kind == b"keys":
            head = moov[payload : payload + 4] + (count + len(tags)).to_bytes(4, "big")
            body += _box(b"keys", head + moov[payload + 8 : end] + new_keys)
        elif kind == b"ilst":
            body += _box(b"ilst", moov[payload:end] + new_items)
        else:
            body += moov[at:end]
    meta_box = _box(b"meta", body)
    udta_box = _box(b"udta", moov[udta_payload:meta_at] + meta_box + moov[meta_end:udta_end])
    return bytearray(_box(b"moov", moov[8:udta_at] + udta_box + moov[udta_end:]))


def _shift_chunk_offsets(
    moov: bytearray, header: int, old_end: int, delta: int, name: object
) -> None:
    """Move every chunk offset past the old movie box's end by ``delta``
    (the media data after the movie box moved that far)."""

    def walk(start: int, end: int) -> None:
        for kind, s, e in _boxes(moov, start, end, name):
            if kind in _TO_CHUNK_OFFSETS:
                walk(s, e)
            elif kind in (b"stco", b"co64"):
                width = 4 if kind == b"stco" else 8
                count = int.from_bytes(moov[s + 4 : s + 8], "big")
                for i in range(s + 8, min(e, s + 8 + count * width), width):
                    value = int.from_bytes(moov[i : i + width], "big")
                    if value >= old_end:
                        value += delta
                        if value >= 1 << (8 * width):
                            raise MediaError(f"{name}: a chunk offset passes 4 GB")
                        moov[i : i + width] = value.to_bytes(width, "big")

    walk(header, len(moov))


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    while length > 0:
        chunk = src.read(min(length, 1 << 20))
        if not chunk:
            raise MediaError("the encoder's output changed while it was read")
        dst.write(chunk)
        length -= len(chunk)
