"""After an ``apply`` is SIGKILLed (the OOM killer, a timeout), the next
``plan`` rewrites the metrics textfile without any ``command="apply"``
series: ``reconcile_last_run_timestamp_seconds``,
``reconcile_last_exit_code`` and ``..._duration_seconds`` of the apply are
gone, because ``metrics.render`` takes the newest apply row (``last_run_of``)
and skips it when it has no ``finished_at``. The two alerts metrics.py
recommends (``reconcile_last_exit_code != 0``, ``time() -
reconcile_last_run_timestamp_seconds`` growing) then match nothing, so the
crash is never alerted on while plans keep running; metrics.py's own
docstring promises "a plan never hides the last apply's figures".

Read with prometheus_client's parser (an outside reader)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_plan_after_a_killed_apply_keeps_the_apply_series(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", datetime(2021, 1, 1 + i, tzinfo=UTC), seed=i)
    assert ws.run("apply", "--yes", "--only", "library").code == 0
    prom = ws.root / "state" / "reconcile.prom"
    key = ("reconcile_last_run_timestamp_seconds", (("command", "apply"),))
    before = _samples(prom)
    assert key in before
    # A real apply process, SIGKILLed after its first copy to a target.
    env = dict(os.environ, RECONCILE_TEST_KILL_AT="finish-after:copy-to-target:1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    killed = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    assert ws.run("plan").code == 0
    after = _samples(prom)
    assert ("reconcile_last_exit_code", (("command", "plan"),)) in after
    missing = [
        name
        for name in (
            "reconcile_last_run_timestamp_seconds",
            "reconcile_last_exit_code",
        )
        if (name, (("command", "apply"),)) not in after
    ]
    assert not missing, f"the plan's rewrite dropped the apply series: {missing}"
    # They are the last apply that ended (exit 0), and the killed one is counted.
    assert after[key] == before[key]
    assert after[("reconcile_last_exit_code", (("command", "apply"),))] == 0
    assert after[("reconcile_runs_without_exit", (("command", "apply"),))] == 1
    assert after[("reconcile_runs_without_exit", (("command", "plan"),))] == 0
    # The next apply marks it crashed (still no exit code) and ends with one.
    assert ws.run("apply", "--yes").code == 0
    last = _samples(prom)
    assert last[("reconcile_runs_without_exit", (("command", "apply"),))] == 0
    assert last[key] > before[key]
