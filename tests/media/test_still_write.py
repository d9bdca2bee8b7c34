"""How encode_file puts a still on disk: whole and fsynced before it says
``encoded`` (DESIGN: written, fsynced, then renamed over the original), and
nothing left behind when the output fails its check or the disk fails."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from reconciler.media import encode, encode_file
from reconciler.media.still import encode_jpeg

SHA = "cd" * 32


def _encode(src: Path, dst: Path) -> encode.EncodeResult:
    return encode_file(
        src, dst, quality=70, crf=None, original_sha256=SHA, tier="t", replaces_size=10**9
    )


def test_a_still_is_whole_on_disk_when_it_is_fsynced(
    jpeg_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = os.fsync
    synced: list[tuple[str, bytes]] = []

    def recording_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((path, Path(path).read_bytes()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    dst = tmp_path / "out.tmp"
    result = _encode(jpeg_original, dst)
    assert result.status == "encoded"
    expected = encode_jpeg(jpeg_original, quality=70, original_sha256=SHA, tier="t").data
    assert synced == [(str(dst), expected)]
    assert dst.read_bytes() == expected
    assert result.size == len(expected)


def test_short_writes_still_make_the_whole_file(
    jpeg_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole.tmp"
    assert _encode(jpeg_original, whole).status == "encoded"
    write = os.write
    # A write may take fewer bytes than asked (a signal, a pipe-like target).
    monkeypatch.setattr(os, "write", lambda fd, data: write(fd, bytes(data[:1000])))
    pieces = tmp_path / "pieces.tmp"
    assert _encode(jpeg_original, pieces).status == "encoded"
    assert pieces.read_bytes() == whole.read_bytes()


def test_a_full_disk_leaves_no_file(
    jpeg_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        write(fd, bytes(data[:512]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    dst = tmp_path / "out.tmp"
    with pytest.raises(OSError, match="No space left on device"):
        _encode(jpeg_original, dst)
    assert not dst.exists()


def test_an_output_that_fails_its_check_leaves_no_file(
    jpeg_original: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    monkeypatch.setattr(encode, "check_jpeg", lambda data, out: "output is broken")
    dst = tmp_path / "stale.tmp"
    dst.write_bytes(b"left over from a crashed run")
    result = _encode(jpeg_original, dst)
    assert result == encode.EncodeResult(
        status="not_worth", size=0, reason="output is broken (q70)"
    )
    assert not dst.exists()
    assert synced == []
