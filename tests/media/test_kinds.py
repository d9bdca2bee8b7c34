"""Which files are stills or videos, by name and by their first bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import MediaError
from reconciler.media import media_kind
from reconciler.media.kinds import read_kind, sniff_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("IMG_0001.JPG", "jpeg"),
        ("a.jpeg", "jpeg"),
        ("dir.v2/IMG_0002.HEIC", "heic"),
        ("x.heif", "heic"),
        ("IMG_0003.MOV", "video"),
        ("clip.mp4", "video"),
        ("clip.M4V", "video"),
        ("shot.png", "other"),
        ("notes.txt", "other"),
        ("jpg", "other"),
        ("archive.jpg.gz", "other"),
        ("", "other"),
    ],
)
def test_media_kind_by_extension(name: str, kind: str) -> None:
    assert media_kind(name) == kind


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe1\x00\x10Exif", "jpeg"),
        (_ftyp(b"heic", b"mif1", b"heic"), "heic"),
        (_ftyp(b"mif1", b"heic"), "heic"),
        (_ftyp(b"avif", b"mif1", b"miaf"), "other"),
        (_ftyp(b"mif1", b"avif"), "other"),
        (_ftyp(b"qt  ", b"qt  "), "video"),
        (_ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "video"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "other"),
        (b"hello", "other"),
    ],
)
def test_sniff_kind_by_content(head: bytes, kind: str) -> None:
    assert sniff_kind(head) == kind


def test_read_kind_refuses_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.heic"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.heic: empty file$"):
        read_kind(empty)
    with pytest.raises(MediaError, match=r"gone\.jpg: cannot read: "):
        read_kind(tmp_path / "gone.jpg")
