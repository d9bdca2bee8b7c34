"""Stills whose coding or metadata is unusual but valid: what every reader
takes whole, the encode must take whole too (or keep the file as it is), and
the lineage it writes must be the lineage it reads back."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pillow_heif
from PIL import Image, JpegImagePlugin

from reconciler.media import encode_file, read_lineage
from reconciler.media.jpeg import XMP_HEADER
from tests.helpers import make_workspace
from tests.media.conftest import XMP, camera_exif, make_jpeg, texture
from tests.media.corpus import with_segments

#: The samples are taken 2021-06-01: at this time they are in the tier "recent".
T1 = datetime(2021, 12, 1, tzinfo=UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _exiftool(*args: str) -> str:
    return subprocess.run(
        ["exiftool", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _encode(src: Path, dst: Path, quality: int = 50) -> str:
    res = encode_file(
        src,
        dst,
        quality=quality,
        crf=None,
        original_sha256="c" * 64,
        tier="archive",
        replaces_size=src.stat().st_size,
        heic_preset="ultrafast",
    )
    return res.status


def _two_xmp_packets(path: Path) -> Path:
    """A camera JPEG with a second XMP packet appended by another program."""
    make_jpeg(path, size=(320, 240))
    return with_segments(path, (0xE1, XMP_HEADER + XMP.replace(b"tower", b"bridge")))


def test_the_lineage_of_a_jpeg_with_two_xmp_packets_is_read_back(tmp_path: Path) -> None:
    """The encoder writes the lineage into the first XMP packet; Pillow's
    ``info["xmp"]`` holds the last. Read back through Pillow, the encoded
    file had no lineage, and after a lost state database it was taken for an
    original and compressed again."""
    src = _two_xmp_packets(tmp_path / "IMG_1.JPG")
    dst = tmp_path / "out.JPG"
    assert _encode(src, dst) == "encoded"
    # an outside reader finds the lineage, and both packets' descriptions
    assert _exiftool("-s3", "-XMP-reconcile:Original_sha256", str(dst)) == "c" * 64
    assert "bridge" in _exiftool("-a", "-s3", "-XMP-dc:Description", str(dst))
    assert read_lineage(dst) == ("c" * 64, "archive")


def test_a_jpeg_with_two_xmp_packets_is_not_archived_again_after_a_lost_state_db(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    original = _two_xmp_packets(ws.incoming / "IMG_1.JPG").read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    encoded = lib.read_bytes()
    assert encoded != original
    shutil.rmtree(ws.root / "state")
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    for t in ("nas", "usb"):
        held = [p.read_bytes() for p in ws.target(t).rglob("*.JPG")]
        assert encoded not in held, (t, r.out)
        assert original in held, (t, r.out)
    assert [p.name for p in ws.library.rglob("*.JPG")] == ["IMG_1.JPG"], r.out


def test_stray_bytes_between_header_segments_are_skipped_as_libjpeg_does(tmp_path: Path) -> None:
    """libjpeg reads past bytes that start no marker ("extraneous bytes
    before marker", a warning) and every viewer shows the photo whole; the
    tool's parse called it corrupt, the run failed and every plan showed an
    error for it."""
    good = make_jpeg(tmp_path / "good.jpg", size=(320, 240)).read_bytes()
    tables = good.find(b"\xff\xdb")
    src = tmp_path / "IMG_2.JPG"
    src.write_bytes(good[:tables] + b"\x00\x00" + good[tables:])
    with Image.open(src) as im:
        im.load()  # Pillow decodes it whole
    dst = tmp_path / "out.JPG"
    assert _encode(src, dst) == "encoded"
    assert read_lineage(dst) == ("c" * 64, "archive")
    # exiftool saw the stray bytes in the original; the encoded file has none
    assert "Skipped unknown 2 bytes" in _exiftool("-a", "-warning", str(src))
    assert "Skipped unknown" not in _exiftool("-a", "-warning", str(dst))


def test_a_lossless_jpeg_is_kept_not_called_undecodable(tmp_path: Path) -> None:
    """A lossless JPEG (SOF3; medical, scientific and some DNG previews) is a
    valid JPEG Pillow cannot decode: kept as it is, with a reason, rather
    than reported as damaged input."""
    src = tmp_path / "IMG_3.JPG"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48"),
            *("-frames:v", "1", "-c:v", "ljpeg", "-strict", "-1", str(src)),
        ],
        check=True,
    )
    assert "Lossless" in _exiftool("-s3", "-EncodingProcess", str(src))
    res = encode_file(
        src, tmp_path / "out.JPG", quality=50, crf=None, original_sha256="c" * 64,
        tier="archive", replaces_size=src.stat().st_size,
    )  # fmt: skip
    assert res.status == "kept"
    assert "lossless" in res.reason


def test_a_444_jpeg_keeps_its_chroma_resolution(tmp_path: Path) -> None:
    """A tier asks for a quality; Pillow's default would also halve the
    colour resolution of a 4:4:4 photo (4:2:0)."""
    for sampling in (0, 1, 2):  # 4:4:4, 4:2:2, 4:2:0
        src = tmp_path / f"IMG_{sampling}.JPG"
        texture((320, 240)).save(src, quality=95, subsampling=sampling, exif=camera_exif(1))
        dst = tmp_path / f"out_{sampling}.JPG"
        assert _encode(src, dst) == "encoded"
        with Image.open(src) as a, Image.open(dst) as b:
            assert JpegImagePlugin.get_sampling(b) == JpegImagePlugin.get_sampling(a) == sampling
        assert _exiftool("-s3", "-YCbCrSubSampling", str(dst)) == _exiftool(
            "-s3", "-YCbCrSubSampling", str(src)
        )


def test_a_heic_with_a_second_xmp_item_is_kept(tmp_path: Path) -> None:
    """libheif gives the encoder one XMP item; a second one (an editor's)
    was dropped from the re-encode without a word."""
    src = tmp_path / "IMG_4.HEIC"
    heif = pillow_heif.from_pillow(texture((320, 240)))
    heif.save(
        src,
        quality=95,
        exif=camera_exif(1).tobytes(),
        xmp=XMP,
        enc_params={"preset": "ultrafast"},
        metadata=[
            {
                "type": "mime",
                "content_type": "application/rdf+xml",
                "data": XMP.replace(b"tower", b"bridge"),
            }
        ],
    )
    assert "bridge" in _exiftool("-a", "-s3", "-XMP-dc:Description", str(src))
    res = encode_file(
        src, tmp_path / "out.HEIC", quality=50, crf=None, original_sha256="c" * 64,
        tier="archive", replaces_size=src.stat().st_size, heic_preset="ultrafast",
    )  # fmt: skip
    assert res.status == "kept"
    assert "application/rdf+xml, application/rdf+xml" in res.reason


def test_a_heic_with_one_xmp_item_is_still_encoded_with_it(tmp_path: Path) -> None:
    """The count holds no more than it must: one Exif and one XMP item are
    what a phone writes, and they are carried."""
    src = tmp_path / "IMG_5.HEIC"
    heif = pillow_heif.from_pillow(texture((320, 240)))
    heif.save(
        src, quality=95, exif=camera_exif(1).tobytes(), xmp=XMP, enc_params={"preset": "ultrafast"}
    )
    dst = tmp_path / "out.HEIC"
    assert _encode(src, dst) == "encoded"
    assert "tower" in _exiftool("-s3", "-XMP-dc:Description", str(dst))
    assert _exiftool("-s3", "-Model", str(dst)) == "iPhone 12"
