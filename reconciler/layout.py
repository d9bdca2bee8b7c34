"""Where a file lives in the library and on targets: pure path arithmetic.

Layout is ``YYYY/MM/DD/<name>`` by capture date (``undated/<name>`` when the
date is unknown). Names from a source are untrusted: they are reduced to one
safe path component (no separators, no NUL, no ``..``, NFC, at most 200
bytes), so nothing escapes the root. Two different files that want the same
name both survive: the second gets ``<stem>~<sha256[:10]><ext>``.

The name is also one that every kind of disk a backup lands on can hold:
exFAT and FAT (USB disks), SMB shares, a phone's shared storage. Those
refuse ``\\ : * ? " < > |``, a name ending in a dot or a space, and
Windows' device names (``CON``, ``AUX``, ``COM1``...): such a name is
changed (``_``), or a target would refuse the copy on every run. Those
disks also tell names apart by neither case nor Unicode form:
``name_key`` is the name as they compare it.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from datetime import UTC, datetime

MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
#: Names Windows keeps for devices, whatever follows their first dot.
_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{k}{i}" for k in ("COM", "LPT") for i in range(1, 10)]
)


def safe_name(name: str) -> str:
    """One path component derived from an untrusted file name."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip().lstrip(".").rstrip(". ")
    if not name:
        name = "unnamed"
    if name.split(".", 1)[0].rstrip(" ").upper() in _DEVICES:
        name = "_" + name
    stem, ext = posixpath.splitext(name)
    if len(ext.encode()) > 16:
        stem, ext = name, ""
    while len((stem + ext).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem.rstrip(". ") or "unnamed") + ext


def name_key(name: str) -> str:
    """``name`` as a disk that ignores case and Unicode form compares it
    (exFAT, SMB, a phone's storage): two names with one key are one file there."""
    return unicodedata.normalize("NFC", name).casefold()


def extension(name: str) -> str:
    """``os.path.splitext(name)[1]`` for a ``/``-separated name, without its
    general machinery: the planner asks this for every file of the library.
    As there, a name of only leading dots (``.DS_Store``) has no extension."""
    dot = name.rfind(".")
    start = name.rfind("/") + 1
    if dot > start and (name[start] != "." or name[start:dot].strip(".")):
        return name[dot:]
    return ""


def pairing_stem(path: str, original_sha256: str = "") -> str:
    """What makes a still and a video one Live Photo, by name: the path
    without its extension and, given the file's original, its collision tag
    (``collision_path``), compared as a disk that ignores case compares
    names (``name_key``): ``IMG_1.JPG`` pairs with ``img_1.MOV``. The one
    rule of the folder source's pairs, the planner's Live videos in the
    library and the census's items."""
    stem = path[: len(path) - len(extension(path))]
    tag = f"~{original_sha256[:10]}"
    if original_sha256 and stem.endswith(tag):
        stem = stem[: -len(tag)]
    return name_key(stem)


def dated_path(captured_at: datetime | None, name: str) -> str:
    """The relative path an item's file should have."""
    if captured_at is None:
        return f"undated/{safe_name(name)}"
    d = captured_at.astimezone(UTC)
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}/{safe_name(name)}"


def collision_path(rel_path: str, sha256: str) -> str:
    """The alternative path for a file whose preferred path is taken."""
    head, name = posixpath.split(rel_path)
    stem, ext = posixpath.splitext(name)
    tag = f"~{sha256[:10]}"
    while len((stem + tag + ext).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return posixpath.join(head, f"{stem}{tag}{ext}")


def is_inside(rel_path: str) -> bool:
    """True when a relative path stays inside its root."""
    norm = posixpath.normpath(rel_path)
    return not (norm.startswith("../") or norm == ".." or posixpath.isabs(norm))


_DATED = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/")


def date_from_path(rel_path: str) -> datetime | None:
    """The capture date a library path was laid out by (None: undated)."""
    m = _DATED.match(rel_path)
    if not m:
        return None
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    except ValueError:
        return None
