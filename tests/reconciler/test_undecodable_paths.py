"""A configured place whose real path is not UTF-8 (a home copied from an
old Latin-1 system, a source linked to such a folder) is refused by its key
before anything runs, by validate, plan and apply alike, with the path shown
with \\xNN escapes: such a path cannot be stored in the state database, the
log or the plan, and once the run had started it stopped as an internal
error, half recorded."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

OLD = datetime.now(UTC) - timedelta(days=800)
RENAME = "the path is not valid UTF-8; rename the folder (e.g. convmv -f latin1 -t utf8)"
COMMANDS = (("validate",), ("plan",), ("apply", "--yes"))


def _latin1(parent: Path, name: bytes) -> Path:
    """``parent``/``name`` as Python names it: the bytes that are not UTF-8
    as lone surrogates, as os.listdir and Path.resolve give them."""
    return Path(os.fsdecode(os.fsencode(parent) + b"/" + name))


def _refused(ws: Workspace, capsys: pytest.CaptureFixture[str], expected: list[str]) -> None:
    for command in COMMANDS:
        r = ws.run(*command)
        assert (r.code, r.out, r.err) == (1, "", "".join(f"error: {e}\n" for e in expected))
        leaked = capsys.readouterr()  # logging's own "--- Logging error ---" goes here
        assert "Traceback" not in leaked.out + leaked.err
        assert "Logging error" not in leaked.err


def test_a_workspace_under_a_latin1_folder_is_refused_place_by_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(_latin1(tmp_path, b"caf\xe9"), extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    shown = f"{tmp_path}/caf\\xe9"
    name = f"{shown}/desired_state.toml"

    _refused(
        ws,
        capsys,
        [
            f"{name}: the file's path is not valid UTF-8; "
            "rename the folder (e.g. convmv -f latin1 -t utf8)",
            f"{name}: sources.incoming.path ({shown}/incoming): {RENAME}",
            f"{name}: library.path ({shown}/library): {RENAME}",
            f"{name}: targets.nas.path ({shown}/nas): {RENAME}",
            f"{name}: targets.usb.path ({shown}/usb): {RENAME}",
            f"{name}: state.dir ({shown}/state): {RENAME}",
        ],
    )
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    for store in ("library", "nas", "usb"):
        assert files_under(ws.root / store) == {}
    assert not (ws.root / "state").exists()  # no database, no log


def test_a_source_linked_to_a_latin1_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    real = _latin1(tmp_path, b"Carte-\xe9t\xe9")
    real.mkdir()
    make_jpeg(real / "IMG_1.JPG", OLD, seed=1)
    ws.incoming.rmdir()
    ws.incoming.symlink_to(real)

    _refused(
        ws,
        capsys,
        [f"{ws.config}: sources.incoming.path ({tmp_path}/Carte-\\xe9t\\xe9): {RENAME}"],
    )
    assert list(files_under(real)) == ["IMG_1.JPG"]
    for store in ("library", "nas", "usb"):
        assert files_under(ws.root / store) == {}
    assert not (ws.root / "state").exists()


def test_a_state_directory_under_a_latin1_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state database, its log and its metrics file live there."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    odd = _latin1(tmp_path, b"\xc9tat")
    odd.mkdir()
    (ws.root / "state").symlink_to(odd)  # state.dir = "state" resolves into it

    _refused(ws, capsys, [f"{ws.config}: state.dir ({tmp_path}/\\xc9tat): {RENAME}"])
    assert os.listdir(os.fsencode(odd)) == []
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    assert files_under(ws.library) == {}


def test_a_config_file_in_a_latin1_folder_with_places_elsewhere_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own name goes into the log and the messages."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    text = ws.config.read_text()
    for place in ("library", "state", "incoming", "nas", "usb"):
        text = text.replace(f'= "{place}"', f'= "{ws.root / place}"')
    folder = _latin1(tmp_path, b"Einstellungen-\xfc")
    folder.mkdir()
    moved = Workspace(root=ws.root, config=folder / "desired_state.toml")
    moved.config.write_text(text)

    name = f"{tmp_path}/Einstellungen-\\xfc/desired_state.toml"
    _refused(
        moved,
        capsys,
        [
            f"{name}: the file's path is not valid UTF-8; "
            "rename the folder (e.g. convmv -f latin1 -t utf8)"
        ],
    )
    assert not (ws.root / "state").exists()
