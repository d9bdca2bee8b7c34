"""Placeholder capture dates: 1 January 1970 (or 1904) is what a file says
when nobody knows when it was taken (a camera whose clock was never set, an
archive extracted without times). One rule (``is_placeholder_date``) makes
it "no date" for every reader: a still's EXIF, a clip's tags, a folder
file's mtime; taken as a date, the photo was filed under 1970/01/01 and,
with ``max_age_days``, never archived ("Undated items are always handled")."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from reconciler.media import read_capture_date
from reconciler.media.metadata import is_placeholder_date
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = """
[sources.incoming]
kind = "folder"
path = "incoming"
max_age_days = 365
"""


@pytest.mark.parametrize(
    ("when", "placeholder"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), True),  # Unix time's zero
        (datetime(1904, 1, 1, tzinfo=UTC), True),  # QuickTime's and the classic Mac's
        (datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=14))), True),  # local midnight
        (datetime(1970, 1, 1, 23, 59, tzinfo=timezone(timedelta(hours=-12))), True),
        (datetime(1970, 1, 1, 12), True),  # naive: UTC
        (datetime(1970, 1, 3, tzinfo=UTC), False),  # a day that is a day
        (datetime(1969, 12, 30, tzinfo=UTC), False),
        (datetime(1904, 1, 3, tzinfo=UTC), False),
        (NOW, False),
    ],
)
def test_the_placeholder_rule(when: datetime, placeholder: bool) -> None:
    assert is_placeholder_date(when) is placeholder


@pytest.mark.parametrize(
    ("exif", "expected"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), None),
        (datetime(1970, 1, 2, 12, tzinfo=UTC), datetime(1970, 1, 2, 12, tzinfo=UTC)),
    ],
)
def test_a_stills_exif_placeholder_is_no_date(
    tmp_path: Path, exif: datetime, expected: datetime | None
) -> None:
    photo = make_jpeg(tmp_path / "IMG_1.JPG", exif)
    assert read_capture_date(photo) == expected


def _no_exif_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.effect_noise((64, 64), 40).convert("RGB").save(path, quality=95)
    return path


@pytest.mark.parametrize("placeholder", ["mtime-epoch", "exif-epoch"])
def test_a_photo_with_a_placeholder_date_is_archived_and_not_filed_under_1970(
    tmp_path: Path, placeholder: str
) -> None:
    ws = make_workspace(tmp_path, sources=WINDOW, extra=KEEP_ORIGINALS, removal=False)
    if placeholder == "mtime-epoch":
        photo = _no_exif_jpeg(ws.incoming / "SCAN_0001.JPG")  # no EXIF at all
        os.utime(photo, ns=(0, 0))  # extracted from an archive without times
    else:
        # a camera whose clock was never set; the file itself is new
        make_jpeg(ws.incoming / "SCAN_0001.JPG", datetime(1970, 1, 1, tzinfo=UTC))
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    archived = list(files_under(ws.target("nas")))
    assert archived != [] and not any(p.startswith("1970/") for p in archived), r.out
    assert not any(p.startswith("1970/") for p in files_under(ws.library))
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, "No changes. The library matches desired_state.toml.\n")
