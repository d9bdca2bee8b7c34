"""One rule says a video is a Live Photo's by name: a still of its pairing
stem (its path without extension, case and collision tag aside) in the same
listing or the same library folder. The folder source, the census and the
planner all go by it; and the planner by where the video is or goes in the
library, whichever run its still came in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.census.items import stem
from reconciler.layout import pairing_stem
from reconciler.model import (
    CopyToLibrary,
    EncodeForTier,
    LibraryFile,
    MediaFile,
    SourceItem,
)
from reconciler.plan import plan
from tests.providers.test_folder_pairs import _items
from tests.reconciler.test_plan import NOW, desired
from tests.reconciler.test_plan_library_items import TIERS, WHEN, lib, world

STILL, VIDEO, OTHER = "3" * 64, "5" * 64, "7" * 64


@pytest.mark.parametrize(
    ("still", "video", "paired"),
    [
        ("IMG_1.JPG", "IMG_1.MOV", True),
        ("IMG_1.JPG", "img_1.MOV", True),
        ("img_1.heic", "IMG_1.mp4", True),
        ("Caf\u00e9.JPG", "Cafe\u0301.MOV", True),  # the same name, composed and not
        ("IMG_1.JPG", "IMG_2.MOV", False),
        ("IMG_1.JPG", "IMG_1 .MOV", False),
    ],
)
def test_the_folder_the_census_and_the_planner_pair_alike(
    tmp_path: Path, still: str, video: str, paired: bool
) -> None:
    got = _items(tmp_path, [still, video])
    assert (len(got) == 1) is paired
    assert (stem(f"2021/01/02/{still}") == stem(f"2021/01/02/{video}")) is paired
    assert (pairing_stem(f"d/{still}") == pairing_stem(f"d/{video}")) is paired
    # A collision tag is set aside only when it is the file's own.
    tagged = f"d/IMG_1~{VIDEO[:10]}.MOV"
    assert pairing_stem(tagged, VIDEO) == pairing_stem("d/img_1.JPG", STILL)
    assert pairing_stem(tagged, OTHER) != pairing_stem("d/img_1.JPG", STILL)


def test_with_two_jpegs_alike_the_video_goes_with_the_first_by_name(tmp_path: Path) -> None:
    got = _items(
        tmp_path,
        [
            "a/IMG_1.JPG",
            "a/IMG_1.jpeg",
            "a/IMG_1.MOV",
            "b/img_2.jpeg",
            "b/IMG_2.jpg",
            "b/IMG_2.MOV",
        ],
    )
    assert got == {
        "a/IMG_1.JPG": [("a/IMG_1.JPG", "original"), ("a/IMG_1.MOV", "live_video")],
        "a/IMG_1.jpeg": [("a/IMG_1.jpeg", "original")],
        "b/IMG_2.jpg": [("b/IMG_2.jpg", "original"), ("b/IMG_2.MOV", "live_video")],
        "b/img_2.jpeg": [("b/img_2.jpeg", "original")],
    }


def _card(*names: tuple[str, str]) -> tuple[SourceItem, ...]:
    """One item per (name, sha256) on the card, each alone."""
    return tuple(
        SourceItem(
            source_id="card",
            key=name,
            files=(MediaFile(name=name, size=9, ref=name, sha256=sha),),
            captured_at=WHEN,
        )
        for name, sha in names
    )


def _planned(
    files: tuple[LibraryFile, ...],
    items: tuple[SourceItem, ...],
    *,
    archived: tuple[str, ...] = (),
    tombstones: dict[tuple[str, str], frozenset[str]] | None = None,
) -> tuple[dict[str | None, str], dict[str | None, str]]:
    """(the role each content is placed in the library with, the tier each
    is encoded for)."""
    w = world(files, items=items, archived=archived, tombstones=tombstones)
    p = plan(desired(tiers=TIERS), w, NOW)
    placed = {a.sha256: a.role for a in p.actions if isinstance(a, CopyToLibrary)}
    return placed, {a.sha256: a.tier for a in p.actions if isinstance(a, EncodeForTier)}


def test_a_video_coming_after_its_still_is_placed_as_its_live_video() -> None:
    """The still left the source in an earlier run: the library holds it,
    where the video goes (its case unlike the video's)."""
    placed, encoded = _planned((lib("2021/01/02/img_1.jpg", STILL),), _card(("IMG_1.MOV", VIDEO)))
    assert (placed, encoded) == ({VIDEO: "live_video"}, {STILL: "older"})


def test_a_video_compressed_as_a_clip_goes_back_once_its_still_comes() -> None:
    """The video came first, alone, and was encoded and removed (its record:
    a video removed alone); its still comes now: the library's clip is put
    back as its original (an encode for tier "original")."""
    clip = lib("2021/01/02/IMG_1.MOV", OTHER, VIDEO, "recent")
    alone = {("card", "IMG_1.MOV"): frozenset({VIDEO})}
    for files, items in (
        ((clip,), _card(("IMG_1.JPG", STILL))),  # the still placed this run
        ((clip, lib("2021/01/02/IMG_1.JPG", STILL)), ()),  # placed before, removed alone
    ):
        _, encoded = _planned(files, items, archived=(VIDEO, STILL), tombstones=alone)
        assert encoded[VIDEO] == "original"


def test_a_video_the_folder_left_alone_beside_stills_of_its_name_is_not_encoded() -> None:
    """Two stills no phone writes (a DNG and a TIFF): the folder cannot tell
    which the video goes with, and lists it alone; it is kept as it is."""
    items = _card(("IMG_1.DNG", STILL), ("IMG_1.TIF", OTHER), ("IMG_1.MOV", VIDEO))
    placed, encoded = _planned((), items)
    assert placed[VIDEO] == "live_video"
    assert VIDEO not in encoded


def test_a_clip_of_another_name_or_day_is_still_encoded() -> None:
    files = (lib("2021/01/02/IMG_1.JPG", STILL),)
    other_day = SourceItem(
        source_id="card",
        key="IMG_1.MOV",
        files=(MediaFile(name="IMG_1.MOV", size=9, ref="IMG_1.MOV", sha256=OTHER),),
        captured_at=datetime(2021, 1, 3, tzinfo=UTC),
    )
    placed, encoded = _planned(files, (*_card(("IMG_2.MOV", VIDEO)), other_day))
    assert placed == {VIDEO: "original", OTHER: "original"}
    assert encoded.keys() >= {VIDEO, OTHER}
