"""A store's marker (``providers.filesystem``): what a damaged one is
called, that reading one never waits on a pipe, and ``init-target`` paths
that start with ``~``."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import MARKER, not_a_marker, read_marker
from tests.helpers import KEEP_ORIGINALS, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
MOVE = "; refusing to mark {disk} over it: move it aside if it is nothing of yours, then run "


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("folder", "a folder"),
        ("corrupt", "a file with no store id in it (damaged, or another program's)"),
        ("no id", "a file with no store id in it (damaged, or another program's)"),
        ("big", "a file of 70000 bytes (a marker has a few hundred)"),
        ("link", "a symbolic link to no marker"),
    ],
)
def test_a_damaged_marker_is_named_for_what_it_is(tmp_path: Path, kind: str, what: str) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    disk = tmp_path / "disk"
    disk.mkdir()
    marker = disk / MARKER
    if kind == "folder":
        marker.mkdir()
    elif kind == "corrupt":
        marker.write_text("{")
    elif kind == "no id":
        marker.write_text('{"tool": "something else"}')
    elif kind == "big":
        marker.write_text(" " * 69_987 + '{"id": "usb"}')  # a marker's id, past what is read
    else:
        marker.symlink_to(tmp_path / "gone")
    assert read_marker(disk) is None
    assert not_a_marker(disk) == f"{marker} is {what}, not a marker of reconcile"
    r = ws.run("init-target", str(disk), "--id", "usb2")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"error: usb2: {marker} is {what}, not a marker of reconcile"
        + MOVE.format(disk=disk)
        + "init-target again\n"
    )
    # validate says the same of a configured target's folder
    ws.config.write_text(
        ws.config.read_text() + f'[targets.usb2]\nkind = "filesystem"\npath = "{disk}"\n'
    )
    v = ws.run("validate")
    assert v.code == 1
    assert (
        f"FAIL  targets.usb2.path: {marker} is {what}, not a marker of reconcile; move it "
        f"aside if it is nothing of yours, then run: reconcile init-target {disk} --id usb2\n"
    ) in v.out


def test_no_marker_at_all_is_nothing_to_name(tmp_path: Path) -> None:
    assert not_a_marker(tmp_path) == ""


def test_a_pipe_at_the_markers_name_is_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer that never comes: the
    marker is opened as a regular file only, so availability, validate
    and init-target never hang on one."""
    os.mkfifo(tmp_path / MARKER)
    found: list[str | None] = []
    reader = threading.Thread(target=lambda: found.append(read_marker(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    waited = reader.is_alive()
    if waited:  # release it (a writer comes), then fail
        os.close(os.open(tmp_path / MARKER, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert (waited, found) == (False, [None])
    assert not_a_marker(tmp_path) == (
        f"{tmp_path / MARKER} is a pipe, device or socket, not a marker of reconcile"
    )


def test_a_quoted_tilde_is_the_home_not_a_folder_named_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~`` is the home in the configuration's paths; a quoted ``"~/usb2"``
    (a unit file, a script) must not make ./~/usb2 in the current folder."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    r = ws.run("init-target", "~/usb2", "--id", "usb2", "--create")
    assert (r.code, r.out, r.err) == (0, f"~/usb2 is now the store 'usb2' ({MARKER} written)\n", "")
    assert read_marker(home / "usb2") == "usb2"
    assert os.listdir(cwd) == []
