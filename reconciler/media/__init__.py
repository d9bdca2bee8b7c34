"""Encoders for the library tiers: Pillow (+pillow-heif) for stills, ffmpeg for video.

A pure layer: functions of files, with no configuration, database or output.
"""

from __future__ import annotations

from reconciler.media.encode import EncodeResult, encode_file
from reconciler.media.kinds import is_archivable, is_media, media_kind, sniff_path
from reconciler.media.metadata import capture_timestamp, read_capture_date, read_lineage
from reconciler.media.video import EncodeTimeout

__all__ = [
    "EncodeResult",
    "EncodeTimeout",
    "capture_timestamp",
    "encode_file",
    "is_archivable",
    "is_media",
    "media_kind",
    "read_capture_date",
    "read_lineage",
    "sniff_path",
]
