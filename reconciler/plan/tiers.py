"""Tiers by age: which tier an item of a capture date is in now, which
tier is lighter than another, and what a tier means for a file (its
encoding: a quality or a CRF, or kept as it is). Pure, as the planner."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from reconciler.config import Tier
from reconciler.media import media_kind
from reconciler.model import (
    ORIGINAL_TIER,
)

_DAY = timedelta(days=1)


def tier_for(tiers: Iterable[Tier], captured_at: datetime | None, now: datetime) -> Tier | None:
    """The tier an item of this capture date belongs to now; None: keep original."""
    if captured_at is None:
        return None
    age_days = (now - captured_at) / _DAY
    for tier in tiers:
        if tier.max_age_days is None or age_days < tier.max_age_days:
            return tier
    return None


def lighter_tier(tiers: Iterable[Tier], tier: str, than: str) -> bool:
    """Is ``tier`` lighter (less compressed: a younger tier) than ``than``?
    The original is the lightest of all. A tier no longer configured
    (renamed, removed) is taken as heavier than any, so that a file it
    compressed is never the measure an encode from the original must beat."""
    if than == ORIGINAL_TIER:
        return False
    if tier == ORIGINAL_TIER:
        return True
    order = [t.name for t in tiers]
    if than not in order:
        return True
    return tier in order and order.index(tier) < order.index(than)


@attrs.frozen(kw_only=True)
class Encoding:
    """What a file should look like in the library: a tier name and a setting."""

    tier: str
    quality: int | None = None
    crf: int | None = None


#: The file kept as it is (one value shared: asked once per library file).
_KEPT = Encoding(tier=ORIGINAL_TIER)


def encoding_for(tier: Tier | None, name: str) -> Encoding:
    if tier is None or tier.keep == "original":
        return _KEPT
    kind = media_kind(name)
    return _KEPT if kind == "other" else _encoding(tier, kind)


@functools.lru_cache(maxsize=256)
def _encoding(tier: Tier, kind: str) -> Encoding:
    """A tier's setting for one kind of file: a few values, each made once."""
    if kind == "jpeg":
        return Encoding(tier=tier.name, quality=tier.jpeg_quality)
    if kind == "heic":
        if tier.heic_quality is None:
            return _KEPT  # HEICs stay as they are in this tier
        return Encoding(tier=tier.name, quality=tier.heic_quality)
    return Encoding(tier=tier.name, crf=tier.video_crf)
