"""``reconcile report`` of a run with no exit recorded: an apply under way
beside it, or one killed (SIGKILL, the OOM killer) that no apply has marked
yet. The database says ``running`` of both; only the run lock tells them
apart (``lock.held_now``), and the report says what ``status`` says: the
same run in its headline, "is running now" or "did not finish"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from reconciler import lock, report
from reconciler.state import StateDB
from tests.helpers import (
    KEEP_ORIGINALS,
    Workspace,
    apply_killed_at,
    make_jpeg,
    make_workspace,
    paused_apply,
)

OLD = datetime(2021, 1, 1, tzinfo=UTC)
KILLED = "did not finish (killed or crashed)"


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD.replace(day=1 + i), seed=i, size=256)
    return ws


def _page(ws: Workspace) -> str:
    """The page of ``ws``'s runs, told what the run lock says now (as the
    report command tells it)."""
    db = StateDB.in_dir(ws.root / "state")
    try:
        runs = db.last_runs(15)
    finally:
        db.close()
    return report.page(
        history=[],
        runs=runs,
        generated_at=datetime.now(UTC),
        state_path="state.db",
        running=lock.held_now(ws.root / "state"),
    )


def _row(page: str, run: int) -> tuple[str, str]:
    """(style, cells) of run ``run`` in the runs table."""
    rows = re.findall(r"<tr class=\"([a-z]+)\"><td>(\d+)</td>(.*?)</tr>", page)
    return next((style, rest) for style, rid, rest in rows if int(rid) == run)


def _headline(page: str) -> tuple[str, str]:
    found = re.search(r'<p class="headline ([a-z]+)">(.*?)</p>', page)
    assert found, page
    return found[1], found[2]


def test_a_killed_apply_is_said_killed_not_running(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    apply_killed_at(ws, "finish-after:copy-to-library:1")
    assert KILLED in ws.run("status").out
    page = _page(ws)
    style, cells = _row(page, 1)
    assert (style, "running" in cells) == ("bad", False), cells
    assert f"<td>- {KILLED}</td>" in cells
    style, headline = _headline(page)
    assert style == "bad" and headline.startswith(f"Last run: apply #1 {KILLED}, started "), (
        headline
    )
    # The command's page: nothing is running, and it never says so.
    out = tmp_path / "r.html"
    assert ws.run("report", str(out)).code == 0
    assert "running" not in _row(out.read_text(), 1)[1]


def test_the_headline_beside_a_running_apply_is_that_apply(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    out = tmp_path / "r.html"
    with paused_apply(ws, tmp_path / "release"):
        assert ws.run("plan").code == 0  # cron's hourly plan beside it: a newer run, ok
        said = ws.run("status").out.splitlines()[1]
        assert said.startswith("last run: apply is running now"), said
        page = _page(ws)
        assert ws.run("report", str(out)).code == 0
    style, headline = _headline(page)
    assert style == "unfinished" and headline.startswith("Last run: apply #1 is running now"), (
        headline
    )
    style, cells = _row(page, 1)
    assert style == "unfinished" and "<td>- is running now</td>" in cells, cells
    assert _row(page, 2)[0] == "ok"  # the plan beside it
    # The command's page names the apply too, and never as one that worked.
    style, headline = _headline(out.read_text())
    assert style != "ok" and headline.startswith("Last run: apply #1 "), headline


def test_the_headline_is_the_last_apply_past_the_runs_listed(tmp_path: Path) -> None:
    """An apply that failed, then 16 plans: status heads with the apply;
    so does the page, though only the last 15 runs are listed (it headlined
    a plan as 'ok', in green)."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    (ws.incoming / "bad.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 50)
    assert ws.run("apply", "--yes").code == 1
    for _ in range(16):
        assert ws.run("plan").code == 0
    assert "last run: apply failed" in ws.run("status").out
    page = tmp_path / "report.html"
    assert ws.run("report", str(page)).code == 0
    style, text = _headline(page.read_text())
    assert "apply #1" in text and style == "bad", (style, text)
