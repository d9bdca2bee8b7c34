"""``plan --only`` / ``--target`` that select nothing while the library has
work to do: the exit code and the JSON say so as the text does, and a plan
saved so is still applied as README says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconciler import planfile
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)

#: The one photo's plan, originals kept: into the library, two copies, a
#: sidecar in the library, a removal. No encode: ``--only encode`` selects none.
LEFT_OUT = {"copy-to-library": 1, "copy-to-target": 2, "remove-from-source": 1}


def workspace(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    return ws


def test_detailed_exitcode_is_2_while_actions_left_out_are_to_do(tmp_path: Path) -> None:
    """A drift check narrowed to a stage or a store with nothing of it to do
    is not "converged" while the full plan has actions."""
    ws = workspace(tmp_path)
    for narrow in (
        ["--only", "encode"],
        ["--only", "free"],
        ["--target", "usb", "--only", "remove"],
    ):
        p = ws.run("plan", "--detailed-exitcode", *narrow, now=NOW)
        assert p.code == 2, (narrow, p.code, p.out, p.err)
    p = ws.run("plan", "--detailed-exitcode", "--only", "encode", now=NOW)
    assert p.out == (
        "Nothing to run now; 4 action(s) left out are still to do: "
        "the library does not match desired_state.toml yet.\n"
        "4 action(s) not selected by --only/--target\n"
    )
    # A store done, the others not: a check of that store alone is not converged.
    assert ws.run("apply", "--yes", "--target", "nas", now=NOW).code == 0
    p = ws.run("plan", "--detailed-exitcode", "--target", "nas", now=NOW)
    assert (p.code, p.out) == (
        2,
        "Nothing to run now; 3 action(s) left out are still to do: "
        "the library does not match desired_state.toml yet.\n"
        "3 action(s) not selected by --only/--target\n",
    )
    # Once all is done, the same narrow check is converged again.
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", "--only", "encode", now=NOW).code == 0


def test_json_counts_the_actions_left_out(tmp_path: Path) -> None:
    """``plan --json --only encode`` is not the JSON of a converged plan: it
    counts what was left out, by kind."""
    ws = workspace(tmp_path)
    full = json.loads(ws.run("plan", "--json", now=NOW).out)
    assert full["summary"] == LEFT_OUT and full["left_out"] == {"count": 0, "summary": {}}
    doc = json.loads(ws.run("plan", "--json", "--only", "encode", now=NOW).out)
    assert (doc["actions"], doc["notes"], doc["summary"]) == ([], [], {})
    assert doc["left_out"] == {"count": 4, "summary": LEFT_OUT}
    some = json.loads(ws.run("plan", "--json", "--only", "copy", now=NOW).out)
    assert some["summary"] == {"copy-to-target": 2}
    assert some["left_out"] == {
        "count": 2,
        "summary": {"copy-to-library": 1, "remove-from-source": 1},
    }


def test_a_saved_plan_of_nothing_selected_applies_as_readme_says(tmp_path: Path) -> None:
    """Saved, it holds the count too; ``apply`` of it runs nothing and exits
    1 (the library has actions to do: plan again), and a plan saved before
    the field existed reads the same."""
    ws = workspace(tmp_path)
    saved = tmp_path / "encode.plan"
    assert ws.run("plan", "--only", "encode", "--out", str(saved), now=NOW).code == 0
    doc = json.loads(saved.read_text())
    assert doc["left_out"]["count"] == 4
    assert planfile.loads(saved.read_text()).actions == ()
    del doc["left_out"]
    older = tmp_path / "older.plan"
    older.write_text(json.dumps(doc))
    assert planfile.loads(older.read_text()) == planfile.loads(saved.read_text())
    for plan in (saved, older):
        r = ws.run("apply", "--yes", str(plan), now=NOW)
        assert r.code == 1, (r.out, r.err)
        assert r.err == (
            f"error: {plan} holds no action, but 4 action(s) are to do now; "
            "run reconcile plan --out again\n"
        )
    assert media_under(ws.library) == {} and len(media_under(ws.incoming)) == 1
