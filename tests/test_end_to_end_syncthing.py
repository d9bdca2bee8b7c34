"""The whole tool with the phone as a backup target, on two real Syncthing
instances on 127.0.0.1 (one plays the Pixel)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, Run, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "syncthing") as pair:
        yield pair


def workspace(root: Path, pair: SyncthingPair, *, free_local: bool, removal: bool) -> Workspace:
    phone = textwrap.dedent(
        f"""
        [targets.nas]
        kind = "filesystem"
        path = "nas"
        same_disk_ok = true
        [targets.phone]
        kind = "syncthing"
        path = "{pair.local_folder}"
        folder_id = "{pair.folder_id}"
        device_id = "{pair.phone.device_id}"
        url = "{pair.local.url}"
        delete_local_copy = {str(free_local).lower()}
        """
    )
    return make_workspace(
        root,
        removal=removal,
        targets=phone,
        extra=KEEP_ORIGINALS,
        stores=("library", "nas"),
    )


@pytest.fixture
def env(pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)


def until(ws: Workspace, predicate: str, timeout: float = 20.0) -> Run:
    """Plan until ``predicate`` shows in the plan (the phone confirms in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=NOW)
        if predicate in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_removal_waits_for_the_phone_then_the_staging_copy_is_freed(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=True, removal=True)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()

    first = ws.run("apply", "--yes", now=NOW)
    assert first.code == 0, first.err
    assert (
        "  … waiting incoming:IMG_1.JPG: 0 of 2 verified copies; phone must confirm the copy "
        "made this run; kept in the source"
    ) in first.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]  # not removed yet

    r = until(ws, "- remove-from-source incoming:IMG_1.JPG")
    assert "- remove-from-source incoming:IMG_1.JPG: archived (2 verified copies)" in r.out
    assert "- free-staging-copy phone:2022/03/04/IMG_1.JPG" in r.out

    second = ws.run("apply", "--yes", now=NOW)
    assert second.code == 0, second.out + second.err
    assert files_under(ws.incoming) == {}
    assert list(files_under(pair.local_folder)) == [".stignore"]  # the staging copy is freed…
    assert files_under(pair.phone_folder) == {"2022/03/04/IMG_1.JPG": photo}  # …the phone keeps it
    final = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (final.code, final.out) == (0, "No changes. The library matches desired_state.toml.\n")


def test_phone_offline_is_waiting_not_an_error_and_confirms_after_it_returns(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=False, removal=True)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    pair.stop_phone()

    assert ws.run("apply", "--yes", now=NOW).code == 0
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0
    assert r.out == (
        "Not done this run:\n"
        "  … waiting incoming:IMG_1.JPG: 1 of 2 verified copies; waiting for phone to confirm; "
        "kept in the source\n"
        "\n"
        "No changes. The library matches desired_state.toml. (1 waiting)\n"
    )
    status = ws.run("status").out
    assert "phone: phone offline, last seen " in status
    assert "phone: 1 file(s) waiting for confirmation since " in status

    pair.start_phone()
    until(ws, "- remove-from-source")
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}


def test_a_copy_changed_on_the_phone_does_not_count_at_removal_time(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=False, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    deadline = time.monotonic() + 20
    phone_copy = pair.phone_folder / "2022/03/04/IMG_1.JPG"
    while not phone_copy.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    until(ws, "No changes.")  # confirmed and recorded

    phone_copy.write_bytes(b"edited on the phone")
    pair.scan_phone("2022/03/04/IMG_1.JPG")
    time.sleep(0.5)
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 3
    assert "  ! refused remove-from-source incoming:IMG_1.JPG: IMG_1.JPG: 1 of 2 verified" in r.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
