"""What other runs say of an apply under way: ``status`` beside it (after a
plan ran beside it too, and with the state directory on btrfs), and the
metrics textfile once a plan and the apply end together."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import lock, metrics
from reconciler.backup import locked_if_free
from tests.helpers import Workspace, make_jpeg, make_workspace, mounted, paused_apply

OLD = datetime(2021, 1, 1, tzinfo=UTC)


def _ws(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws")
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD.replace(day=1 + i), seed=i)
    return ws


def _running_now(ws: Workspace) -> tuple[dict[str, object], str]:
    doc = json.loads(ws.run("status", "--json").out)
    return doc["last_run"], ws.run("status").out.splitlines()[1]


def test_status_says_an_apply_is_running_after_a_plan_ran_beside_it(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    with paused_apply(ws, tmp_path / "release"):
        # cron's hourly plan (or a person's) runs while the apply is under
        # way: its row is newer than the apply's, and finished
        assert ws.run("plan").code == 0
        last, headline = _running_now(ws)
    assert (last["command"], last["running_now"]) == ("apply", True), last
    assert headline.startswith("last run: apply is running now"), headline


def test_status_says_an_apply_is_running_with_the_state_dir_on_btrfs(tmp_path: Path) -> None:
    """Fedora's and openSUSE's /home, a Synology NAS: btrfs gives a file the
    st_dev of its subvolume, while /proc/locks names the filesystem's."""
    image = tmp_path / "btrfs.img"
    subprocess.run(["truncate", "-s", "120M", str(image)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    ws = _ws(tmp_path)
    with mounted(tmp_path / "ws" / "state", "-o", "loop", str(image)):
        with paused_apply(ws, tmp_path / "release"):
            assert lock.held_now(tmp_path / "ws" / "state") is True
            last, headline = _running_now(ws)
        assert lock.held_now(tmp_path / "ws" / "state") is False  # ended: let go
    assert (last["command"], last["running_now"]) == ("apply", True), last
    assert headline.startswith("last run: apply is running now"), headline


def test_the_metrics_of_an_apply_ending_beside_a_plan_are_the_last_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cron's hourly plan writes its textfile, read while the apply was under
    way, just as the apply ends: the apply waits for the textfile's lock
    and writes what the database holds then, its own exit included; it does
    not leave the plan's word (``runs_without_exit 1``, no exit code) there
    until some later run."""
    ws = _ws(tmp_path)
    real = metrics._replace
    with paused_apply(ws, tmp_path / "release") as apply:

        def plan_writes_slowly(path: Path, text: str) -> None:
            (tmp_path / "release").touch()  # the apply goes on, ends, records…
            with pytest.raises(subprocess.TimeoutExpired):  # …and waits for this lock
                apply.wait(timeout=3)
            real(path, text)

        monkeypatch.setattr(metrics, "_replace", plan_writes_slowly)
        assert ws.run("plan").code == 0
    prom = (tmp_path / "ws" / "state" / "reconcile.prom").read_text()
    assert 'reconcile_runs_without_exit{command="apply"} 0' in prom, prom
    assert 'reconcile_last_exit_code{command="apply"} 0' in prom, prom
    assert 'reconcile_library_files{tier="archive"} 3' in prom, prom  # the apply's census


def test_a_textfile_writer_waits_for_the_lock_a_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.prom"
    with locked_if_free(tmp_path / ".reconcile.prom.lock") as mine:
        assert mine
        started = time.monotonic()
        assert metrics.write_textfile(path, "x 1\n", wait=0.3) is False
        assert 0.3 <= time.monotonic() - started < 5
    assert not path.exists()
    assert metrics.write_textfile(path, lambda: "x 2\n", wait=0.3) is True
    assert path.read_text() == "x 2\n"
