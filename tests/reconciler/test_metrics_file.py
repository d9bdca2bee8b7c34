"""``log.metrics_file``, the Prometheus textfile rewritten after every plan
and apply: validate checks that it can be written, and a run that cannot
write it says so (the log, and the CLI's stderr) with its exit unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler import config, history
from reconciler.backup import locked_if_free
from reconciler.metrics import write_textfile
from tests.helpers import KEEP_ORIGINALS, Workspace, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LATER = "each plan and apply will warn and go on without it"


def _workspace(tmp_path: Path, metrics_file: Path) -> Workspace:
    return make_workspace(
        tmp_path / "ws", extra=KEEP_ORIGINALS + f'[log]\nmetrics_file = "{metrics_file}"\n'
    )


def _metrics_line(out: str) -> str:
    (line,) = [line for line in out.splitlines() if "log.metrics_file" in line]
    return line


def test_validate_warns_of_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "textfiles"
    blocker.write_text("not a folder")
    ws = _workspace(tmp_path, blocker / "reconcile.prom")
    v = ws.run("validate")
    assert (v.code, v.err) == (0, "")  # a warning: plan and apply still work
    assert _metrics_line(v.out) == (
        f"warn  log.metrics_file: {blocker} is not a folder, so {blocker / 'reconcile.prom'} "
        f"cannot be written; fix the path ({LATER})"
    )


def test_validate_warns_of_a_metrics_file_that_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "textfiles" / "reconcile.prom"
    folder.mkdir(parents=True)
    v = _workspace(tmp_path, folder).run("validate")
    assert (
        _metrics_line(v.out)
        == f"warn  log.metrics_file: {folder} is a folder; name a file ({LATER})"
    )


def test_validate_says_where_a_metrics_file_will_be_written(tmp_path: Path) -> None:
    made = tmp_path / "textfiles" / "node"
    v = _workspace(tmp_path, made / "reconcile.prom").run("validate")
    assert (v.code, v.err) == (0, "")
    assert _metrics_line(v.out) == (
        f"ok    log.metrics_file: {made / 'reconcile.prom'} can be written ({made} will be created)"
    )
    assert not made.exists()  # validate writes nothing


def test_a_run_that_cannot_write_it_says_so_and_keeps_its_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "textfiles"
    blocker.write_text("not a folder")
    prom = blocker / "reconcile.prom"
    ws = _workspace(tmp_path, prom)
    said = (
        f"warning: log.metrics_file: {prom}: cannot be written (a file is where its folder "
        "should be); fix the folder or the setting (reconcile validate checks it); the run's "
        "exit is not changed"
    )
    plan = ws.run("plan", now=NOW)
    assert plan.code == 0
    assert plan.err.count(said) == 1
    log = (ws.root / "state" / "reconcile.log").read_text()
    assert log.count(said) == 1
    # the CLI's warn (its log and stderr) is told once, with the reason
    told: list[str] = []
    problem = history.record(
        config.load(ws.config),
        run_id=None,
        command="plan",
        started_at=NOW,
        exit_code=0,
        reason="",
        summary={},
        warn=told.append,
    )
    assert (problem, told) == (None, [said])


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """The textfile is written after the run lock is let go, so its own lock
    says a temporary beside it is a killed writer's (node_exporter's folder
    would otherwise gather one per kill)."""
    folder = tmp_path / "textfiles"
    ws = _workspace(tmp_path, folder / "reconcile.prom")
    folder.mkdir()
    left = folder / ".reconcile.prom.0123456789abcdef.tmp"
    left.write_text("half a file")
    other = folder / ".other.prom.0123456789abcdef.tmp"  # another exporter's
    other.write_text("not ours")
    assert ws.run("plan", now=NOW).code == 0
    assert not left.exists() and other.exists()
    assert "reconcile_last_exit_code" in (folder / "reconcile.prom").read_text()


def test_a_write_while_another_writer_holds_the_lock_leaves_its_files(tmp_path: Path) -> None:
    path = tmp_path / "reconcile.prom"
    theirs = tmp_path / ".reconcile.prom.feedfacefeedface.tmp"
    theirs.write_text("being written")
    with locked_if_free(tmp_path / ".reconcile.prom.lock") as mine:
        assert mine
        write_textfile(path, "x 1\n")  # as another process would, meanwhile
    assert theirs.exists() and not path.exists()
    write_textfile(path, "x 1\n")
    assert not theirs.exists() and path.read_text() == "x 1\n"
