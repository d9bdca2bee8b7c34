"""The encoder reads the original it was given, proven by its SHA-256: not
whatever file has its name by the time it reads (a camera's counter reset,
a sync putting a new photo there while the encode waited in the pool or
ffmpeg read a clip for minutes). Bytes of another file are OriginalChanged,
never an encode, a "not worth it", a "kept" or a "cannot decode" of the
original; and a write that fails names the encoded file."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.media import encode_file, isobmff, video
from reconciler.media.files import OriginalChanged
from tests.media import corpus
from tests.media.conftest import make_jpeg

LINEAGE = "ab" * 32


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _encode(src: Path, dst: Path, proven: str, **how: Any) -> Any:
    still = {"quality": 70, "crf": None}
    return encode_file(
        src,
        dst,
        **(how or still),
        original_sha256=LINEAGE,
        tier="t",
        replaces_size=10**9,
        source_sha256=proven,
    )


def _dims(path: Path) -> tuple[int, int]:
    stream = video.video_stream(video.probe(path), path)
    return int(stream["width"]), int(stream["height"])


@pytest.mark.parametrize(
    "took_its_name",
    [
        lambda p: make_jpeg(p, size=(240, 320)),  # the camera's new IMG_0001.JPG
        lambda p: p.write_bytes(b""),  # a sync's file, not written yet
        lambda p: corpus.png_named_jpg(p),  # would be "kept as it is"
    ],
    ids=["another-photo", "empty", "png"],
)
def test_a_still_that_is_not_the_proven_original_is_refused(
    jpeg_original: Path, tmp_path: Path, took_its_name: Any
) -> None:
    proven = _sha(jpeg_original)
    src = tmp_path / "IMG_0001.JPG"
    took_its_name(src)
    dst = tmp_path / "out.JPG"
    with pytest.raises(OriginalChanged, match=r"IMG_0001\.JPG: no longer holds the original's"):
        _encode(src, dst, proven)
    assert not dst.exists()


def test_the_proven_still_is_encoded(jpeg_original: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.JPG"
    assert _encode(jpeg_original, dst, _sha(jpeg_original)).status == "encoded"


def test_a_still_gone_from_its_name_is_refused_not_called_unreadable(tmp_path: Path) -> None:
    with pytest.raises(OriginalChanged, match=r"gone\.JPG: cannot read: No such file"):
        _encode(tmp_path / "gone.JPG", tmp_path / "out.JPG", "cd" * 32)


def _small_clip(path: Path) -> Path:
    args = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i"]
    args += ["testsrc2=size=160x120:rate=30", "-t", "1", "-c:v", "libx264"]
    subprocess.run([*args, "-preset", "ultrafast", str(path)], check=True)
    return path


def _after_the_first_probe(monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """``then()`` once the original was probed, before ffmpeg encodes it."""
    probe = video.probe
    done: list[bool] = []

    def probed(path: Path) -> dict[str, Any]:
        info = probe(path)
        if not done:
            done.append(True)
            then()
        return info

    monkeypatch.setattr(video, "probe", probed)


def test_a_clip_whose_name_is_taken_during_its_encode_is_encoded_from_the_original(
    mov_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = Path(shutil.copy(mov_original, tmp_path / mov_original.name))
    other = _small_clip(tmp_path / "other.MOV")
    _after_the_first_probe(monkeypatch, lambda: os.replace(other, src))
    dst = tmp_path / "out.MOV"
    result = _encode(src, dst, _sha(mov_original), quality=None, crf=30)
    # ffmpeg read the original it was handed, not the 160x120 clip at its name
    assert result.status == "encoded", result.reason
    assert _dims(dst) == (320, 240)
    assert "/proc/" not in result.reason


def test_a_clip_changed_in_place_during_its_encode_is_refused_not_settled(
    mov_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = Path(shutil.copy(mov_original, tmp_path / mov_original.name))

    def overwritten() -> None:
        with open(src, "r+b") as f:  # another program writing into it
            f.seek(src.stat().st_size // 2)
            f.write(b"\xff" * 4096)

    _after_the_first_probe(monkeypatch, overwritten)
    dst = tmp_path / "out.MOV"
    with pytest.raises(OriginalChanged, match=r"IMG_0003\.MOV: no longer holds"):
        _encode(src, dst, _sha(mov_original), quality=None, crf=30)
    assert not dst.exists()


def test_a_still_on_a_full_disk_names_the_file_being_written(
    jpeg_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as os.write: no file named

    monkeypatch.setattr(os, "write", full)
    dst = tmp_path / "out.JPG"
    with pytest.raises(OSError) as raised:
        _encode(jpeg_original, dst, _sha(jpeg_original))
    assert (raised.value.filename, raised.value.strerror) == (str(dst), "No space left on device")
    assert not dst.exists()


def test_a_clip_on_a_full_disk_names_the_file_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = corpus.clip_with_cover(tmp_path / "VID.mp4")  # its output gets a "dropped" tag

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a file's write: no name

    monkeypatch.setattr(isobmff.shutil, "copyfileobj", full)
    dst = tmp_path / "out.mp4"
    with pytest.raises(OSError) as raised:
        _encode(src, dst, _sha(src), quality=None, crf=30)
    assert (raised.value.filename, raised.value.strerror) == (str(dst), "No space left on device")
    assert not dst.exists()
