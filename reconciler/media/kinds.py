"""Which files are JPEG stills, HEIC stills or videos: by name, and by content.

The core decides what to encode from the file name alone (``media_kind``), so
that listing a library never opens a file. The encoder then looks at the first
bytes (``sniff_kind``) because names lie: exports from phones and cloud
services sometimes carry a HEIC under a ``.jpg`` name, and a zero-byte or
half-downloaded file must be refused before a decoder sees it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler.errors import MediaError
from reconciler.hashing import open_to_read
from reconciler.layout import extension

JPEG = "jpeg"
HEIC = "heic"
VIDEO = "video"
OTHER = "other"

_BY_EXTENSION = {
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".heic": HEIC,
    ".heif": HEIC,
    ".mov": VIDEO,
    ".mp4": VIDEO,
    ".m4v": VIDEO,
}

# ISO-BMFF brands of HEVC-coded HEIF images. ``mif1``/``msf1`` are the
# generic HEIF brands, which AVIF files also carry: those are told apart by
# an ``avif``/``avis`` brand further down the ftyp box.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# Top-level boxes that open old QuickTime files written before ftyp existed.
_QUICKTIME_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

#: Enough of a file to tell its kind (``sniff_kind``).
HEAD_BYTES = 64

# XMP properties by which Google and Samsung mark a photo with a video inside
# (Motion Photo 1.0, and the older MicroVideo), and the one way a photo says
# it has none: GCamera:MotionPhoto 0, as an attribute or an element.
_MOTION_MARKS = (b"MotionPhoto", b"MicroVideo")
_NOT_MOTION = re.compile(rb"MotionPhoto\s*(=\s*[\"']\s*0\s*[\"']|>\s*0\s*<)")


#: Every photo or video a library holds, by extension (whether or not we encode it).
STILL_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".heic", ".heif", ".png", ".gif", ".tif", ".tiff", ".webp", ".dng"}
    | {".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"}
)
VIDEO_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v", ".avi", ".3gp", ".mts"})


def is_media(name: str) -> bool:
    """A photo or video (so ``.DS_Store`` or a note beside them is not)."""
    return os.path.splitext(name)[1].lower() in STILL_EXTENSIONS | VIDEO_EXTENSIONS


#: Files operating systems leave beside photos; never a person's.
_JUNK_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})

#: What a disk holds at its top for itself and never anyone's photo:
#: Windows' volume records and its recycle bin, macOS' indexes. A fresh
#: disk holds nothing of the person's beside these (``init-target``), none
#: of it is archived (``is_archivable``), and no walk of any store lists it.
#: Compared as Windows compares names (``$Recycle.Bin``).
DISK_HOUSEKEEPING = frozenset(
    {
        "system volume information",
        "$recycle.bin",
        ".trashes",
        ".spotlight-v100",
        ".fseventsd",
        ".temporaryitems",
        ".ds_store",
    }
)
#: Folders at a disk's top where files wait to be thrown away or were
#: found again (fsck's lost+found, chkdsk's FOUND.000, old Windows' and a
#: NAS's recycle bins, a Synology's snapshots): a copy there is no lasting
#: backup (a target's listing leaves them out: ``is_trash``), but a
#: person's photos may be there (recovered from a card, a folder named
#: "Recycled"): in a source or the library they are archived as any.
TRASH_FOLDERS = frozenset(
    {
        "lost+found",
        "recycler",
        "recycled",
        "#recycle",
        "#snapshot",
        "@recycle",
        "@recently-snapshot",
        "trashbox",  # a Buffalo LinkStation's or TeraStation's
        "network trash folder",  # an AFP (netatalk) share's
    }
)
#: chkdsk's recovered files on FAT and exFAT: FOUND.000, FOUND.001, …
_CHKDSK = re.compile(r"found\.\d{3}", re.IGNORECASE)

#: The first characters of ``DISK_HOUSEKEEPING``'s names that are no hidden
#: file (those are refused as such): the one test most paths pay.
HOUSEKEEPING_HEADS = frozenset("sS$")


def is_housekeeping(name: str) -> bool:
    """Is ``name``, found at the top of a store, the disk's own
    (``DISK_HOUSEKEEPING``)?"""
    return name.lower() in DISK_HOUSEKEEPING


def is_trash(name: str) -> bool:
    """Is ``name``, found at the top of a disk, a folder whose files wait to
    be thrown away or were found again (``TRASH_FOLDERS``, ``FOUND.000``)?"""
    return name.lower() in TRASH_FOLDERS or _CHKDSK.fullmatch(name) is not None


def is_archivable(name: str) -> bool:
    """Any file a person keeps, whatever its type (MPO, DNG, GIF, an unknown
    extension): everything but hidden files (``.DS_Store``, ``._*``
    AppleDouble forks, anything under ``.Trashes/``), Windows' caches, and
    what a disk holds at its top for itself (``DISK_HOUSEKEEPING``:
    ``System Volume Information/``, ``$RECYCLE.BIN/``, ``lost+found/``),
    ``name`` being relative to a store's root (a disk's, often)."""
    # Asked once per file of every store on every run: string methods, no split.
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith(".") or "/." in name:  # also .Trashes/, .Spotlight-V100/
        return False
    if name[:1] in HOUSEKEEPING_HEADS and is_housekeeping(name.partition("/")[0]):
        return False
    base = name.rpartition("/")[2]
    return bool(base) and base.lower() not in _JUNK_NAMES


def media_kind(name: str) -> str:
    """``jpeg``, ``heic``, ``video`` or ``other``, from the file name's extension."""
    return _BY_EXTENSION.get(extension(name).lower(), OTHER)


