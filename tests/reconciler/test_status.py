"""``reconcile status`` against golden files (tests/golden/status_*).

The output is compared exactly once the values that change from run to run
are replaced: the temporary folder, the times the runs were recorded at
(the real clock) and how long they took. Everything else is made
deterministic: fixed file contents and capture dates, and ``now=``.
Set RECONCILE_UPDATE_GOLDEN=1 to rewrite the golden files, then read the diff.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, Workspace, make_workspace

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
#: Before any real clock this suite runs under: a run's recorded time never
#: looks like a capture date.
NOW = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)
YOUNG = NOW - timedelta(days=5)  # kept in the source (keep_recent_days = 30)
OLD = NOW - timedelta(days=400)


def _photo(ws: Workspace, name: str, captured: datetime, n: int) -> None:
    """A file of fixed bytes dated by its mtime (JPEG encoders differ between
    machines by a few bytes; these sizes must not)."""
    path = ws.incoming / name
    path.write_bytes(bytes(range(256)) * n + name.encode())
    os.utime(path, (captured.timestamp(), captured.timestamp()))


def _normal(text: str, ws: Workspace) -> str:
    text = text.replace(str(ws.root), "<tmp>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", "<time>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<time>", text)
    return re.sub(r", \d+\.\d s\b", ", <n> s", text)


def _check(ws: Workspace, name: str) -> None:
    for suffix, args in ((".txt", ("status",)), (".json", ("status", "--json"))):
        r = ws.run(*args, now=NOW)
        assert (r.code, r.err) == (0, "")
        got = _normal(r.out, ws)
        golden = GOLDEN / f"{name}{suffix}"
        if os.environ.get("RECONCILE_UPDATE_GOLDEN"):
            golden.write_text(got)
        assert got == golden.read_text(), f"{golden} differs"


def _workspace(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    _photo(ws, "IMG_1.JPG", YOUNG, 40)
    _photo(ws, "IMG_2.JPG", OLD, 60)
    _photo(ws, "IMG_3.JPG", OLD - timedelta(days=1), 80)
    return ws


def test_status_before_any_run(tmp_path: Path) -> None:
    _check(_workspace(tmp_path), "status_no_runs")


def test_status_after_a_converged_apply(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    _check(ws, "status_converged")


def test_status_after_a_failed_run(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    # the year's folder a link: nothing is written through one (the copy fails)
    (ws.target("nas") / f"{YOUNG:%Y}").symlink_to(tmp_path / "elsewhere")
    assert ws.run("apply", "--yes", now=NOW).code == 1
    _check(ws, "status_failed")


def test_status_makes_nothing_where_no_run_has_been(tmp_path: Path) -> None:
    """status only reads: before any run (or with state.dir spelled wrong) it
    made the directory and an empty database there."""
    ws = _workspace(tmp_path)
    state = tmp_path / "ws" / "state"
    assert not state.exists()
    for args in (("status",), ("status", "--json")):
        r = ws.run(*args, now=NOW)
        assert r.code == 0, r.out + r.err
        assert "no runs yet" in r.out or '"last_run": null' in r.out, r.out
    assert not state.exists()
