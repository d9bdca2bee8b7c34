"""``apply PLANFILE`` when little or nothing of the saved plan runs: it
never says the library matches while actions are still to do; it exits 1
with one line saying to plan again when the plan no longer holds; and an
action an earlier apply did is "already done", not "stale (plan again)"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)
MATCHES = "The library matches desired_state.toml"


def test_a_fully_stale_saved_plan_does_not_claim_the_library_matches(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0
    # The world moves: another photo now carries that name.
    (ws.incoming / "IMG_1.JPG").unlink()
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=9)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2

    r = ws.run("apply", str(plan), "--yes", now=NOW)
    assert r.code == 1
    assert MATCHES not in r.out, r.out
    assert "stale copy-to-target (2)" in r.out
    assert (
        "Nothing to run now; 4 action(s) left out are still to do: the library does not "
        "match desired_state.toml yet.\n"
    ) in r.out
    assert r.err == (
        f"error: none of the actions of {plan} can run now (see 'stale' above), and 4 "
        "action(s) are to do; run reconcile plan --out again\n"
    )
    assert files_under(ws.target("nas")) == {}  # nothing unapproved was done
    status = ws.run("status")
    assert "apply failed" in status.out, status.out


def test_a_saved_plan_holding_no_action_refuses_while_actions_are_to_do(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0
    assert json.loads(plan.read_text())["actions"] == []
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)

    r = ws.run("apply", str(plan), "--yes", now=NOW)
    assert r.code == 1
    assert MATCHES not in r.out, r.out
    assert r.err == (
        f"error: {plan} holds no action, but 4 action(s) are to do now; "
        "run reconcile plan --out again\n"
    )
    assert files_under(ws.target("nas")) == {}


def test_only_selecting_none_of_a_saved_plan_refuses(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0

    r = ws.run("apply", str(plan), "--yes", "--only", "remove", now=NOW)
    assert r.code == 1
    assert MATCHES not in r.out, r.out
    assert r.err == (
        f"error: --only/--target selects none of the 4 action(s) of {plan} that still hold; "
        "run apply again without them\n"
    )
    assert files_under(ws.target("nas")) == {}


def test_only_selecting_nothing_without_a_plan_file_says_what_is_left(tmp_path: Path) -> None:
    """Nothing of that stage to do is no error (cron runs one stage), but the
    rest is still to do: no claim that the library matches."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    r = ws.run("apply", "--yes", "--only", "remove", now=NOW)
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "4 action(s) not selected by --only/--target; the next run does them\n"
        "Nothing to run now; 4 action(s) left out are still to do: the library does not "
        "match desired_state.toml yet.\n"
    )


def test_plan_only_selecting_nothing_says_what_is_left(tmp_path: Path) -> None:
    """``plan --only`` as ``apply --only``: the stages left out are still to
    do, so no claim that the library matches."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    r = ws.run("plan", "--only", "remove", now=NOW)
    assert (r.code, r.err) == (0, "")
    assert MATCHES not in r.out, r.out
    assert r.out == (
        "Nothing to run now; 4 action(s) left out are still to do: the library does not "
        "match desired_state.toml yet.\n"
        "4 action(s) not selected by --only/--target\n"
    )


def test_the_same_plan_applied_twice_says_already_done(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0
    assert ws.run("apply", str(plan), "--yes", now=NOW).code == 0

    again = ws.run("apply", str(plan), "--yes", now=NOW)
    assert (again.code, again.err) == (0, ""), again.out
    assert "stale" not in again.out and "plan again" not in again.out, again.out
    assert "  = ok copy-to-target (2)\n" in again.out
    assert "already done by an apply since this plan was made" in again.out
    assert f"No changes. {MATCHES}." in again.out  # true now


def test_a_narrow_plan_done_then_applied_again_is_done_not_stale(tmp_path: Path) -> None:
    """Every action of the saved plan was done; the rest of the world was
    never part of it: exit 0, but no claim that the library matches."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--only", "copy", "--out", str(plan), now=NOW).code == 0
    assert ws.run("apply", str(plan), "--yes", now=NOW).code == 0

    again = ws.run("apply", str(plan), "--yes", now=NOW)
    assert (again.code, again.err) == (0, ""), again.out
    assert "stale" not in again.out, again.out
    assert MATCHES not in again.out, again.out
    assert "action(s) left out are still to do" in again.out


def test_a_saved_plan_partly_stale_still_runs_what_holds(tmp_path: Path) -> None:
    """Some of it holds: that runs, the rest is stale, exit 0 as before."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0
    (ws.incoming / "IMG_2.JPG").unlink()
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=9)

    r = ws.run("apply", str(plan), "--yes", now=NOW)
    assert (r.code, r.err) == (0, ""), r.out
    assert "stale copy-to-target" in r.out
    assert sorted(files_under(ws.target("nas"))) == ["2024/09/16/IMG_1.JPG"]
