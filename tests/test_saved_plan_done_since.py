"""What a saved plan's actions done since are said to be: the journal
records which apply did an action, not which plan that apply ran, so work a
plain apply (cron) did since is not claimed for an apply of this plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)
DONE = "already done by an apply since this plan was made"


def test_work_a_plain_apply_did_is_not_said_done_by_this_plan(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    assert ws.run("apply", "--yes", now=NOW).code == 0  # cron: not this plan

    r = ws.run("apply", str(saved), "--yes", "--detail", now=NOW)
    assert (r.code, r.err) == (0, ""), r.out
    assert r.out == (
        "No changes. The library matches desired_state.toml.\n"
        f"  = ok copy-to-library incoming:IMG_1.JPG: {DONE}\n"
        f"  = ok copy-to-target incoming:IMG_1.JPG: {DONE}\n"
        f"  = ok copy-to-target incoming:IMG_1.JPG: {DONE}\n"
        f"  = ok remove-from-source incoming:IMG_1.JPG: {DONE}\n"
    )
