"""A photo encoded for a heavier tier, later due a lighter one (the clock was
ahead for one run and is put right; a photo re-dated later in Photos): it is
encoded again from the original, and where no encode beats the original, the
original comes back. An encode for the lighter tier is weighed against the
original, never against the heavier tier's smaller file (which would call it
"not worth it" and keep the photo at the heavier quality for good)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AHEAD = NOW + timedelta(days=4 * 365)  # one run with the clock four years ahead
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"
#: A lighter tier no encode of the sample (a q95 JPEG) beats: q100 is larger.
NOT_WORTH_WHEN_RECENT = """
[[policy.tiers]]
name = "recent"
max_age_days = 365
jpeg_quality = 100

[[policy.tiers]]
name = "archive"
jpeg_quality = 50
"""


def test_a_photo_encoded_under_a_clock_ahead_goes_back_to_its_tier(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)  # default tiers: recent q85, archive q65
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", NOW - timedelta(days=10), seed=1, size=256)
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert ws.run("apply", "--yes", now=AHEAD).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib) == (sha, "archive")
    # The clock put right: ten days old, tier recent, encoded from the original.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert read_lineage(lib) == (sha, "recent"), r.out
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, NO_CHANGES)


def test_the_original_comes_back_where_no_encode_for_the_lighter_tier_beats_it(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=NOT_WORTH_WHEN_RECENT)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", NOW - timedelta(days=10), seed=1, size=256)
    original = photo.read_bytes()
    assert ws.run("apply", "--yes", now=AHEAD).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "archive")
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "original restored (output not smaller than current file" in r.out, r.out
    assert lib.read_bytes() == original
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, NO_CHANGES)


def test_a_verdict_of_not_worth_it_does_not_keep_a_heavier_encode(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=NOT_WORTH_WHEN_RECENT)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", NOW - timedelta(days=10), seed=1, size=256)
    original = photo.read_bytes()
    # At import, q100 is not worth it: the library keeps the original, and
    # that verdict is settled for "recent".
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0 and "not smaller" in r.out, r.out
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert lib.read_bytes() == original
    assert ws.run("apply", "--yes", now=AHEAD).code == 0  # encoded for "archive" (q50)
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "archive")
    # The clock put right: the verdict was on the original, not on the q50
    # file the library holds now, which is no photo of tier "recent".
    plan = ws.run("plan", now=NOW)
    assert "tier recent (quality 100), library has archive" in plan.out, plan.out
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert lib.read_bytes() == original
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, NO_CHANGES)
