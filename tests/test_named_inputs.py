"""Files a person names or the state directory holds, that are not regular
files: the configuration given as a pipe (``-c <(...)``, legitimate, read
once) or as a device, a saved plan that is a device, a pipe at the log's
or the lock's name. Each ends promptly, with a clear word, never a hang, an
endless read or a traceback. Found by a bug hunt."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30


def _limit_memory() -> None:
    # An endless read must not take the machine's memory with it.
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ICLOUD_", "SYNCTHING_"))}
    env["PYTHONPATH"] = str(ROOT)
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{argv} still running after {TIMEOUT} s (a hang): {e}")


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = _run([sys.executable, "-m", "reconciler.cli", *args], cwd)
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "this is a bug" not in text, text
    return done


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = _run(["bash", "-c", script], cwd)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def _unblock_all(folder: Path) -> None:
    for each in folder.rglob("*"):
        if each.is_fifo():
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                with contextlib.suppress(OSError):
                    os.close(os.open(each, flags))


def fifo_at(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def absolute(ws: Workspace) -> str:
    """The workspace's configuration with every place's path absolute."""
    text = ws.config.read_text()
    for name in ("library", "state", "incoming", "nas", "usb"):
        text = text.replace(f'"{name}"', f'"{ws.root / name}"')
    return text


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = make_workspace(tmp_path / "w", extra=KEEP_ORIGINALS)
    make_jpeg(w.incoming / "IMG_0001.JPG", datetime(2020, 1, 2, 3, 4, 5))
    yield w
    _unblock_all(tmp_path)


def test_a_configuration_given_by_process_substitution_plans_and_applies(
    ws: Workspace, tmp_path: Path
) -> None:
    # plan and apply read the configuration three times (the log, the
    # command, the run's record): the pipe gave its bytes to the first only.
    (tmp_path / "abs.toml").write_text(absolute(ws))
    done = bash(f'"{sys.executable}" -m reconciler.cli -c <(cat abs.toml) plan', tmp_path)
    assert done.returncode == 0, done.stderr
    done = bash(f'"{sys.executable}" -m reconciler.cli -c <(cat abs.toml) apply --yes', tmp_path)
    assert done.returncode == 0, done.stderr
    assert list((ws.target("nas")).rglob("IMG_0001.JPG"))


def test_relative_paths_in_a_configuration_from_a_pipe_are_refused(ws: Workspace) -> None:
    # A pipe has no folder for them to be relative to.
    done = bash(f'"{sys.executable}" -m reconciler.cli -c <(cat "{ws.config}") plan', ws.root)
    assert done.returncode == 1
    assert "is a relative path, and a configuration read from a pipe has no folder" in (done.stderr)


def test_a_configuration_fed_through_a_named_fifo_is_read_once(
    ws: Workspace, tmp_path: Path
) -> None:
    text = absolute(ws)
    fifo = fifo_at(tmp_path / "cfg.toml")

    def feed() -> None:  # one writer, once: a second open would wait for ever
        with contextlib.suppress(OSError), open(fifo, "w") as f:
            f.write(text)

    threading.Thread(target=feed, daemon=True).start()
    done = cli("-c", str(fifo), "plan")
    assert done.returncode == 0, done.stderr


def test_a_configuration_or_a_saved_plan_that_is_a_device_is_refused(
    ws: Workspace, tmp_path: Path
) -> None:
    done = cli("-c", "/dev/zero", "validate", cwd=tmp_path)
    assert done.returncode == 1
    assert "/dev/zero: cannot read: not a regular file" in done.stderr
    done = cli("-c", str(ws.config), "apply", "/dev/zero", "--yes")
    assert done.returncode == 1
    assert "/dev/zero: not a readable plan file" in done.stderr


def test_a_pipe_at_the_logs_name_does_not_hold_the_run(ws: Workspace) -> None:
    (ws.root / "state").mkdir(exist_ok=True)
    fifo_at(ws.root / "state" / "reconcile.log")
    done = cli("-c", str(ws.config), "apply", "--yes")
    assert done.returncode == 0, done.stderr
    assert "warning: not logging this run to the state directory" in done.stderr
    assert "not a regular file" in done.stderr
    assert list((ws.target("nas")).rglob("IMG_0001.JPG"))


def test_a_pipe_at_the_locks_name_is_named(ws: Workspace) -> None:
    (ws.root / "state").mkdir(exist_ok=True)
    fifo_at(ws.root / "state" / "lock")
    done = cli("-c", str(ws.config), "apply", "--yes")
    assert done.returncode == 1
    assert "lock is not a regular file (a pipe, a device or a folder took its name)" in (
        done.stderr
    )
