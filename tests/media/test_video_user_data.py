"""A clip's XMP and QuickTime user data survive its encode.

Lightroom, digiKam, Premiere and exiftool keep a clip's description, rating
and keywords in XMP: a top-level ``uuid`` box in an MP4, ``moov/udta/XMP_``
in a QuickTime file. ffmpeg carries neither, nor user-data items it has no
tag for (``dscp``); they are copied into its output. What cannot be (an item
list's ``©des``, beside the one ffmpeg writes) is named in
``org.reconcile.dropped``. exiftool reads the result, ffprobe and ffmpeg
read and decode it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.media import encode_file
from reconciler.media.lineage import VIDEO_DROPPED_KEY
from reconciler.media.video import probe

SHA = "cd" * 32


def _tag(path: Path, *args: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args, str(path)], check=True)


def _exiftool(path: Path) -> dict[str, object]:
    args = ["exiftool", "-j", "-G1", "-a", "-XMP:all", "-UserData:all", str(path)]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)[0]


def _encode(src: Path, dst: Path) -> None:
    result = encode_file(
        src, dst, quality=None, crf=30, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded", result.reason


@pytest.mark.parametrize("original", ["mov_original", "mp4_original"])
def test_xmp_and_user_data_are_carried_into_the_encoded_clip(
    request: pytest.FixtureRequest, tmp_path: Path, original: str
) -> None:
    src = tmp_path / Path(request.getfixturevalue(original)).name
    shutil.copyfile(request.getfixturevalue(original), src)
    _tag(
        src,
        "-XMP-dc:Description=the tower at night",
        "-XMP-dc:Subject=Paris",
        "-XMP-xmp:Rating=5",
        "-UserData:Description=udta description",
    )
    dst = tmp_path / f".reconcile-tmp-1{src.suffix}"
    _encode(src, dst)
    after = _exiftool(dst)
    assert after.get("XMP-dc:Description") == "the tower at night", after
    assert after.get("XMP-dc:Subject") == "Paris", after
    assert after.get("XMP-xmp:Rating") == 5, after
    assert after.get("UserData:Description") == "udta description", after
    # Still a valid file that reads back and decodes, with its lineage.
    valid = subprocess.run(
        ["exiftool", "-validate", "-warning", "-a", "-s3", str(dst)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert valid.strip() == "OK", valid
    tags = probe(dst)["format"]["tags"]
    assert tags["org.reconcile.original_sha256"] == SHA
    assert VIDEO_DROPPED_KEY not in tags
    decode = ["ffmpeg", "-v", "error", "-i", str(dst), "-f", "null", "-"]
    assert subprocess.run(decode, capture_output=True, check=True).stderr == b""


def test_what_cannot_be_carried_is_named_in_dropped(mov_original: Path, tmp_path: Path) -> None:
    # exiftool writes QuickTime:Description into the item list of udta/meta;
    # ffmpeg writes its own udta/meta there, so the item cannot go beside it.
    src = tmp_path / "IMG_1.MOV"
    shutil.copyfile(mov_original, src)
    _tag(src, "-ItemList:Description=item list description", "-XMP-dc:Title=kept")
    dst = tmp_path / ".reconcile-tmp-2.MOV"
    _encode(src, dst)
    assert probe(dst)["format"]["tags"][VIDEO_DROPPED_KEY] == "user data item '©des'"
    assert _exiftool(dst).get("XMP-dc:Title") == "kept"
