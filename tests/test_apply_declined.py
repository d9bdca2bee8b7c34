"""Every way out of ``apply`` says and records the plan's notes: answered N
at its prompt (it exits as the plan shown, and is never taken for an apply
that worked), and a guard beside a failed action (both said, the exit by
README's precedence)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import MARKER
from reconciler.cli import main
from tests.helpers import KEEP_ORIGINALS, Run, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
HEADLINE = "every item is archived (2 copies required) or off-loaded"

TWO_SOURCES = """
[sources.incoming]
kind = "folder"
path = "incoming"
[sources.card]
kind = "folder"
path = "card"
"""


class _Terminal(io.StringIO):
    """A terminal to answer apply's prompt."""

    def isatty(self) -> bool:
        return True


def _answer(ws: Workspace, answer: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["-c", str(ws.config), "apply"], stdout=out, stderr=err, stdin=_Terminal(answer), now=NOW
    )
    return Run(code=code, out=out.getvalue(), err=err.getvalue())


def _last_run(ws: Workspace) -> dict[str, object]:
    runs: list[dict[str, object]] = json.loads(ws.run("status", "--json", now=NOW).out)["runs"]
    return runs[0]


def _card_unreadable(tmp_path: Path) -> Workspace:
    """incoming's photo is archived on both targets; the card holds a photo
    never read (an old backup folder, marker and all, sits in it: every
    run finds the card unavailable); removal now gives apply an action to
    ask about."""
    ws = make_workspace(tmp_path / "ws", removal=False, sources=TWO_SOURCES, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    card = ws.root / "card"
    make_jpeg(card / "DCIM" / "IMG_9.JPG", OLD, seed=9)
    (card / "old-backup").mkdir(parents=True)
    (card / "old-backup" / MARKER).write_text((ws.target("usb") / MARKER).read_text())
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1 and "source card could not be read" in r.err, r.out + r.err
    ws.removal(True)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 1 and "remove-from-source" in p.out, p.out + p.err
    return ws


def test_a_declined_apply_exits_and_is_recorded_as_the_plan_it_showed(tmp_path: Path) -> None:
    ws = _card_unreadable(tmp_path)
    r = _answer(ws, "n\n")
    assert "Nothing done." in r.out and "! unavailable source card" in r.out, r.out
    assert (r.code, r.err) == (
        1,
        "error: source card could not be read (see '!' above); nothing was done\n",
    )
    last = _last_run(ws)
    assert (last["command"], last["exit_code"]) == ("apply", 1)
    assert last["reason"] == "source card could not be read (see '!' above); nothing was done"
    assert last["summary"] == {"declined": 1}


def test_a_declined_apply_never_makes_status_say_every_item_is_archived(tmp_path: Path) -> None:
    ws = _card_unreadable(tmp_path)
    assert _answer(ws, "n\n").code == 1
    text = ws.run("status", now=NOW).out
    # The card's photo was never read, let alone archived.
    assert HEADLINE not in text, text
    assert json.loads(ws.run("status", "--json", now=NOW).out)["every_item_archived"] is False


def test_a_declined_apply_is_no_apply_that_worked(tmp_path: Path) -> None:
    """Its plan read everything (exit 0), but it did nothing: status's
    headline is the apply before it, and with none, says it was declined."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    declined = _answer(ws, "no\n")
    assert (declined.code, declined.err) == (0, ""), declined.out + declined.err
    assert "Nothing done." in declined.out
    text = ws.run("status", now=NOW).out
    assert "last run: apply declined at its prompt (nothing done), finished" in text, text
    assert "worked" not in text, text
    assert "run 1: apply ok, exit 0" in text and ": declined " in text, text
    assert json.loads(ws.run("status", "--json", now=NOW).out)["last_good_apply"] is None
    assert ws.run("apply", "--yes", now=NOW).code == 0
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert _answer(ws, "n\n").code == 0
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert doc["last_run"]["id"] == 2, doc["last_run"]  # the apply that did the work
    assert doc["runs"][0]["summary"] == {"declined": 3}
    assert doc["last_good_apply"] == doc["last_run"]["finished_at"]


def test_a_guard_holding_a_source_back_is_said_beside_a_failed_action(tmp_path: Path) -> None:
    """README (Exit codes): 3, "a guard held a source back", each exit with
    a line on stderr saying what to do; in cron (-q) stderr is all the
    person reads. A person needed (3) comes before a failed action (1)."""
    ws = make_workspace(tmp_path / "ws", removal=False, sources=TWO_SOURCES)
    card = ws.root / "card"
    for i in range(4):
        make_jpeg(card / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("apply", "--yes").code == 0
    for i in range(1, 4):  # the card's listing shrinks from 4 files to 1
        (card / f"IMG_{i}.JPG").unlink()
    p = ws.run("plan", "--detailed-exitcode")
    assert p.code == 3 and "guard held back" in p.err, p.out + p.err
    # meanwhile a photo that cannot be decoded lands in incoming
    (ws.incoming / "bad.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    r = ws.run("-q", "apply", "--yes")
    guard = (
        "a guard held back source card (see '!' above); check it, then run again "
        "(with --accept-shrink if the shrink is real)"
    )
    failed = (
        "some originals cannot be decoded (see 'failed' above); the library keeps them as "
        "they are and they are not retried"
    )
    assert (r.code, r.out, r.err) == (3, "", f"error: {guard}\nerror: {failed}\n")
    last = _last_run(ws)
    assert (last["exit_code"], last["reason"]) == (3, f"{guard}\n{failed}")
    # status: the line that chose the exit heads it, every line in the list
    text = ws.run("status").out
    assert f"(exit 3): {guard}; last apply that worked" in text, text
    assert f"\n    {guard}\n    {failed}\n" in text, text


def _gauge(ws: Workspace, name: str) -> list[str]:
    text = (ws.root / "state" / "reconcile.prom").read_text()
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_declined_apply_leaves_the_metrics_of_the_last_apply_that_ran(
    tmp_path: Path,
) -> None:
    """Cron's apply failed (exit 1); a person then answers N at a terminal:
    nothing was done, so reconcile_last_exit_code{command="apply"} stays 1
    (it said 0, clearing the alert README suggests)."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    (ws.incoming / "bad.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    assert ws.run("-q", "apply", "--yes", now=NOW).code == 1
    failed = _gauge(ws, "reconcile_last")
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)  # something for the prompt to ask
    assert "Nothing done." in _answer(ws, "n\n").out
    assert _gauge(ws, "reconcile_last") == failed
    assert 'reconcile_last_exit_code{command="apply"} 1' in failed


def test_an_apply_that_did_nothing_never_says_the_rest_was_done(tmp_path: Path) -> None:
    """Refused for want of --yes (cron), or answered N: the lines of what
    the plan could not read say nothing was done."""
    ws = _card_unreadable(tmp_path)
    refused = ws.run("apply", now=NOW)
    assert refused.code == 1
    assert "the rest was done" not in refused.err, refused.err
    assert "source card could not be read (see '!' above); nothing was done" in refused.err
    assert "the rest was done" not in _answer(ws, "n\n").err
