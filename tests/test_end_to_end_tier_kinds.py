"""Compression by tier, end to end: content unlike its name, a clip's XMP,
the tier boundary, a Live Photo imported with its .AAE.

Each case runs the whole tool on an import folder (real Pillow, pillow-heif,
ffmpeg; exiftool reads the result)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import make_jpeg, make_workspace
from tests.media.conftest import make_clip, make_heic

README = Path(__file__).parent.parent / "README.md"
T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the media conftest samples: 2021-06-01, tier recent


# ---------------------------------------------------------------- a HEIC named .jpg


def test_a_heic_named_jpg_is_not_reencoded_in_a_tier_without_heic_quality(
    tmp_path: Path,
) -> None:
    """README: "HEICs are re-encoded only in a tier that sets heic_quality"
    and "The kind is read from the content, not the name: a HEIC named .jpg
    stays HEIC". The default "recent" tier sets no heic_quality, so a HEIC
    (a phone export under a .jpg name) must stay as it is there. The planner
    picks the setting from the *name* (plan.encoding_for -> media_kind), so it
    plans jpeg_quality 85, and the encoder (which sniffs HEIC) re-encodes the
    HEIC with x265 at q85, replacing the library's original."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    heic = make_heic(ws.incoming / "IMG_7.jpg", size=(640, 480), quality=100).read_bytes()
    assert heic[4:8] == b"ftyp"  # a HEIC, whatever its name says

    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib,) = list(ws.library.rglob("IMG_7.jpg"))
    assert read_lineage(lib) is None, r.out  # not encoded for "recent" ...
    assert lib.read_bytes() == heic  # ... the library keeps the HEIC as it is
    assert "kept as it is: its content is HEIC, but its name says JPEG" in r.out, r.out


# ---------------------------------------------------------------- XMP of a video


def _exiftool_json(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["exiftool", "-j", "-G1", "-XMP:all", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)[0]


def test_a_videos_xmp_survives_its_encode(tmp_path: Path) -> None:
    """Lightroom, digiKam, Premiere and many cameras keep a clip's description,
    rating and keywords in XMP inside the MP4/MOV (exiftool writes it the same
    way). The encode (media/video.py: encode_video) carries only ffmpeg's
    container tags (-map_metadata 0); the XMP packet is silently dropped from
    the library copy, and not even named in org.reconcile.dropped.
    README/DESIGN: the library copy keeps "its metadata intact"."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    clip = make_clip(ws.incoming / "CLIP_1.MP4", apple_date=False)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Description=the tower at night",
            "-XMP-dc:Subject=Paris",
            "-XMP-xmp:Rating=5",
            str(clip),
        ],
        check=True,
    )
    before = _exiftool_json(clip)
    assert before.get("XMP-dc:Description") == "the tower at night"

    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib,) = list(ws.library.rglob("CLIP_1.MP4"))
    assert read_lineage(lib) is not None, r.out  # it was encoded
    after = _exiftool_json(lib)
    assert after.get("XMP-dc:Description") == "the tower at night", after
    assert after.get("XMP-dc:Subject") == "Paris", after
    assert after.get("XMP-xmp:Rating") == 5, after


# ---------------------------------------------------------------- a tier boundary


def test_an_item_exactly_max_age_days_old_is_in_the_tier_the_readme_says(tmp_path: Path) -> None:
    """README's configuration table: the default tiers are "recent ≤365 d ...
    older ≤1095 d", and config.Tier says "items up to max_age_days old". An
    item captured exactly 365 days ago is 365 days old, so "recent"; the code
    (plan.tier_for: ``age_days < tier.max_age_days``) puts it in "older" and
    re-encodes it at q75. (Either the README and Tier's docstring say "< 365",
    or tier_for uses ``<=``: this test follows whatever the README says.)"""
    row = next(line for line in README.read_text().splitlines() if "`policy.tiers`" in line)
    inclusive = "≤365" in row
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    captured = now - timedelta(days=365)
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", captured, seed=3, size=256)
    p = ws.run("plan", now=now)
    want = "recent" if inclusive else "older"
    assert f"tier {want} (" in p.out, (row, p.out)


# ---------------------------------------------------------------- a Live Photo with its .AAE


AAE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>adjustmentFormatIdentifier</key>
<string>com.apple.photo</string></dict></plist>
"""


def test_a_live_photos_video_beside_its_aae_is_not_encoded(tmp_path: Path) -> None:
    """An edited Live Photo imported from an iPhone (Image Capture, Windows'
    import) lands as IMG_1.HEIC + IMG_1.MOV + IMG_1.AAE. README: "Live Photo
    videos (their timed metadata pairs them with the still)" are kept as they
    are. The folder source pairs a still and a video only when the stem has
    exactly two files (providers/folder.py: _group, ``len(members) == 2``), so
    the .AAE beside them makes the clip an ordinary original, and the encode
    stage re-encodes it (plan._encode: role "original"), dropping the track
    that pairs it with its still."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_heic(ws.incoming / "IMG_1.HEIC", size=(512, 384))
    clip = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    (ws.incoming / "IMG_1.AAE").write_bytes(AAE)

    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib,) = list(ws.library.rglob("IMG_1.MOV"))
    assert "encode incoming:IMG_1.MOV" not in r.out, r.out
    assert lib.read_bytes() == clip, r.out