def sniff_kind(head: bytes) -> str:
    """The kind the first bytes of a file announce, whatever its name says."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    box = head[4:8]
    if box == b"ftyp":
        # ftyp: size(4) 'ftyp' major(4) minor_version(4) compatible brands(4 each)
        size = int.from_bytes(head[0:4], "big")
        end = min(max(size, 16), len(head))
        brands = {head[i : i + 4] for i in range(16, end - 3, 4)} | {head[8:12]}
        if brands & _AVIF_BRANDS:
            return OTHER
        if head[8:12] in _HEIF_BRANDS or (brands & _HEIF_BRANDS and head[8:12] != b"qt  "):
            return HEIC
        return VIDEO
    if box in _QUICKTIME_BOXES:
        return VIDEO
    return OTHER


_OTHER_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def content_name(head: bytes) -> str:
    """What a file that is not JPEG, HEIC or video holds, for messages."""
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return f"ISO media ({head[8:12].decode('latin-1').strip()})"
    return "an unknown format"


def marks_motion_photo(xmp: bytes | None) -> bool:
    """Whether a still's XMP packet says a video is part of it (a Motion Photo)."""
    if not xmp or not any(mark in xmp for mark in _MOTION_MARKS):
        return False
    return _NOT_MOTION.search(xmp) is None


def read_head(path: Path) -> bytes:
    """The first bytes of a file; MediaError for a missing or empty one, or
    one that is not a regular file (a FIFO put in its place would hold the
    read for ever)."""
    try:
        with open(open_to_read(path), "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        raise MediaError(f"{path}: cannot read: {e.strerror or e}") from e
    if not head:
        raise MediaError(f"{path}: empty file")
    return head


def sniff_path(path: Path) -> str:
    """``jpeg``, ``heic``, ``video`` or ``other`` by the file's content, whatever its
    name says (a PNG named ``.jpg`` is ``other``); MediaError if it cannot be read."""
    return sniff_kind(read_head(path))


def read_kind(path: Path) -> str:
    """Sniff a file's kind, refusing missing and empty files with a MediaError."""
    return sniff_kind(read_head(path))


class KeepOriginal(Exception):
    """An encoder cannot carry this file whole (several images, a depth map, a
    Motion Photo's video, Dolby Vision…): the library keeps it as it is.

    Not a MediaError: the file is fine, re-encoding it would lose part of it.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
