"""The phone between the copy stage and the removal of one apply, and the
phone deleting its copy again and again (the whole tool, real Syncthing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing import liveness
from providers.syncthing.pair import SyncthingPair
from reconciler import gate
from reconciler.model import RemoveFromSource
from tests.helpers import Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)


def _confirmed(ws: Workspace) -> None:
    """Apply (removal off) until the phone confirmed the photo."""
    deadline = time.monotonic() + 20
    while True:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
        if r.code == 0 and "waiting" not in r.out:
            return
        assert time.monotonic() < deadline, r.out
        time.sleep(0.3)


def _at_gate(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """``hook`` runs right before the removal gate's first check."""
    real = gate.RemovalGate.check
    done: list[int] = []

    def check(
        self: gate.RemovalGate, a: RemoveFromSource, side: gate.SourceSide | None = None
    ) -> list[str]:
        if not done:
            done.append(1)
            hook()
        return real(self, a, side)

    monkeypatch.setattr(gate.RemovalGate, "check", check)


def _ready(tmp_path: Path, pair: SyncthingPair) -> Workspace:
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=False, phone_options="liveness_timeout_s = 5\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    _confirmed(ws)
    ws.removal(True)
    return ws


def test_a_phone_gone_offline_before_the_removal_is_waited_for_not_refused(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ready(tmp_path, pair)
    _at_gate(monkeypatch, pair.stop_phone)
    r = ws.run("apply", "--yes", now=NOW)
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    # Not a person's matter (exit 3), and its copy is not taken for a wrong one.
    assert r.code == 0, r.out + r.err
    assert "refused" not in r.out, r.out
    assert "unavailable now: phone; kept" in r.out, r.out
    pair.start_phone()  # (the hook ran once: the gate is itself again)
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, list(files_under(ws.incoming))) == (0, []), r.out + r.err


def test_an_old_liveness_proof_is_made_again_at_the_removal(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ready(tmp_path, pair)
    # Every proof is "old" here: the gate asks the phone again, whose folder
    # is gone since observation (unmounted storage): its per-file answers
    # here still say it holds the photo.
    monkeypatch.setattr(liveness, "MAX_PROOF_AGE_S", 0.0)
    _at_gate(monkeypatch, lambda: pair.phone_folder.rename(tmp_path / "unmounted"))
    r = ws.run("apply", "--yes", now=NOW)
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + r.err
    assert "1 of 2 verified copies now (nas); unavailable now: phone; kept" in r.out, r.out


def _until_freed(ws: Workspace, pair: SyncthingPair, photo: bytes) -> None:
    """Apply until the photo left its source and this machine, held by the phone."""
    deadline = time.monotonic() + 20
    while True:
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        freed = not any(p.endswith(".JPG") for p in files_under(pair.local_folder))
        if freed and photo in phone_files(pair).values():
            return
        assert time.monotonic() < deadline, r.out + r.err
        time.sleep(0.3)


def test_the_phone_deleting_its_copy_again_and_again_never_stalls_the_run(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws = phone_workspace(
        tmp_path / "ws",
        pair,
        removal=True,
        phone_options="liveness_timeout_s = 10\ndelete_local_copy = true\n",
    )
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    _until_freed(ws, pair, photo)
    assert files_under(ws.incoming) == {}
    # Google Photos' "Free up space", more times than any fixed set of names lasts.
    for _ in range(4):
        for p in pair.phone_folder.rglob("*.JPG"):
            p.unlink()
        pair.scan_phone()
        _until_freed(ws, pair, photo)
    assert len(phone_files(pair)) == 1, sorted(phone_files(pair))
