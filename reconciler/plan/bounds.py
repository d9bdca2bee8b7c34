"""How long a plan stays the plan of an unchanged world: the first moment
the clock alone could change it. Pure, as the planner.

The planner reads the clock in one way only: an item's age, its capture
time against ``now``, measured against a number of days from the
configuration (a tier's ``max_age_days``, ``removal.keep_recent_days``, a
source's ``max_age_days``), or against zero (an item captured "in the
future"). (A conduit's ``settle_days`` runs from a delivery, not a
capture: plans with a phone are never kept, ``reconciler.kept_plan``.)
Each comparison turns at a capture time plus one of those spans, so the
plan cannot change before the earliest such moment still ahead. Every
span is tried against every capture time, which is more than the planner
compares: the answer is never late, only at times early.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import datetime, timedelta

from reconciler.config import DesiredState
from reconciler.layout import date_from_path
from reconciler.model import World


def spans(desired: DesiredState) -> set[float]:
    """Every number of days the planner measures an age against, and 0."""
    days: set[float] = {0.0}
    days.update(t.max_age_days for t in desired.policy.tiers if t.max_age_days is not None)
    days.add(float(desired.policy.removal.keep_recent_days))
    for cfg in desired.sources.values():
        days.add(float(getattr(cfg, "max_age_days", 0)))
    return days


def _captures(world: World) -> Iterator[datetime]:
    for source in world.sources:
        for item in source.items:
            if item.captured_at is not None:
                yield item.captured_at
    for f in (*world.library.files, *world.library.lost):
        when = f.captured_at or date_from_path(f.path)
        if when is not None:
            yield when


def stable_until(desired: DesiredState, world: World, now: datetime) -> datetime:
    """The earliest moment at or after ``now`` when an item's age reaches one
    of the planner's spans (``now`` itself when one reaches it now); a far
    future when none ever will."""
    stamps = sorted(c.timestamp() for c in _captures(world))
    first = float("inf")
    at = now.timestamp()
    for days in spans(desired):
        span = days * 86400
        i = bisect.bisect_left(stamps, at - span)  # the first capture whose age <= span
        if i < len(stamps):
            first = min(first, stamps[i] + span)
    if first == float("inf"):
        return datetime.max.replace(tzinfo=now.tzinfo)
    return now + timedelta(seconds=max(0.0, first - at))
