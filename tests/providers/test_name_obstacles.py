"""What stands at a copy's name in a target is not always a file: a folder,
a link (dangling or not), a pipe, a file this run cannot read. Each is a
name taken: the copy lands at the collision-proof name beside it, and the
library converges. Before, a folder or an unreadable file failed the copy
every run, a dangling link ended in "could not find a free name", and a
pipe hung the run for ever (reading one waits for a writer)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

ROOT = Path(__file__).resolve().parents[2]
OLD = datetime(2020, 1, 2, 12, tzinfo=UTC)
REL = "2020/01/02/IMG_1.JPG"


def _blocked(tmp_path: Path, obstacle: Callable[[Path], object]) -> tuple[Workspace, bytes]:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    dest = ws.target("nas") / REL
    dest.parent.mkdir(parents=True)
    obstacle(dest)
    return ws, photo


def _unreadable(dest: Path) -> None:
    dest.write_bytes(b"another user's photo")
    dest.chmod(0)


OBSTACLES: dict[str, Callable[[Path], object]] = {
    "folder": Path.mkdir,
    "dangling-link": lambda dest: dest.symlink_to(dest.parent / "nowhere.JPG"),
    "link": lambda dest: dest.symlink_to(Path(__file__)),
    "pipe": os.mkfifo,
    "unreadable": _unreadable,
}


@pytest.mark.parametrize("kind", sorted(OBSTACLES))
def test_a_name_taken_by_what_is_not_a_readable_file_gets_the_name_beside_it(
    tmp_path: Path, kind: str
) -> None:
    ws, photo = _blocked(tmp_path, OBSTACLES[kind])
    # A process of its own (a pipe would hang this one), in a user namespace
    # with no power over others' files: root's permission override is gone.
    cli = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config)]
    done = subprocess.run(
        ["unshare", "--user", *cli, "apply", "--yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    beside = [p for p in (ws.target("nas") / "2020/01/02").iterdir() if p.name != "IMG_1.JPG"]
    assert [p.read_bytes() for p in beside] == [photo], beside
    assert ws.run("plan", "--detailed-exitcode").code == 0
