"""What a configuration may ask of the encoders, known without loading them.

Every command validates the configuration; Pillow, pillow-heif and ffmpeg's
bindings are loaded only by the runs that encode or read media metadata.
"""

from __future__ import annotations

#: x265's presets, fastest first: what ``policy.heic_preset`` may name.
HEIC_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
