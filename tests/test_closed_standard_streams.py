"""A standard stream the caller closed (``<&-``, ``>&-``, ``2>&-``): Python
then has ``sys.stdin`` / ``sys.stdout`` / ``sys.stderr`` = None. A closed
stdin is no terminal (apply without --yes refuses as documented); text for
a closed stdout or stderr is dropped and the run does its work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import files_under, make_jpeg, make_workspace

OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _closing(*fds: int) -> Callable[[], None]:
    def close() -> None:
        for fd in fds:
            os.close(fd)

    return close


def _cli(config: Path, *args: str, closed: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
    """``reconcile`` as a real process (the console script's own path), with
    the standard descriptors ``closed`` closed before it starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(config), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        preexec_fn=_closing(*closed),
    )


def test_apply_with_stdin_closed_refuses_as_without_a_terminal(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = _cli(ws.config, "apply", closed=(0,))
    assert r.returncode == 1
    assert r.stderr == (
        "error: apply needs --yes when there is no terminal to ask (cron: add --yes)\n"
    )
    assert files_under(ws.target("nas")) == {}


def test_apply_with_stderr_closed_still_applies(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = _cli(ws.config, "apply", "--yes", closed=(2,))
    assert "internal error" not in r.stdout, r.stdout
    assert r.returncode == 0, r.stdout
    assert "Apply: 4 changed." in r.stdout
    assert list(files_under(ws.target("nas"))) == ["2024/09/16/IMG_1.JPG"]


def test_an_error_with_stderr_closed_keeps_its_exit_and_its_log_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = _cli(ws.config, "apply", closed=(0, 2))
    assert (r.returncode, r.stdout.count("internal error")) == (1, 0), r.stdout
    log = (tmp_path / "state" / "reconcile.log").read_text()
    assert "error: apply needs --yes when there is no terminal to ask" in log


def test_plan_and_apply_with_stdout_closed_still_work(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = _cli(ws.config, "plan", "--detailed-exitcode", closed=(1,))
    assert (r.returncode, r.stderr) == (2, "")
    r = _cli(ws.config, "apply", "--yes", closed=(1,))
    assert (r.returncode, r.stderr) == (0, "")
    assert list(files_under(ws.target("nas"))) == ["2024/09/16/IMG_1.JPG"]


def test_apply_with_every_standard_stream_closed_still_applies(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = _cli(ws.config, "apply", "--yes", closed=(0, 1, 2))
    assert r.returncode == 0
    assert list(files_under(ws.target("nas"))) == ["2024/09/16/IMG_1.JPG"]
    assert "apply exited 0" in (tmp_path / "state" / "reconcile.log").read_text()


def test_a_closed_descriptor_is_not_taken_by_a_file_the_run_opens(tmp_path: Path) -> None:
    """Left free, fd 2 would go to the next file opened (the state database,
    the log), and whatever writes to "stderr" (ffmpeg under us) would write
    into it. The CLI puts /dev/null there first."""
    probe = (
        "import os\n"
        "from reconciler.cli import _fill_closed_descriptors\n"
        "_fill_closed_descriptors()\n"
        f"fd = os.open({str(tmp_path / 'state.db')!r}, os.O_CREAT | os.O_WRONLY)\n"
        "print(fd, *(os.readlink(f'/proc/self/fd/{n}') for n in (0, 1, 2)))\n"
        "print(*(os.get_inheritable(n) for n in (0, 1, 2)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        text=True,
        capture_output=True,
        timeout=60,
        preexec_fn=_closing(0, 2),
        cwd=Path(__file__).resolve().parents[1],  # the checkout, for reconciler
    )
    assert r.returncode == 0
    first, second = r.stdout.splitlines()
    fd, stdin, stdout, stderr = first.split()
    assert int(fd) > 2
    assert (stdin, stderr) == ("/dev/null", "/dev/null")
    assert stdout != "/dev/null"  # left as it was: the capture pipe
    assert second == "True True True"


def test_status_with_stdout_closed_imports_pyicloud_cleanly(tmp_path: Path) -> None:
    """``status >&-``: fd 1 gets /dev/null, and ``sys.stdout`` (None, as
    Python found it) a stream too: pyicloud asks ``sys.stdout.isatty()`` as
    it is imported, which failed the run as an internal error."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert _cli(ws.config, "apply", "--yes", closed=()).returncode == 0
    r = _cli(ws.config, "status", closed=(1,))
    assert (r.returncode, r.stderr) == (0, "")
