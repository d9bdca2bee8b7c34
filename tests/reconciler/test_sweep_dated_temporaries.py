"""The sweep after a killed run judges a temporary by when it last changed
(its ctime, which only the kernel sets), never by the dates the tool gave
it: an encode, a download or a sidecar gets its item's capture time before
its rename, a date in the future when a camera's clock was ahead. Such a
temporary, left by a kill, was skipped as "younger than the lock" by every
sweep, for ever; one a live run is writing (dated years back) is still
never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import config
from reconciler.connect import connect
from reconciler.sweep import sweep_debris
from tests.helpers import Workspace, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[2]
KILLER = REPO / "tests" / "kill_at_syscall.py"
NOW = datetime.now(UTC)
FUTURE = NOW + timedelta(days=400)
PAST = datetime(2019, 5, 6, 7, 8, tzinfo=UTC)


def _dated(path: Path, when: datetime, data: bytes = b"partial") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def _lock_taken() -> float:
    """The time a run's lock is taken, apart from files made just before or
    after it (a file's ctime comes from a coarser clock than time.time())."""
    time.sleep(0.05)
    at = time.time()
    time.sleep(0.05)
    return at


def test_temporaries_are_judged_by_their_change_time_not_their_dates(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    desired = config.load(ws.config)
    fetch = desired.state_dir / "fetch-k1" / "original"
    killed = [  # a killed run's, dated by the tool: removed, whatever their dates
        _dated(ws.library / "2027/01/02/.reconcile-tmp-enc.JPG", FUTURE),  # an encode
        _dated(ws.target("nas") / "2027/01/02/.reconcile-tmp-side.xmp", FUTURE),  # a sidecar
        _dated(ws.library / "2019/05/06/.reconcile-tmp-dl.HEIC", PAST),  # a download
        _dated(fetch, FUTURE),
    ]
    os.utime(fetch.parent, (FUTURE.timestamp(), FUTURE.timestamp()))
    kept = [ws.library / "2027/01/02/IMG_1.JPG", ws.target("usb") / ".reconcile-tmp-nomarker"]
    for p in kept:
        _dated(p, PAST)
    (ws.target("usb") / ".reconcile-target.json").unlink()  # looks unmounted: not touched
    before = _lock_taken()
    live = [  # a live run's, written since, dated years back or ahead: never removed
        _dated(ws.library / "2019/05/06/.reconcile-tmp-live.JPG", PAST),
        _dated(ws.target("nas") / "2019/05/06/.reconcile-tmp-live.xmp", PAST),
        _dated(ws.library / "2027/01/02/.reconcile-tmp-live.MOV", FUTURE),
    ]
    removed = sweep_debris(desired, connect(desired), before=before)
    assert sorted(removed) == sorted([*killed[:3], fetch.parent])
    assert all(p.exists() for p in [*kept, *live])


def test_a_sidecar_killed_before_its_rename_is_swept(tmp_path: Path) -> None:
    """``replace_sidecar`` itself, SIGKILLed between dating its temporary
    (a future capture time) and linking it into place."""
    ws = make_workspace(tmp_path)
    dest = ws.library / "2027/01/02/IMG_1.JPG.xmp"
    dest.parent.mkdir(parents=True)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from providers.filesystem import replace_sidecar\n"
        "dest = Path(sys.argv[1])\n"
        "tmp = dest.with_name('.reconcile-tmp-side.xmp')\n"
        "replace_sidecar(dest, tmp, b'<x:xmpmeta/>', int(sys.argv[2]) * 10**9)\n"
    )
    killer = (
        "import os, signal, sys\n"
        "def hook(ev, args):\n"
        "    if ev == 'os.link':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "sys.addaudithook(hook)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", killer + code, str(dest), str(int(FUTURE.timestamp()))],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    [left] = dest.parent.glob(".reconcile-tmp-*")
    assert left.stat().st_mtime > time.time() + 86400  # dated ahead, as the item is
    desired = config.load(ws.config)
    assert sweep_debris(desired, connect(desired), before=_lock_taken()) == [left]
    assert not dest.exists()


def _run(ws: Workspace, *args: str, kill: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["PYTHONPATH"] = str(REPO)
    if kill:
        env["RECONCILE_TEST_KILL_ON"] = kill
    return subprocess.run(
        [sys.executable, str(KILLER), "-c", str(ws.config), *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ws.root,
        timeout=300,
    )


def test_a_killed_encode_of_a_future_dated_photo_leaves_no_temporary(tmp_path: Path) -> None:
    """A photo whose camera clock was ahead is archived and encoded; its
    encode's temporary gets the capture time before its rename, and a
    SIGKILL right then leaves it dated in the future. The next apply, which
    finds the run killed, removes it."""
    ws = make_workspace(tmp_path / "w")
    make_jpeg(ws.incoming / "FUT.JPG", FUTURE, seed=9)
    killed = _run(ws, "apply", "--yes", kill=r"os.rename|\.reconcile-tmp-.*\.JPG$|1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [left] = ws.library.rglob(".reconcile-tmp-*")
    assert left.stat().st_mtime > time.time() + 86400
    r = _run(ws, "apply", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "never finished (killed?): marked crashed; removed 1 temporary file(s)" in r.stdout
    assert list(ws.library.rglob(".reconcile-tmp-*")) == []
    assert (ws.incoming / "FUT.JPG").exists()  # captured "in the future": kept in its source
