"""A saved plan applied in two goes (``--only``, or run again after a stop)
finishes: the fresh plan no longer lists the dependencies the first go did,
and an action is still the one approved when all that changed is that its
dependencies shrank. Anything else that differs stays stale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from reconciler.commands.saved_plan import intersect as _intersect
from reconciler.model import CopyToLibrary, CopyToTarget, EncodeForTier, Plan, RemoveFromSource
from tests.helpers import make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(config), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_a_saved_plan_applied_stage_by_stage_finishes(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=True)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan), now=NOW).code == 0
    kinds = [a["type"] for a in json.loads(plan.read_text())["actions"]]
    assert kinds == [
        "copy-to-library",
        "copy-to-target",
        "copy-to-target",
        "encode",
        "remove-from-source",
    ]

    first = ws.run("apply", str(plan), "--yes", "--only", "library,copy", now=NOW)
    assert (first.code, first.err) == (0, "")
    assert "2 action(s) not selected by --only/--target; the next run does them" in first.out

    second = ws.run("apply", str(plan), "--yes", now=NOW)
    assert (second.code, second.err) == (0, ""), second.out
    assert "stale" not in second.out, second.out
    assert "  = ok copy-to-target (2)\n" in second.out  # done by the first go
    assert "  + changed remove-from-source incoming:IMG_1.JPG" in second.out
    assert not (ws.incoming / "IMG_1.JPG").exists()  # the approved removal ran
    after = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (after.code, after.out) == (0, "No changes. The library matches desired_state.toml.\n")


def test_a_saved_plan_run_again_after_sigterm_finishes(tmp_path: Path) -> None:
    """README: a stopped apply says 'run apply again to continue'; run again
    with the same plan file, the encode and the removal (whose copies the
    stopped run made) run."""
    ws = make_workspace(tmp_path, removal=True)
    make_jpeg(ws.incoming / "IMG_1.JPG", datetime.now(UTC) - timedelta(days=800), seed=1)
    plan = tmp_path / "plan.json"
    assert _cli(ws.config, "plan", "--out", str(plan)).returncode == 0

    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env |= {
        "RECONCILE_TEST_PAUSE_AT": "finish-after:copy-to-target:2",  # both copies done
        "RECONCILE_TEST_PAUSE_FILE": str(release),
    }
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as o, err.open("w") as e:
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "-c",
                str(ws.config),
                "apply",
                str(plan),
                "--yes",
            ],
            env=env,
            stdout=o,
            stderr=e,
        )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{release}.paused").exists():
            assert first.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.02)
        first.send_signal(signal.SIGTERM)
        release.touch()
        assert first.wait(60) == 143, (out.read_text(), err.read_text())
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert (ws.incoming / "IMG_1.JPG").exists()

    again = _cli(ws.config, "apply", str(plan), "--yes")
    assert (again.returncode, again.stderr) == (0, ""), again.stdout
    assert "stale" not in again.stdout, again.stdout
    assert not (ws.incoming / "IMG_1.JPG").exists()
    assert _cli(ws.config, "plan", "--detailed-exitcode").returncode == 0


# ------------------------------------------------ the rule, on plain values

SHA = "a" * 64


def _plan(*actions: object) -> Plan:
    return Plan(actions=tuple(actions), notes=(), created_at=NOW)  # type: ignore[arg-type]


def _library() -> CopyToLibrary:
    return CopyToLibrary(
        id=f"library:{SHA}", subject="card:IMG_1.JPG", reason="not in the library",
        sha256=SHA, name="IMG_1.JPG", size=10, captured_at=OLD,
    )  # fmt: skip


def _copy(target: str) -> CopyToTarget:
    return CopyToTarget(
        id=f"copy:{target}:{SHA}", subject="card:IMG_1.JPG", reason=f"no copy on {target}",
        target_id=target, sha256=SHA, origin=None, name="IMG_1.JPG", size=10, captured_at=OLD,
    )  # fmt: skip


def _encode(depends_on: tuple[str, ...], quality: int = 75) -> EncodeForTier:
    return EncodeForTier(
        id=f"encode:{SHA}", subject="card:IMG_1.JPG", reason="tier older",
        depends_on=depends_on, sha256=SHA, origin=None, name="IMG_1.JPG", tier="older",
        quality=quality, crf=None,
    )  # fmt: skip


def _removal(depends_on: tuple[str, ...]) -> RemoveFromSource:
    return RemoveFromSource(
        id="remove:card:IMG_1.JPG", subject="card:IMG_1.JPG", reason="archived",
        depends_on=depends_on, source_id="card", item_key="IMG_1.JPG", files=(), size=10,
    )  # fmt: skip


COPIES = (f"copy:nas:{SHA}", f"copy:usb:{SHA}")


def test_dependencies_done_since_keep_an_action_and_are_reported_done() -> None:
    saved = _plan(_library(), _copy("nas"), _copy("usb"), _encode((f"library:{SHA}",)),
                  _removal(COPIES))  # fmt: skip
    # nas and the library done; usb still to do.
    fresh = _plan(_copy("usb"), _encode(()), _removal((COPIES[1],)))
    plan, outcomes = _intersect(saved, fresh, done={f"library:{SHA}", COPIES[0]})
    assert [a.id for a in plan.actions] == [COPIES[1], f"encode:{SHA}", "remove:card:IMG_1.JPG"]
    assert {(o.action_id, o.status) for o in outcomes} == {
        (f"library:{SHA}", "ok"),
        (COPIES[0], "ok"),
    }


def test_a_dependency_the_saved_plan_did_not_have_makes_an_action_stale() -> None:
    saved = _plan(_copy("nas"), _removal((COPIES[0],)))
    fresh = _plan(_copy("nas"), _copy("usb"), _removal(COPIES))  # depends on more now
    plan, outcomes = _intersect(saved, fresh)
    assert [a.id for a in plan.actions] == [COPIES[0]]
    assert [(o.action_id, o.status) for o in outcomes] == [("remove:card:IMG_1.JPG", "stale")]


def test_an_action_whose_remaining_dependency_does_not_run_is_stale() -> None:
    saved = _plan(_copy("nas"), _copy("usb"), _removal(COPIES))
    moved = attrs.evolve(_copy("usb"), size=11)  # other bytes now: stale
    fresh = _plan(moved, _removal((COPIES[1],)))
    plan, outcomes = _intersect(saved, fresh, done={COPIES[0]})
    assert plan.actions == ()
    assert {(o.action_id, o.status) for o in outcomes} == {
        (COPIES[0], "ok"),
        (COPIES[1], "stale"),
        ("remove:card:IMG_1.JPG", "stale"),
    }


def test_anything_else_that_differs_is_still_stale() -> None:
    saved = _plan(_library(), _encode((f"library:{SHA}",), quality=85))
    fresh = _plan(_encode((), quality=75))  # the tier moved on since
    plan, outcomes = _intersect(saved, fresh, done={f"library:{SHA}"})
    assert plan.actions == ()
    assert [(o.action_id, o.status) for o in outcomes] == [
        (f"library:{SHA}", "ok"),
        (f"encode:{SHA}", "stale"),
    ]


def test_an_action_done_but_wanted_again_is_stale_not_done() -> None:
    """Done once, and the fresh plan wants it again, differently: not done."""
    saved = _plan(_copy("nas"))
    fresh = _plan(attrs.evolve(_copy("nas"), size=11))
    plan, outcomes = _intersect(saved, fresh, done={COPIES[0]})
    assert plan.actions == ()
    assert [(o.action_id, o.status) for o in outcomes] == [(COPIES[0], "stale")]
