"""A Live Photo whose still and video share their stem with other files: an
edited Live Photo imported from an iPhone (IMG_1.HEIC + IMG_1.MOV +
IMG_1.AAE), an XMP sidecar, a JPEG exported beside the HEIC. The still and
the video stay one item (the video is the Live Photo's, never re-encoded);
every other file is an item of its own."""

from __future__ import annotations

from pathlib import Path

from tests.providers.test_folder_pairs import _items


def test_a_live_photo_with_sidecars_beside_it_is_still_one_item(tmp_path: Path) -> None:
    names = [
        "edited/IMG_1.HEIC",
        "edited/IMG_1.MOV",
        "edited/IMG_1.AAE",
        "xmp/img_2.jpg",
        "xmp/IMG_2.XMP",
        "xmp/IMG_2.mov",  # case differs from the still's
        "notes/IMG_3.JPG",
        "notes/IMG_3.MP4",
        "notes/IMG_3.txt",
        "notes/IMG_3.AAE",
    ]
    got = _items(tmp_path, names)
    assert got == {
        "edited/IMG_1.HEIC": [
            ("edited/IMG_1.HEIC", "original"),
            ("edited/IMG_1.MOV", "live_video"),
        ],
        "edited/IMG_1.AAE": [("edited/IMG_1.AAE", "original")],
        "xmp/img_2.jpg": [("xmp/img_2.jpg", "original"), ("xmp/IMG_2.mov", "live_video")],
        "xmp/IMG_2.XMP": [("xmp/IMG_2.XMP", "original")],
        "notes/IMG_3.JPG": [("notes/IMG_3.JPG", "original"), ("notes/IMG_3.MP4", "live_video")],
        "notes/IMG_3.txt": [("notes/IMG_3.txt", "original")],
        "notes/IMG_3.AAE": [("notes/IMG_3.AAE", "original")],
    }


def test_with_two_stills_the_video_goes_with_the_phones_own(tmp_path: Path) -> None:
    names = [
        "heic_jpg/IMG_4.JPG",
        "heic_jpg/IMG_4.HEIC",
        "heic_jpg/IMG_4.MOV",
        "heic_jpg/IMG_4.AAE",
        "raw_jpg/IMG_5.DNG",
        "raw_jpg/img_5.jpeg",
        "raw_jpg/IMG_5.MOV",
    ]
    got = _items(tmp_path, names)
    assert got == {
        "heic_jpg/IMG_4.HEIC": [
            ("heic_jpg/IMG_4.HEIC", "original"),
            ("heic_jpg/IMG_4.MOV", "live_video"),
        ],
        "heic_jpg/IMG_4.JPG": [("heic_jpg/IMG_4.JPG", "original")],
        "heic_jpg/IMG_4.AAE": [("heic_jpg/IMG_4.AAE", "original")],
        "raw_jpg/img_5.jpeg": [
            ("raw_jpg/img_5.jpeg", "original"),
            ("raw_jpg/IMG_5.MOV", "live_video"),
        ],
        "raw_jpg/IMG_5.DNG": [("raw_jpg/IMG_5.DNG", "original")],
    }
