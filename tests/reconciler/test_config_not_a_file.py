"""A file the tool writes never replaces what is no regular file: the
metrics file and a report are replaced whole (a temporary renamed over
them), so ``metrics_file = "/dev/null"`` (a likely way to say "no metrics
file") turned the device into a regular file, as root breaking the system.
A copy of /dev/null's node (made as root: CI runs the tests as root) and
a named pipe stand in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.helpers import make_workspace


def _null(folder: Path) -> Path:
    folder.mkdir()
    null = folder / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return null


def test_a_metrics_file_that_is_a_device_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    null = _null(tmp_path / "dev")
    ws.config.write_text(ws.config.read_text() + f'\n[log]\nmetrics_file = "{null}"\n')
    said = (
        f"error: {ws.config}: log.metrics_file ({null}): that is a character device, not a "
        "file; the metrics file is replaced whole after every run, so name a regular file "
        "(empty: state.dir/reconcile.prom; there is no setting that turns it off)\n"
    )
    for command in ("validate", "plan"):
        r = ws.run(command)
        assert (r.code, r.err) == (1, said), command
    assert stat.S_ISCHR(null.lstat().st_mode)


def test_a_metrics_file_linked_to_a_pipe_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    (ws.root / "metrics.prom").symlink_to(pipe)
    ws.config.write_text(ws.config.read_text() + '\n[log]\nmetrics_file = "metrics.prom"\n')
    r = ws.run("plan")
    assert r.code == 1
    assert f"log.metrics_file ({pipe}): that is a named pipe, not a file" in r.err
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


def test_the_default_metrics_file_replaces_no_device(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "reconcile.prom")
    r = ws.run("validate")
    assert r.code == 1
    assert r.err == (
        f"error: {ws.config}: state.dir ({state}): {state / 'reconcile.prom'}, the metrics "
        "file, is a named pipe; move it away (the file is replaced whole after every run) or "
        "set log.metrics_file\n"
    )


@pytest.mark.parametrize("command", [["report"], ["plan", "--out"]])
def test_a_report_or_a_saved_plan_over_a_device_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    null = _null(tmp_path / "dev")
    r = ws.run(*command, str(null))
    what = "the report" if command == ["report"] else "--out"
    assert (r.code, r.err) == (
        1,
        f"error: {what} {null}: that is a character device, not a file; name a file\n",
    )
    assert stat.S_ISCHR(null.lstat().st_mode)
