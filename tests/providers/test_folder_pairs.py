"""A folder source pairs a still with a same-stem video (a Live Photo as the
Photos app exports it) and lists everything else alone: names whose case
differs, a video sorted before its still, two stills alike or two videos
beside a still, a name without an extension, and the same name in two
folders. (A pair with sidecars or a second still beside it:
test_folder_live_sidecars.py.)"""

from __future__ import annotations

from pathlib import Path

from providers.folder import FolderSource
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB


def _items(root: Path, names: list[str]) -> dict[str, list[tuple[str, str]]]:
    for i, name in enumerate(names):
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{i}:{name}".encode())
    db = StateDB.in_dir(root / "state")
    try:
        hasher = CachedHasher(db, now=1e9, reverify_after_s=None, workers=1)
        items = list(FolderSource("src", root / "src").list_items(hasher))
    finally:
        db.close()
    listed = [f.ref for i in items for f in i.files]
    assert sorted(listed) == sorted(names)  # every file in exactly one item
    return {i.key: [(f.ref, f.role) for f in i.files] for i in items}


def test_a_still_and_its_video_are_one_item_whatever_the_case_or_order(tmp_path: Path) -> None:
    got = _items(
        tmp_path,
        [
            "IMG_0001.JPG",
            "IMG_0001.MOV",
            "a/img_0002.jpg",
            "a/IMG_0002.MP4",  # sorts before its still: the still still leads
            "b/IMG_0003.HEIC",
            "b/img_0003.mov",
        ],
    )
    assert got == {
        "IMG_0001.JPG": [("IMG_0001.JPG", "original"), ("IMG_0001.MOV", "live_video")],
        "a/img_0002.jpg": [("a/img_0002.jpg", "original"), ("a/IMG_0002.MP4", "live_video")],
        "b/IMG_0003.HEIC": [("b/IMG_0003.HEIC", "original"), ("b/img_0003.mov", "live_video")],
    }


def test_anything_but_one_still_and_one_video_of_a_stem_stays_alone(tmp_path: Path) -> None:
    names = [
        "three/IMG_1.DNG",
        "three/IMG_1.TIF",
        "three/IMG_1.MOV",
        "two_videos/IMG_7.JPG",
        "two_videos/IMG_7.MOV",
        "two_videos/IMG_7.MP4",
        "two_videos/IMG_7.AAE",
        "stills/IMG_2.JPG",
        "stills/IMG_2.DNG",
        "videos/CLIP.MOV",
        "videos/CLIP.MP4",
        "bare/README",
        "bare/README.mov",
        "x/IMG_5.JPG",
        "y/IMG_5.MOV",
        "sidecar/IMG_6.JPG",
        "sidecar/IMG_6.AAE",
    ]
    got = _items(tmp_path, names)
    assert got == {name: [(name, "original")] for name in names}
