"""A plan prints a page however many items it has (README, Plan output):
actions are grouped by kind and reason, so a reason carries nothing of one
item's own. The encodes' and removals' reasons carried each item's date and
age ("captured 2026-04-05 (0.7 years ago)", "240 days old"): every one was
a group of its own, and 100k items printed 200k lines. What is the item's
own is now shown with it (``Action.detail``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_forty_photos_of_forty_days_plan_as_one_group_each(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)  # the default tiers, removal on
    for i in range(40):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", NOW - timedelta(days=400 + 3 * i), seed=i)
    r = ws.run("plan", now=NOW)
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    heads = [line for line in lines if line.startswith(("  ~ encode", "  - remove-from-source"))]
    assert heads == [
        "  ~ encode (40): tier older (quality 75), library has original",
        "  - remove-from-source (40, "
        + heads[1].split("(40, ", 1)[1].split(")", 1)[0]
        + "): archived (2 verified copies), older than keep_recent_days (30)",
    ], r.out
    # each item's own age is shown with it
    assert "      incoming:IMG_0.JPG (captured 2025-10-21, 1.1 years ago)" in lines, r.out
    assert "      incoming:IMG_0.JPG (400 days old)" in lines, r.out
    assert len(lines) < 40, r.out
