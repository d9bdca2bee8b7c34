"""Read back what a media file says about itself: its lineage and its capture date.

Both only parse headers and metadata (no pixel decode), so the observer can
call them on a whole library. The kind is sniffed from the content, like the
encoder does, so a HEIC saved under a ``.jpg`` name is still read.

``is_placeholder_date`` is the one rule for a date that means "unknown",
for every reader of a capture date (a still's EXIF, a clip's tags, a
folder file's mtime, a library file's folder). The readers of stills and
clips (Pillow, ffprobe) are loaded on first use, so that a module asking
only the rule does not load Pillow at every start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import MediaError
from reconciler.media.kinds import HEIC, JPEG, VIDEO, read_kind

#: The days clocks and formats count from, in UTC epoch seconds: Unix
#: time's (1 January 1970) and QuickTime's and the classic Mac's (1 January
#: 1904). A zeroed clock, a camera never set, a file extracted without its
#: times: all say one of these.
_EPOCHS = (0.0, datetime(1904, 1, 1, tzinfo=UTC).timestamp())
#: That 1 January as read in any time zone (offsets run from -12 to +14 hours).
_BEFORE, _AFTER = 14 * 3600, 36 * 3600


def is_placeholder_date(when: datetime) -> bool:
    """Is ``when`` a placeholder for "no date" rather than a capture date?

    Any moment that is 1 January 1970 or 1904 in some time zone: the zero
    of a clock, written as local time or as UTC. Taken as a date, a photo
    would be filed under 1970/01/01, given the heaviest tier, and counted
    older than any ``max_age_days`` (so never archived); iCloud says the
    same of its epoch 0 (``SourceItem.captured_at``: "never 1970"). A naive
    ``when`` is taken as UTC.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return is_placeholder_timestamp(when.timestamp())


def is_placeholder_timestamp(ts: float) -> bool:
    """``is_placeholder_date`` of UTC epoch seconds (an mtime, a cache row)."""
    return any(e - _BEFORE <= ts < e + _AFTER for e in _EPOCHS)


def read_lineage(path: Path) -> tuple[str, str] | None:
    """(original_sha256, tier) embedded by ``encode_file``, or None when absent.

    Raises MediaError when the file is empty or cannot be parsed at all.
    """
    from reconciler.media.still import read_still_lineage
    from reconciler.media.video import read_video_lineage

    kind = read_kind(path)
    if kind in (JPEG, HEIC):
        return read_still_lineage(path, kind)
    if kind == VIDEO:
        return read_video_lineage(path)
    return None


def read_capture_date(path: Path) -> datetime | None:
    """When the photo or clip was taken (tz-aware), or None when it does not say.

    Stills: EXIF DateTimeOriginal with OffsetTimeOriginal, UTC when there is
    no offset. Videos: Apple's creationdate, else the container creation_time.
    A placeholder (``is_placeholder_date``) is no date.
    Raises MediaError when the file is empty or cannot be parsed at all.
    """
    from reconciler.media.still import read_still_capture_date
    from reconciler.media.video import read_video_capture_date

    kind = read_kind(path)
    if kind in (JPEG, HEIC):
        when = read_still_capture_date(path, kind)
    elif kind == VIDEO:
        when = read_video_capture_date(path)
    else:
        return None
    if when is None or not _reckonable(when) or is_placeholder_date(when):
        return None
    return when


def _reckonable(when: datetime) -> bool:
    """``when`` is a moment the rest of the tool can reckon with: in UTC,
    and as epoch seconds and back, it stays within years 1 to 9999. A
    camera's 9999:12:31 23:59:59 at -12:00 is not (it is said as no date,
    as a zeroed one is, instead of stopping every run)."""
    try:
        datetime.fromtimestamp(when.astimezone(UTC).timestamp(), UTC)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def capture_timestamp(path: Path) -> float | None:
    """``read_capture_date`` as UTC epoch seconds; None when the file does
    not say or cannot be read (what a hash cache row records)."""
    try:
        when = read_capture_date(path)
    except (MediaError, OSError):
        return None
    return when.timestamp() if when else None
