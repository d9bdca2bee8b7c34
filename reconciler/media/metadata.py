"""Read back what a media file says about itself: its lineage and its capture date.

Both only parse headers and metadata (no pixel decode), so the observer can
call them on a whole library. The kind is sniffed from the content, like the
encoder does, so a HEIC saved under a ``.jpg`` name is still read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import MediaError
from reconciler.media.kinds import HEIC, JPEG, VIDEO, read_kind
from reconciler.media.still import read_still_capture_date, read_still_lineage
from reconciler.media.video import read_video_capture_date, read_video_lineage


def read_lineage(path: Path) -> tuple[str, str] | None:
    """(original_sha256, tier) embedded by ``encode_file``, or None when absent.

    Raises MediaError when the file is empty or cannot be parsed at all.
    """
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
    Raises MediaError when the file is empty or cannot be parsed at all.
    """
    kind = read_kind(path)
    if kind in (JPEG, HEIC):
        when = read_still_capture_date(path, kind)
    elif kind == VIDEO:
        when = read_video_capture_date(path)
    else:
        return None
    return when if when is None or _reckonable(when) else None


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
