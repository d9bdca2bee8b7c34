"""The phone going away in the middle of a run (real Syncthing pair): a phone
that cannot be asked is never taken for one that lost its copy. Nothing it
holds is forgotten, nothing is sent to it twice, nothing is said removed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from providers.base import Liveness
from providers.syncthing.pair import SyncthingPair
from providers.syncthing.target import SyncthingTarget
from reconciler.state import StateDB
from tests.helpers import Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
FREEING = "liveness_timeout_s = 10\ndelete_local_copy = true\n"
WENT_AWAY = "waiting target phone: not proven alive this run: phone offline since "


def _jpegs(folder: Path) -> list[str]:
    return [p for p in files_under(folder) if p.endswith(".JPG")]


def _until(ws: Workspace, done: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Apply until ``done`` (the phone receives at its own pace)."""
    deadline = time.monotonic() + timeout
    while not done():
        r = ws.run("apply", "--yes", now=NOW)
        assert time.monotonic() < deadline, r.out + r.err
        time.sleep(0.3)


def _freed(tmp_path: Path, pair: SyncthingPair) -> tuple[Workspace, bytes]:
    """A photo archived to the phone, out of its source, its staging copy freed."""
    ws = phone_workspace(tmp_path / "ws", pair, removal=True, phone_options=FREEING)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    _until(ws, lambda: not files_under(ws.incoming) and not _jpegs(pair.local_folder))
    assert list(phone_files(pair).values()) == [photo]
    return ws, photo


def _offline_after_canary(monkeypatch: pytest.MonkeyPatch, pair: SyncthingPair) -> None:
    """The phone drops off the network right after its first canary arrived."""
    real = SyncthingTarget.prove_alive
    done: list[int] = []

    def prove_alive(self: SyncthingTarget) -> Liveness:
        live = real(self)
        if live.alive and not done:
            done.append(1)
            pair.stop_phone()
        return live

    monkeypatch.setattr(SyncthingTarget, "prove_alive", prove_alive)


def _rows(ws: Workspace) -> dict[str, dict[str, Any]]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return db.deliveries("phone")
    finally:
        db.close()


def test_a_phone_gone_while_its_freed_copies_are_asked_is_sent_nothing_again(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, photo = _freed(tmp_path, pair)
    rows = _rows(ws)
    _offline_after_canary(monkeypatch, pair)

    r = ws.run("apply", "--yes", now=NOW)

    assert _rows(ws) == rows  # the freed copy is still known
    assert not _jpegs(pair.local_folder)  # and not sent again
    # Waiting, as a phone offline from the start: not an error, not a loss.
    assert r.code == 0, r.out + r.err
    assert WENT_AWAY in r.out, r.out
    pair.start_phone()
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, _jpegs(pair.local_folder)) == (0, []), r.out + r.err
    assert list(phone_files(pair).values()) == [photo]


def test_a_phone_gone_as_its_copy_is_freed_keeps_it_freed_and_gets_no_second(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = phone_workspace(tmp_path / "ws", pair, removal=True, phone_options=FREEING)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    # The phone drops off right after the staging copy is deleted here.
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        real_unlink(path, *args, **kwargs)
        if kwargs.get("dir_fd") is not None and str(path).endswith("IMG_1.JPG"):
            pair.stop_phone()

    monkeypatch.setattr(os, "unlink", unlink)
    outs: list[str] = []
    deadline = time.monotonic() + 30
    while pair.phone.running:
        r = ws.run("apply", "--yes", now=NOW)
        outs.append(r.out + r.err)
        assert time.monotonic() < deadline, outs[-1]
        time.sleep(0.3)
    monkeypatch.setattr(os, "unlink", real_unlink)

    assert not _jpegs(pair.local_folder)  # it is gone here
    [row] = _rows(ws).values()
    assert row["freed_at"] and row["evidence"], row  # and recorded freed
    out = outs[-1]  # and not said to be kept
    assert "free-staging-copy" in out and "staging copy is kept" not in out, out
    pair.start_phone()
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, _jpegs(pair.local_folder)) == (0, []), r.out + r.err
    assert list(phone_files(pair).values()) == [photo]  # held once
    assert "archived" in ws.run("status", now=NOW).out


def test_a_conduit_phone_gone_midrun_is_not_said_to_have_removed_its_files(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\n'
    ws = phone_workspace(tmp_path / "ws", pair, removal=False, phone_options=options)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    _until(ws, lambda: "1 delivered" in ws.run("status", now=NOW).out)
    assert photo in phone_files(pair).values()
    _offline_after_canary(monkeypatch, pair)

    r = ws.run("plan", now=NOW)

    assert photo in phone_files(pair).values()
    assert "removed" not in r.out, r.out
    assert WENT_AWAY in r.out, r.out
    assert "1 delivered" in ws.run("status", now=NOW).out
