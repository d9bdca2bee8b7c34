"""An encoder process lost in the middle of an encode: by systemd's stop,
which signals every process of the unit at once (KillMode=control-group),
the run ends interrupted (exit 143); by the OOM killer alone, that encode
fails (tried again next run) and the rest of the run goes on. Neither is
"internal error (BrokenProcessPool ...); this is a bug"."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import encoder_pool
from reconciler.encoder_pool import EncoderLost, EncoderPool
from reconciler.interrupt import Abandoned, Interrupts
from tests.helpers import Workspace, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[2]
OLD_CLIP_TIME = "2023-01-02T03:04:05Z"
OLD = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)


# ------------------------------------------------------------ the pool itself


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder_pool, "SIGNAL_GRACE_S", 0.2)


def test_a_worker_lost_with_no_signal_fails_its_encode_and_a_new_pool_follows(
    short_grace: None,
) -> None:
    pool = EncoderPool(Interrupts(), None, processes=1)
    try:
        assert pool.executor().submit(os.getpid).result(timeout=60) > 0
        lost = pool.executor().submit(os._exit, 9)  # the worker dies mid-task
        with pytest.raises(EncoderLost, match="the encoder process was killed"):
            pool.result(lost)  # type: ignore[arg-type]
        # the broken pool refuses work at once: that encode is lost as well
        with pytest.raises(EncoderLost):
            pool.result(pool._pool.submit(os.getpid))  # type: ignore[union-attr,arg-type]
        first = pool._pool
        again = pool.executor().submit(os.getpid).result(timeout=60)
        assert pool._pool is not first and again > 0
    finally:
        pool.close()
    assert pool._pool is None and pool._broken == []


def test_a_worker_lost_after_a_signal_to_the_run_is_interrupted(short_grace: None) -> None:
    stop = Interrupts()
    pool = EncoderPool(stop, None, processes=1)
    try:
        stop.stopping.set()  # the run's first SIGTERM
        with pytest.raises(Abandoned):
            pool.result(pool.executor().submit(os._exit, 9))
    finally:
        pool.close()


def test_no_new_pool_starts_once_the_run_is_stopping(short_grace: None) -> None:
    stop = Interrupts()
    pool = EncoderPool(stop, None, processes=1)
    try:
        with pytest.raises(EncoderLost):
            pool.result(pool.executor().submit(os._exit, 9))
        broken = pool._pool
        stop.stopping.set()
        with pytest.raises(Abandoned):  # an encode that got this far is interrupted
            pool.result(pool.executor().submit(os.getpid))  # type: ignore[arg-type]
        assert pool._pool is broken
    finally:
        pool.close()


def test_a_signal_that_reaches_the_run_just_after_its_worker_died_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """systemd signals the unit's processes in no set order: the worker may
    be gone before the run's handler has run."""
    monkeypatch.setattr(encoder_pool, "SIGNAL_GRACE_S", 30.0)
    stop = Interrupts()
    pool = EncoderPool(stop, None, processes=1)
    try:
        lost = pool.executor().submit(os._exit, 9)
        while not lost.done():
            time.sleep(0.01)
        threading.Timer(0.3, stop.stopping.set).start()
        started = time.monotonic()
        with pytest.raises(Abandoned):
            pool.result(lost)  # type: ignore[arg-type]
        assert time.monotonic() - started < 10
    finally:
        pool.close()


# ------------------------------------------------------- the real CLI, killed


def _clip(path: Path) -> Path:
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "8"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "4"),
            *("-metadata", f"creation_time={OLD_CLIP_TIME}", str(path)),
        ],
        check=True,
    )
    return path


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack += kids.get(p, [])
    return out


def _program(pid: int) -> str:
    try:
        return Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).name
    except (OSError, IndexError):
        return ""


def _apply_until_ffmpeg(ws: Workspace) -> tuple[subprocess.Popen[str], list[int]]:
    """``reconcile apply --yes`` as a process of its own session (a unit of
    its own, as systemd starts it), once an encoder's ffmpeg is running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (ff := [q for q in _descendants(p.pid) if _program(q) == "ffmpeg"]):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.02)
    return p, ff


def _journal(ws: Workspace) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(ws.root / "state" / "state.db") as db:
        rows = db.execute("select action_id, kind, status, detail from journal").fetchall()
    return [(a, k, s, d or "") for a, k, s, d in rows]


def _unfinished(rows: list[tuple[str, str, str, str]]) -> set[str]:
    started = {a for a, _, s, _ in rows if s == "started"}
    return started - {a for a, _, s, _ in rows if s != "started"}


def test_systemd_stop_during_an_encode_ends_the_run_interrupted(tmp_path: Path) -> None:
    """KillMode=control-group: SIGTERM to the run, its forkserver, its
    encoder workers and their ffmpeg, all at once."""
    ws = make_workspace(tmp_path / "w")
    _clip(ws.incoming / "MOV_1.MOV")
    p, _ = _apply_until_ffmpeg(ws)
    for q in _descendants(p.pid):
        with contextlib.suppress(ProcessLookupError):  # a process gone meanwhile
            os.kill(q, signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, (out, err)
    assert "internal error" not in err and "stopped by SIGTERM" in err, err
    rows = _journal(ws)
    assert _unfinished(rows) == set(), rows
    encodes = [s for _, k, s, _ in rows if k == "encode" and s != "started"]
    assert encodes and set(encodes) <= {"interrupted", "failed"}, rows
    # one signal, not two: the journal says why as it was
    said = [d for _, k, s, d in rows if k == "encode" and s == "interrupted"]
    assert all("a second" not in str(d) for d in said), rows
    assert list(ws.library.rglob(".reconcile-tmp-*")) == []
    with sqlite3.connect(ws.root / "state" / "state.db") as db:
        assert db.execute("select status from runs where command = 'apply'").fetchall() == [
            ("interrupted",)
        ]


def test_an_encoder_killed_alone_fails_its_encode_and_the_run_goes_on(tmp_path: Path) -> None:
    """The OOM killer picks an encoder worker: that encode fails with a reason
    and is tried again next run; the removals after it are still done."""
    ws = make_workspace(tmp_path / "w")
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    _clip(ws.incoming / "MOV_1.MOV")
    p, ff = _apply_until_ffmpeg(ws)
    worker = int(Path(f"/proc/{ff[0]}/stat").read_text().rpartition(")")[2].split()[1])
    os.kill(worker, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    assert "internal error" not in err, err
    assert p.returncode == 1 and "run apply again to retry them" in err, (out, err)
    rows = _journal(ws)
    assert _unfinished(rows) == set(), rows
    lost = [d for _, k, s, d in rows if k == "encode" and s == "failed"]
    assert any("the encoder process was killed" in d for d in lost), rows
    assert any(k == "remove-from-source" and s == "changed" for _, k, s, _ in rows), rows
    # tried again, and done, by the next run
    again = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "encode" in again.stdout and "(crf" in again.stdout, again.stdout
    assert list(ws.library.rglob(".reconcile-tmp-*")) == []
