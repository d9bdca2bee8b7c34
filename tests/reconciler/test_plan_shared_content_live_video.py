"""A Live Photo's video whose bytes are also a clip of their own (copied out
of the pair, or imported again from another card), both new in one run:
the whole tool, with real ffmpeg. The video is placed as the pair's, beside
its still, and never encoded, whichever item is listed first; the next
plan has nothing to do."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import FOLDER_SOURCE, files_under, make_workspace
from tests.media.conftest import make_clip
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2021, 12, 1, tzinfo=UTC)  # the samples are of 2021-06-01: tier "recent"

CARD = """
[sources.card]
kind = "folder"
path = "card"
"""


@pytest.mark.parametrize(
    ("alone", "removal"),
    [
        ("incoming/a/clip.MOV", False),  # the same source, listed first (a/ before b/)
        ("card/IMG_1.MOV", True),  # another source, listed first
    ],
    ids=["same-source", "other-source"],
)
def test_a_live_photos_video_also_a_clip_alone_is_never_encoded(
    tmp_path: Path, alone: str, removal: bool
) -> None:
    ws = make_workspace(tmp_path, removal=removal, sources=CARD + FOLDER_SOURCE)
    (tmp_path / "card").mkdir()
    (ws.incoming / "b").mkdir(parents=True)
    make_camera_jpeg(ws.incoming / "b" / "IMG_1.JPG")
    video = make_clip(ws.incoming / "b" / "IMG_1.MOV").read_bytes()
    (tmp_path / alone).parent.mkdir(exist_ok=True)
    shutil.copy2(ws.incoming / "b" / "IMG_1.MOV", tmp_path / alone)

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "IMG_1.MOV: copied to 2021/06/01/IMG_1.MOV" in r.out, r.out
    assert "crf" not in r.out, r.out  # the still alone is encoded (q85)
    held = files_under(ws.library)
    videos = {k: v for k, v in held.items() if k.endswith(".MOV")}
    assert videos == {"2021/06/01/IMG_1.MOV": video}, sorted(held)
    assert "2021/06/01/IMG_1.JPG" in held
    for target in ("nas", "usb"):
        assert files_under(ws.target(target))["2021/06/01/IMG_1.MOV"] == video

    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert again.code == 0, again.out + again.err
