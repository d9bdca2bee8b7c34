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


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _qt_text(text: str) -> bytes:
    """A QuickTime user-data text item's payload: length, language, text."""
    data = text.encode()
    return len(data).to_bytes(2, "big") + b"\x15\xc7" + data


def _with_user_data_items(src: Path, dst: Path, items: bytes) -> None:
    """``src`` (its movie box last, its ``udta`` last in it, as ffmpeg
    writes a clip) with ``items`` added to that ``udta``."""
    data = src.read_bytes()
    at = 0
    while data[at + 4 : at + 8] != b"moov":
        at += int.from_bytes(data[at : at + 4], "big")
    moov = data[at:]
    inner = 8
    while moov[inner + 4 : inner + 8] != b"udta":
        inner += int.from_bytes(moov[inner : inner + 4], "big")
    assert inner + int.from_bytes(moov[inner : inner + 4], "big") == len(moov)
    udta = _box(b"udta", moov[inner + 8 :] + items)
    dst.write_bytes(data[:at] + _box(b"moov", moov[8:inner] + udta))


def test_user_data_ffmpeg_folds_into_one_key_is_kept_whole(
    mov_original: Path, tmp_path: Path
) -> None:
    """ffmpeg reads ©aut and ©ART both as "artist" (one is lost) and ©swr as
    "encoder", which it sets to its own: the original's items are copied as
    they are, the camera's firmware over ffmpeg's name for itself."""
    src = tmp_path / "CAM_0001.MOV"
    items = _box(b"\xa9swr", _qt_text("FW Ver1.10"))
    items += _box(b"\xa9aut", _qt_text("Author Name"))
    items += _box(b"\xa9ART", _qt_text("Artist Name"))
    _with_user_data_items(mov_original, src, items)
    dst = tmp_path / ".reconcile-tmp-3.MOV"
    _encode(src, dst)
    after = json.dumps(_exiftool(dst))
    for value in ("FW Ver1.10", "Author Name", "Artist Name"):
        assert value in after, (value, after)
    assert VIDEO_DROPPED_KEY not in probe(dst)["format"]["tags"]


def test_a_fragmented_clips_fragments_are_no_loss(tmp_path: Path) -> None:
    """A fragmented MP4 (a recorder, a browser, OBS): its ``moof`` boxes hold
    the sample tables of the frames the encode carries, nothing dropped."""
    src = tmp_path / "REC_0001.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc2=size=64x64:rate=30", "-t", "1", "-c:v", "libx264"),
            *("-movflags", "frag_keyframe+empty_moov", "-frag_duration", "100000", str(src)),
        ],
        check=True,
    )
    dst = tmp_path / ".reconcile-tmp-4.mp4"
    _encode(src, dst)
    assert VIDEO_DROPPED_KEY not in probe(dst)["format"]["tags"]
    decode = ["ffmpeg", "-v", "error", "-i", str(dst), "-f", "null", "-"]
    assert subprocess.run(decode, capture_output=True, check=True).stderr == b""


def test_thousands_of_boxes_left_out_are_named_in_a_few_words(
    mp4_original: Path, tmp_path: Path
) -> None:
    """Each box left out was one more word of one ffmpeg argument: 20,000
    of them passed Linux's 128 KiB limit for one argument, and the encode
    failed every run ("Argument list too long")."""
    src = tmp_path / "REC_0002.mp4"
    src.write_bytes(mp4_original.read_bytes() + _box(b"emsg", b"") * 20_000)
    dst = tmp_path / ".reconcile-tmp-5.mp4"
    _encode(src, dst)
    assert probe(dst)["format"]["tags"][VIDEO_DROPPED_KEY] == "box 'emsg' (x20000)"
