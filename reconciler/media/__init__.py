"""Encoders for the library tiers: Pillow (+pillow-heif) for stills, ffmpeg for video.

A pure layer: functions of files, with no configuration, database or output.

What needs Pillow or ffmpeg's bindings is loaded on first use (``__getattr__``):
every command imports this package, and most runs never encode or read a
file's metadata (a no-op plan reads none); loading them costs a quarter of
a command's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reconciler.media.kinds import is_archivable, is_media, media_kind, sniff_path

if TYPE_CHECKING:
    from reconciler.media.encode import EncodeResult, encode_file
    from reconciler.media.metadata import capture_timestamp, read_capture_date, read_lineage
    from reconciler.media.video import EncodeTimeout

_LAZY = {
    "EncodeResult": "reconciler.media.encode",
    "encode_file": "reconciler.media.encode",
    "capture_timestamp": "reconciler.media.metadata",
    "read_capture_date": "reconciler.media.metadata",
    "read_lineage": "reconciler.media.metadata",
    "EncodeTimeout": "reconciler.media.video",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


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
