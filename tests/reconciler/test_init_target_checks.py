"""``reconcile init-target`` refuses a folder where a marker would be
dangerous (a configured source, the library, the state directory, a folder
inside or around another store, by path, through a link or a mount) and
warns where it is only surprising (a folder that already holds files)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import MARKER, read_marker
from tests.helpers import (
    KEEP_ORIGINALS,
    Run,
    Workspace,
    make_jpeg,
    make_workspace,
    mounted,
    run_cli,
)

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
WHY = (
    "; sources, library, targets and the state directory must not contain one another (a "
    "backup in a source is removed with it; one in another store counts one file as two "
    "copies); choose a folder of its own\n"
)


def _refused(ws: Workspace, path: Path | str, store: str, clash: str, *more: str) -> None:
    r = ws.run("init-target", str(path), "--id", store, *more)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"error: refusing to mark {path} as the store {store!r}: {clash}{WHY}"


def _marked(ws: Workspace, path: Path, store: str, *more: str) -> Run:
    r = ws.run("init-target", str(path), "--id", store, *more)
    assert (r.code, r.out) == (0, f"{path} is now the store {store!r} ({MARKER} written)\n")
    assert read_marker(path) == store
    return r


def test_a_configured_source_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    _refused(ws, ws.incoming, "usb2", f"it is sources.incoming.path in {ws.config}")
    assert not (ws.incoming / MARKER).exists()
    # …and so is its own id: a source carries no marker, and is no store
    _refused(ws, ws.incoming, "incoming", f"it is sources.incoming.path in {ws.config}")


def test_the_state_directory_is_refused_also_through_a_link(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    assert ws.run("plan", now=NOW).code == 0
    state = tmp_path / "state"
    _refused(ws, state, "usb2", f"it is state.dir in {ws.config}")
    link = tmp_path / "elsewhere" / "state-link"
    link.parent.mkdir()
    link.symlink_to(state)
    _refused(ws, link, "usb2", f"it is state.dir in {ws.config}")
    inner = state / "usb2"
    _refused(ws, inner, "usb2", f"it is inside state.dir ({state}) in {ws.config}", "--create")
    assert not inner.exists()
    assert not (state / MARKER).exists()


def test_a_relative_path_is_compared_as_the_folder_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, stores=("nas", "usb"))
    ws.library.mkdir()
    monkeypatch.chdir(tmp_path / "incoming")
    _refused(ws, ".", "usb2", f"it is sources.incoming.path in {ws.config}")
    _refused(ws, "../library", "usb2", f"it is library.path in {ws.config}")


def test_a_folder_inside_another_store_is_refused_and_not_created(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    inner = ws.target("nas") / "usb2"
    marker = ws.target("nas") / MARKER
    _refused(ws, inner, "usb2", f"it is inside the store 'nas' ({marker})", "--create")
    assert not inner.exists()
    # the same folder of the store's own id: a store's root is its marker's folder
    _refused(ws, inner, "nas", f"it is inside the store 'nas' ({marker})", "--create")


def test_inside_a_configured_target_that_is_not_mounted_is_refused(tmp_path: Path) -> None:
    """Its marker is gone with the disk; the configuration still says where it is."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    (ws.target("nas") / MARKER).unlink()
    inner = ws.target("nas") / "photos"
    clash = f"it is inside targets.nas.path ({ws.target('nas')}) in {ws.config}"
    _refused(ws, inner, "nas", clash, "--create")
    _refused(ws, inner, "usb2", clash, "--create")
    _marked(ws, ws.target("nas"), "nas")  # its own folder: what init-target is for


def test_a_folder_around_configured_places_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    _refused(ws, ws.root, "usb2", f"it holds sources.incoming.path ({ws.incoming}) in {ws.config}")
    _refused(ws, tmp_path, "usb2", f"it holds sources.incoming.path ({ws.incoming}) in {ws.config}")


def test_the_library_is_refused_as_a_target_and_marked_as_the_library(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, stores=("usb",))
    ws.target("nas").mkdir()
    _refused(ws, ws.target("nas"), "library", f"it is targets.nas.path in {ws.config}")
    ws.library.mkdir()
    _refused(ws, ws.library, "nas", f"it is library.path in {ws.config}")
    assert _marked(ws, ws.library, "library").err == ""


def test_a_folder_that_holds_files_is_marked_with_a_warning(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    full = tmp_path / "olddisk"
    make_jpeg(full / "DCIM" / "IMG_9.JPG", OLD, seed=9)
    r = _marked(ws, full, "usb2")
    assert r.err == (
        f"warning: {full} already holds files (such as DCIM/IMG_9.JPG); reconcile never "
        "deletes them, and they count as copies only where their content matches: check it "
        "is the folder you meant\n"
    )
    assert _marked(ws, full, "usb2").err == ""  # marking it again: it is the store now


def test_a_new_disk_with_only_its_filesystem_folders_is_marked_quietly(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    disk = tmp_path / "newdisk"
    (disk / "lost+found").mkdir(parents=True)
    (disk / "lost+found" / "#1234").write_bytes(b"fsck found this")
    (disk / ".DS_Store").write_bytes(b"\0")
    (disk / "empty" / "folders").mkdir(parents=True)
    assert _marked(ws, disk, "usb2").err == ""


def test_without_a_configuration_it_marks_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick start marks the stores before desired_state.toml exists."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_CONFIG", raising=False)
    disk = tmp_path / "usb"
    r = run_cli(["init-target", str(disk), "--id", "usb", "--create"], now=NOW)
    assert (r.code, r.err) == (0, "")
    assert read_marker(disk) == "usb"
    # a marker above is seen with no configuration at all
    r = run_cli(["init-target", str(disk / "sub"), "--id", "usb2", "--create"], now=NOW)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"error: refusing to mark {disk / 'sub'} as the store 'usb2': it is inside the store "
        f"'usb' ({disk / MARKER}){WHY}"
    )


def test_a_place_reached_through_a_bind_mount_is_refused(tmp_path: Path) -> None:
    """Tests run as root: a real bind mount, invisible to paths."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    reached = f" in {ws.config}, reached through a mount or another way in"
    with mounted(tmp_path / "mnt" / "card", "--bind", str(ws.incoming)) as card:
        _refused(ws, card, "usb2", "it is sources.incoming.path" + reached)
        _refused(
            ws, card / "sub", "usb2", "it is inside sources.incoming.path" + reached, "--create"
        )
    with mounted(tmp_path / "mnt" / "home", "--bind", str(ws.root)) as home:
        _refused(ws, home, "usb2", f"it holds sources.incoming.path ({ws.incoming})" + reached)
    assert not (ws.incoming / MARKER).exists()
    assert not (ws.root / MARKER).exists()
    assert os.listdir(ws.incoming) == []
