"""Content of another kind than its name says is kept as it is.

The planner picks a tier's setting by the name (``plan.encoding_for``): a
HEIC named ``.jpg`` is given the tier's JPEG quality, even in a tier that
sets no ``heic_quality`` (HEICs stay as they are there). The encoder, which
reads the content, keeps such a file rather than apply a setting meant for
another kind. Every pair of the kinds it encodes, with the setting the
planner gives the name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.media import EncodeResult, encode_file

SHA = "ab" * 32

# (fixture of the content, name it is given, what the name says)
MISNAMED = [
    ("jpeg_original", "IMG.HEIC", "HEIC"),
    ("jpeg_original", "IMG.heif", "HEIC"),
    ("jpeg_original", "IMG.MOV", "a video"),
    ("jpeg_original", "IMG.mp4", "a video"),
    ("heic_original", "IMG.jpg", "JPEG"),
    ("heic_original", "IMG.JPEG", "JPEG"),
    ("heic_original", "IMG.MOV", "a video"),
    ("heic_original", "IMG.m4v", "a video"),
    ("mov_original", "IMG.JPG", "JPEG"),
    ("mov_original", "IMG.HEIC", "HEIC"),
    ("mp4_original", "IMG.jpeg", "JPEG"),
    ("mp4_original", "IMG.heif", "HEIC"),
]
CONTENT = {
    "jpeg_original": "JPEG",
    "heic_original": "HEIC",
    "mov_original": "a video",
    "mp4_original": "a video",
}


@pytest.mark.parametrize(("original", "name", "says"), MISNAMED)
def test_content_unlike_its_name_is_kept_as_it_is(
    request: pytest.FixtureRequest, tmp_path: Path, original: str, name: str, says: str
) -> None:
    src = tmp_path / name
    shutil.copyfile(request.getfixturevalue(original), src)
    video = says == "a video"
    dst = tmp_path / "out"
    result = encode_file(
        src,
        dst,
        quality=None if video else 85,
        crf=26 if video else None,
        original_sha256=SHA,
        tier="recent",
        replaces_size=10**9,
        heic_preset="ultrafast",
    )
    assert result == EncodeResult(
        status="kept",
        size=0,
        reason=(
            f"kept as it is: its content is {CONTENT[original]}, but its name says {says} "
            "(the tier's setting was chosen for that); rename it to encode it"
        ),
    )
    assert not dst.exists()


def test_an_original_fetched_under_no_name_is_judged_by_the_library_name(
    heic_original: Path, tmp_path: Path
) -> None:
    # A backup fetched to a temporary file ("original") has no extension;
    # the temporary output keeps the library file's (.jpg here).
    src = tmp_path / "original"
    shutil.copyfile(heic_original, src)
    result = encode_file(
        src,
        tmp_path / ".reconcile-tmp-1.jpg",
        quality=85,
        crf=None,
        original_sha256=SHA,
        tier="recent",
        replaces_size=10**9,
    )
    assert (result.status, result.reason.split(",")[0]) == (
        "kept",
        "kept as it is: its content is HEIC",
    )


@pytest.mark.parametrize("original", ["jpeg_original", "heic_original"])
def test_a_still_named_for_its_kind_is_encoded(
    request: pytest.FixtureRequest, tmp_path: Path, original: str
) -> None:
    src: Path = request.getfixturevalue(original)
    result = encode_file(
        src,
        tmp_path / "out",
        quality=40,
        crf=None,
        original_sha256=SHA,
        tier="t",
        replaces_size=10**9,
        heic_preset="ultrafast",
    )
    assert result.status == "encoded", result.reason
