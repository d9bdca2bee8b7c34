"""encode_file as the applier uses it: in a process pool, with argument checks."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from reconciler.errors import MediaError
from reconciler.media import EncodeResult, encode_file, read_lineage
from reconciler.media.encode import human_size

SHA = "ef" * 32


def test_encode_file_runs_in_a_process_pool(jpeg_original: Path, tmp_path: Path) -> None:
    dst = tmp_path / "pooled.tmp"
    with ProcessPoolExecutor(max_workers=1) as pool:
        result = pool.submit(
            encode_file,
            jpeg_original,
            dst,
            quality=75,
            crf=None,
            original_sha256=SHA,
            tier="medium",
            replaces_size=jpeg_original.stat().st_size,
        ).result()
    assert result.status == "encoded"
    assert read_lineage(dst) == (SHA, "medium")
    assert pickle.loads(pickle.dumps(result)) == result


def test_media_error_crosses_a_process_pool(tmp_path: Path) -> None:
    src = tmp_path / "empty.jpg"
    src.write_bytes(b"")
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            encode_file,
            src,
            tmp_path / "o",
            quality=75,
            crf=None,
            original_sha256=SHA,
            tier="t",
            replaces_size=1,
        )
        with pytest.raises(MediaError, match=r"empty\.jpg: empty file"):
            future.result()


def test_other_content_is_kept_whatever_its_name(tmp_path: Path) -> None:
    # A valid PNG under a .jpg name (an export) is not an error: it stays as it is.
    src = tmp_path / "shot.jpg"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(src, format="PNG")
    result = encode_file(
        src, tmp_path / "o", quality=75, crf=None, original_sha256=SHA, tier="t", replaces_size=1
    )
    assert result == EncodeResult(
        status="kept",
        size=0,
        reason="kept as it is: its content is PNG; only JPEG, HEIC and video are re-encoded",
    )
    assert not (tmp_path / "o").exists()


def test_content_that_does_not_match_the_plan_is_kept(
    jpeg_original: Path, mp4_original: Path, tmp_path: Path
) -> None:
    # The planner picks quality or crf from the name; the content decides.
    still = _encode(jpeg_original, tmp_path / "o", quality=None)
    assert (still.status, still.reason) == (
        "kept",
        "kept as it is: its content is JPEG, but it was planned as a video",
    )
    video = _encode(mp4_original, tmp_path / "o", crf=None)
    assert (video.status, video.reason) == (
        "kept",
        "kept as it is: its content is a video, but it was planned as a still",
    )


def _encode(src: Path, dst: Path, **overrides: object) -> EncodeResult:
    args: dict[str, object] = {
        "quality": 75,
        "crf": 28,
        "original_sha256": SHA,
        "tier": "t",
        "replaces_size": 10**9,
    }
    args.update(overrides)
    return encode_file(src, dst, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("original", "overrides", "message"),
    [
        ("jpeg_original", {"quality": 0}, "a still needs quality 1..100, got 0"),
        ("heic_original", {"quality": 101}, "a still needs quality 1..100, got 101"),
        ("heic_original", {"heic_preset": "turbo"}, "heic_preset must be one of"),
        ("mp4_original", {"crf": 52}, "a video needs crf 0..51, got 52"),
        ("mp4_original", {"video_codec": "vp9"}, "video_codec must be one of"),
        ("jpeg_original", {"original_sha256": "nope"}, "original_sha256 must be 64"),
        ("jpeg_original", {"tier": "a/b"}, "tier must be a short name"),
    ],
)
def test_bad_arguments_are_value_errors(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    original: str,
    overrides: dict[str, object],
    message: str,
) -> None:
    src: Path = request.getfixturevalue(original)
    with pytest.raises(ValueError, match=message):
        _encode(src, tmp_path / "o", **overrides)
    assert not (tmp_path / "o").exists()


def test_dst_must_not_be_src(jpeg_original: Path) -> None:
    with pytest.raises(ValueError, match="dst must differ from src"):
        _encode(jpeg_original, jpeg_original)


def test_encode_result_values() -> None:
    result = EncodeResult(status="encoded", size=1, reason="r")
    with pytest.raises(AttributeError):
        result.size = 2  # type: ignore[misc]
    assert [human_size(n) for n in (999, 4_100_000, 1_234, 2_500_000_000)] == [
        "999 B",
        "4.1 MB",
        "1.2 kB",
        "2.5 GB",
    ]
