"""The configuration file itself, never a place nor a file the tool writes:
a metrics file named as the configuration (or a link to it) replaced it
with Prometheus text on the first plan, as the check ran before the file's
own path was known; one kept in the import folder it configures was
imported as a photo and then removed from it, and every later run stopped
with "not found"."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from tests.helpers import files_under, make_jpeg, make_workspace, mounted, run_cli

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def test_a_metrics_file_naming_the_configuration_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    ws.config.write_text(ws.config.read_text() + '\n[log]\nmetrics_file = "desired_state.toml"\n')
    before = ws.config.read_text()
    said = (
        f"error: {ws.config}: log.metrics_file ({ws.config}): that is the configuration file "
        "itself, which it would replace after every run; name another file (in "
        "node_exporter's folder)\n"
    )
    for command in ("validate", "plan"):
        r = ws.run(command)
        assert (r.code, r.out, r.err) == (1, "", said), command
    assert ws.config.read_text() == before


def test_a_metrics_file_linked_to_the_configuration_is_refused(tmp_path: Path) -> None:
    """Compared after symlinks, either way round: the metrics file a link
    to the configuration, or the configuration read through a link."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    (tmp_path / "ws" / "metrics.prom").symlink_to(ws.config)
    ws.config.write_text(ws.config.read_text() + '\n[log]\nmetrics_file = "metrics.prom"\n')
    before = ws.config.read_text()
    link = tmp_path / "config-link.toml"
    link.symlink_to(ws.config)
    for config in (ws.config, link):
        r = run_cli(["-c", str(config), "plan"])
        assert r.code == 1 and "log.metrics_file (" in r.err, r.err
        assert "that is the configuration file itself" in r.err
    assert ws.config.read_text() == before


def _in_its_source(tmp_path: Path) -> tuple[Path, Path]:
    """desired_state.toml kept in the import folder it configures (``path = "."``)."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for store in ("library", "nas", "usb"):
        write_marker(tmp_path / store, store)
    config = incoming / "desired_state.toml"
    config.write_text(
        textwrap.dedent(
            """
            [library]
            path = "../library"
            [state]
            dir = "../state"
            [sources.incoming]
            kind = "folder"
            path = "."
            [targets.nas]
            kind = "filesystem"
            path = "../nas"
            same_disk_ok = true
            [targets.usb]
            kind = "filesystem"
            path = "../usb"
            same_disk_ok = true
            [[policy.tiers]]
            name = "all"
            keep = "original"
            [policy.removal]
            enabled = true
            pace_seconds = 0
            """
        )
    )
    make_jpeg(incoming / "a.jpg", OLD, seed=1)
    for p in incoming.iterdir():
        os.utime(p, (OLD.timestamp(), OLD.timestamp()))
    return incoming, config


def test_the_configuration_inside_a_folder_source_is_refused(tmp_path: Path) -> None:
    """Refused, not skipped: nothing is imported, copied or removed, and
    the message names the file and the source."""
    incoming, config = _in_its_source(tmp_path)
    said = (
        f"error: {config}: the configuration file ({config}) is inside sources.incoming.path "
        f"({incoming}): it would be imported as a photo, copied to every target and removed "
        "from there once archived; keep it outside the folders the tool imports from (e.g. "
        "beside state.dir)\n"
    )
    for command in ("validate", "plan", "apply"):
        r = run_cli(["-c", str(config), command, *(["--yes"] if command == "apply" else [])])
        assert (r.code, r.err) == (1, said), command
    assert sorted(files_under(incoming)) == ["a.jpg", "desired_state.toml"]
    assert files_under(tmp_path / "library") == files_under(tmp_path / "nas") == {}


def test_the_configuration_inside_the_library_is_refused(tmp_path: Path) -> None:
    """The library's files are its photos: it would be copied to every target."""
    ws = make_workspace(tmp_path, removal=False)
    text = ws.config.read_text().replace('"library"', '"."').replace('"state"', '"../state"')
    text = text.replace('"incoming"', '"../incoming"').replace('"nas"', '"../nas"')
    inside = ws.library / "desired_state.toml"
    inside.write_text(text.replace('"usb"', '"../usb"'))
    r = run_cli(["-c", str(inside), "validate"])
    assert r.code == 1
    assert f"is inside library.path ({ws.library}): it would be copied to every target" in r.err


def test_the_state_directory_holds_the_configuration_but_not_as_its_own_files(
    tmp_path: Path,
) -> None:
    """Beside the state database is a fine place for it; named as one of
    the files the tool rewrites there (the log, the default metrics file),
    or as state.dir itself, it is refused."""
    ws = make_workspace(tmp_path, removal=False)
    text = ws.config.read_text().replace('dir = "state"', 'dir = "."')
    for p in ("library", "incoming", "nas", "usb"):
        text = text.replace(f'"{p}"', f'"../{p}"')
    state = tmp_path / "state"
    state.mkdir()
    for name in ("desired_state.toml", "reconcile.log", "reconcile.prom"):
        config = state / name
        config.write_text(text)
        r = run_cli(["-c", str(config), "validate"])
        if name == "desired_state.toml":
            assert r.code == 0, r.err
        else:
            assert r.code == 1
            assert r.err == (
                f"error: {config}: state.dir ({state}): the configuration file ({config}) is "
                "one of its own files, which the tool rewrites; rename the configuration file "
                "or move it\n"
            )
        config.unlink()
    ws.config.write_text(
        ws.config.read_text().replace('dir = "state"', 'dir = "desired_state.toml"')
    )
    r = ws.run("validate")
    assert r.code == 1
    assert f"state.dir ({ws.config}): that is the configuration file; name a folder" in r.err


def test_the_configuration_inside_a_source_through_a_bind_mount_is_refused(
    tmp_path: Path,
) -> None:
    """The source's folder is a bind mount of the folder holding the
    configuration: paths differ, identities do not. Every run refuses
    before any walk."""
    ws = make_workspace(tmp_path / "ws", removal=True)
    home = tmp_path / "home"
    home.mkdir()
    config = home / "desired_state.toml"
    text = ws.config.read_text()
    for p in ("library", "state", "nas", "usb"):
        text = text.replace(f'"{p}"', f'"{ws.root / p}"')
    make_jpeg(home / "a.jpg", OLD, seed=1)
    with mounted(tmp_path / "card", "--bind", str(home)) as card:
        config.write_text(text.replace('"incoming"', f'"{card}"'))
        for command in ("validate", "plan"):
            r = run_cli(["-c", str(config), command])
            assert r.code == 1, command
            assert (
                f"the configuration file ({config}) is inside sources.incoming.path ({card}), "
                "reached through a mount or another way in: it would be imported" in r.out + r.err
            ), (command, r.out, r.err)
    assert sorted(files_under(home)) == ["a.jpg", "desired_state.toml"]
    assert files_under(ws.library) == {}
