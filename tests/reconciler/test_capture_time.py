"""Capture time is a recorded fact: an item's tier after it left its source is
decided by when it was taken, never by the midnight of its library folder.

An item a second from a tier boundary is encoded for its tier and off-loaded;
the very next run must find nothing to do (it used to re-encode it, dating
the library file from its YYYY/MM/DD folder) — also after a lost state DB.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RECENT_DAYS = 365  # the default tiers: "recent" up to 365 days, then "older"


@pytest.mark.parametrize(
    "captured",
    [
        NOW - timedelta(days=RECENT_DAYS) + timedelta(hours=1),  # just inside "recent"
        NOW - timedelta(days=RECENT_DAYS) + timedelta(seconds=1),
        NOW - timedelta(days=RECENT_DAYS) - timedelta(seconds=1),  # just inside "older"
    ],
    ids=["an-hour-inside", "a-second-inside", "a-second-outside"],
)
def test_the_run_after_an_offload_is_empty_at_a_tier_boundary(
    tmp_path: Path, captured: datetime
) -> None:
    ws = make_workspace(tmp_path)  # default tiers: encode by age
    make_jpeg(ws.incoming / "IMG_1.JPG", captured, seed=1, size=256)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    tier = "recent" if NOW - captured < timedelta(days=RECENT_DAYS) else "older"
    assert f"tier {tier} (" in r.out
    assert files_under(ws.incoming) == {}  # off-loaded

    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, "No changes. The library matches desired_state.toml.\n")

    # The fact survives a lost state DB: it is read back from the file itself.
    shutil.rmtree(tmp_path / "state")
    lost = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (lost.code, lost.out) == (0, "No changes. The library matches desired_state.toml.\n")
