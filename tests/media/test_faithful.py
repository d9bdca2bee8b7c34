"""Every case of the corpus through ``encode_file``, each result checked against its
original by ffprobe, pillow-heif and Pillow (tests/media/faithful.py): what is
encoded keeps bit depth, HDR, frame timing, rotation, audio and every segment;
what cannot be carried whole is kept as it is, with the reason; what is
broken is refused as corrupt."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, IptcImagePlugin

from reconciler.errors import MediaError
from reconciler.media import EncodeResult, encode_file, read_lineage

from . import corpus
from .conftest import make_clip, make_heic, make_jpeg
from .faithful import (
    assert_heif_faithful,
    assert_jpeg_faithful,
    assert_video_faithful,
    ffprobe,
    first_frame_side_data,
    frame_times,
)

SHA = "9a" * 32


def _encode(src: Path, dst: Path, *, codec: str = "libx264") -> EncodeResult:
    still = src.suffix.lower() in (".jpg", ".heic", ".heif")
    return encode_file(
        src,
        dst,
        quality=60 if still else None,
        crf=None if still else 32,
        original_sha256=SHA,
        tier="older",
        replaces_size=10**9,
        video_codec=codec,
        heic_preset="ultrafast",
        threads=1,
    )


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


ENCODED: dict[str, Callable[[Path], Path]] = {
    "camera.jpg": make_jpeg,
    "iptc-adobe.jpg": corpus.jpeg_with_iptc,
    "camera.heic": make_heic,
    "rgb-10bit.heic": lambda p: corpus.deep_heif(p, "RGB", 10),
    "rgba-12bit.heic": lambda p: corpus.deep_heif(p, "RGBA", 12),
    "grey-12bit.heic": lambda p: corpus.deep_heif(p, "L", 12),
    "rotated.mov": corpus.rotated_clip,
    "vfr.mp4": corpus.vfr_clip,
    "hlg.mov": lambda p: corpus.hdr_clip(p, "arib-std-b67"),
    "pq.mp4": lambda p: corpus.hdr_clip(p, "smpte2084"),
}


@pytest.fixture(scope="module")
def encoded(corpus_dir: Path) -> Callable[[str], tuple[Path, Path, EncodeResult]]:
    """(original, encoded, result) of a corpus file, each made and encoded once."""
    done: dict[str, tuple[Path, Path, EncodeResult]] = {}

    def get(name: str) -> tuple[Path, Path, EncodeResult]:
        if name not in done:
            src = ENCODED[name](corpus_dir / name)
            before = src.read_bytes()
            dst = corpus_dir / f"{name}.out"
            done[name] = (src, dst, _encode(src, dst))
            assert src.read_bytes() == before
        return done[name]

    return get


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_encoded_files_keep_what_the_original_has(
    encoded: Callable[[str], tuple[Path, Path, EncodeResult]], name: str
) -> None:
    src, dst, result = encoded(name)
    assert result.status == "encoded", result.reason
    assert read_lineage(dst) == (SHA, "older")
    if name.endswith(".jpg"):
        assert_jpeg_faithful(src, dst)
    elif name.endswith(".heic"):
        assert_heif_faithful(src, dst)
    else:
        assert_video_faithful(src, dst)


def test_iptc_survives_as_pillow_reads_it(corpus_dir: Path) -> None:
    src = corpus.jpeg_with_iptc(corpus_dir / "iptc.jpg")
    dst = corpus_dir / "iptc.out"
    assert _encode(src, dst).status == "encoded"
    with Image.open(dst) as im:
        iptc = IptcImagePlugin.getiptcinfo(im)
    assert iptc is not None
    assert iptc[(2, 25)] == [b"tower", b"paris"]
    assert iptc[(2, 120)] == b"Evening light"


def test_rgb_coded_jpeg_gets_a_ycbcr_adobe_segment_and_right_colours(corpus_dir: Path) -> None:
    src = corpus.jpeg_rgb_coded(corpus_dir / "rgb-coded.jpg")
    dst = corpus_dir / "rgb-coded.out"
    assert _encode(src, dst).status == "encoded"
    with Image.open(dst) as out:
        (adobe,) = [p for _, p in out.applist if p.startswith(b"Adobe")]
    assert adobe[11] == 1  # transform: YCbCr, which is what the new data is
    with Image.open(src) as a, Image.open(dst) as b:
        for xy in ((5, 5), (200, 150), (400, 300)):
            assert all(abs(p - q) < 40 for p, q in zip(a.getpixel(xy), b.getpixel(xy), strict=True))


def test_hdr_clips_go_to_10_bit_hevc_whatever_the_configured_codec(
    encoded: Callable[[str], tuple[Path, Path, EncodeResult]],
) -> None:
    _, dst, result = encoded("hlg.mov")  # encoded with video_codec libx264
    assert result.reason.endswith("(crf 32, libx265)")
    (video,) = [s for s in ffprobe(dst, "-show_streams")["streams"] if s["codec_type"] == "video"]
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == (
        "hevc",
        "Main 10",
        "yuv420p10le",
    )
    assert video["color_transfer"] == "arib-std-b67"


def test_hdr10_mastering_metadata_is_carried(
    encoded: Callable[[str], tuple[Path, Path, EncodeResult]],
) -> None:
    src, dst, _ = encoded("pq.mp4")
    kinds = [s["side_data_type"] for s in first_frame_side_data(dst)]
    assert kinds == ["Mastering display metadata", "Content light level metadata"]
    assert first_frame_side_data(dst) == first_frame_side_data(src)


def test_variable_frame_rate_stays_variable(
    encoded: Callable[[str], tuple[Path, Path, EncodeResult]],
) -> None:
    _, dst, _ = encoded("vfr.mp4")
    times = [float(t) for t in frame_times(dst)]
    assert len(times) == 40
    gaps = {round(b - a, 4) for a, b in itertools.pairwise(times)}
    assert len(gaps) > 1  # not a constant rate
    assert max(gaps) > 0.2


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("stereo.mpo.jpg", corpus.mpo, "it holds several images (MPF/MPO)"),
        ("burst.heic", corpus.multi_image_heif, "it holds 3 images (a burst"),
        ("export.jpg", corpus.png_named_jpg, "its content is PNG"),
    ],
)
def test_what_cannot_be_carried_whole_is_kept(
    corpus_dir: Path, name: str, make: Callable[[Path], Path], reason: str
) -> None:
    src = make(corpus_dir / name)
    dst = corpus_dir / f"{name}.out"
    result = _encode(src, dst)
    assert result.status == "kept"
    assert result.reason.startswith(f"kept as it is: {reason}")
    assert not dst.exists()


def test_motion_photo_keeps_its_video(corpus_dir: Path) -> None:
    clip = make_clip(corpus_dir / "motion-part.mp4", rotate=None)
    src = corpus.motion_photo(corpus_dir / "PXL_motion.jpg", clip)
    result = _encode(src, corpus_dir / "motion.out")
    assert result.status == "kept"
    assert result.reason == (
        f"kept as it is: {clip.stat().st_size} bytes follow the image (a Motion Photo's "
        "video or a maker's trailer); a re-encode would drop them"
    )


def test_a_heic_cut_in_half_is_corrupt(corpus_dir: Path) -> None:
    src = corpus.truncated_heic(corpus_dir / "cut.heic")
    # libheif alone decodes it (the missing tiles filled in) and says nothing.
    heif = pillow_heif.open_heif(src)
    heif[0].load()
    with pytest.raises(MediaError, match=r"cut\.heic: truncated or corrupt HEIF: "):
        _encode(src, corpus_dir / "cut.out")
