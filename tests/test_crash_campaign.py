"""The crash campaign: ``reconcile apply`` as a real process, killed and
interrupted at many points of a run, on a world of ~100 real JPEGs with
removal on (a folder source, two filesystem targets, compression by age).

SIGKILL points come from the journal (``reconciler.crashpoint``, a test
hook): every action kind, just before and just after its outcome row, right
after a stage's "started" rows, and in the middle of writing a file. After
every kill, before the next run:

- every item gone from its source is byte-identical on both targets;
- no partial file under a final name (targets hold only whole originals,
  the library only originals or whole re-encoded JPEGs);
- nothing was ever deleted from a target, nothing changed in the source;
- no process of the killed run is left (forkserver, encoders);
and the next run sweeps the temporaries the killed one left and marks it
crashed. The campaign ends converged: the final plan is empty.

SIGINT and SIGTERM at several points: the run finishes what is in flight,
journals every action, ends ``interrupted`` with 130/143, leaves no
temporary file, and holds its lock meanwhile (a second apply exits 4).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import attrs
import pytest
from PIL import Image

from providers import folder
from providers.filesystem import TMP_PREFIX
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

pytestmark = pytest.mark.slow

TAG_ENV = "RECONCILE_TEST_TAG"
TARGETS = ("nas", "usb")
NOW = datetime.now(UTC)


def _decodes(data: bytes) -> bool:
    try:
        with Image.open(BytesIO(data)) as im:
            im.load()
    except OSError:
        return False
    return True


def _described(pids: list[int]) -> list[str]:
    """Each process as ps would show it: pid, state, parent, command line."""
    shown = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            shown.append(f"{pid} (gone)")
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        shown.append(f"{pid} state {state} parent {ppid}: {cmd.strip()[:200]}")
    return shown


def _tagged_processes(tag: str) -> list[int]:
    """Processes whose environment carries ``tag`` (a run and all it started)."""
    found = []
    needle = f"{TAG_ENV}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


@attrs.define
class Proc:
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        code = self.popen.wait(timeout)
        return code, self.out.read_text(), self.err.read_text()


@attrs.define
class World:
    ws: Workspace
    originals: dict[str, bytes]
    tag: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    seen: dict[str, dict[str, bytes]] = attrs.field(factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
        return {**env, TAG_ENV: self.tag, **extra}

    def start(self, *args: str, **extra: str) -> Proc:
        # Output to files, not pipes: a helper that outlived the run must
        # fail the test, not hang it waiting for the pipe to close.
        n = len(list(self.ws.root.glob("out-*")))
        out, err = self.ws.root / f"out-{n}", self.ws.root / f"err-{n}"
        cmd = [sys.executable, "-m", "reconciler.cli", "-c", str(self.ws.config), *args]
        with out.open("w") as o, err.open("w") as e:
            p = subprocess.Popen(cmd, env=self.env(**extra), stdout=o, stderr=e)
        return Proc(p, out, err)

    def run(self, *args: str, **extra: str) -> tuple[int, str, str]:
        return self.start(*args, **extra).wait()

    def wait_until_alone(self) -> None:
        """Nothing of a finished or killed run may keep running."""
        deadline = time.monotonic() + 30  # a loaded disk may hold a killed fsync a while
        while (left := _tagged_processes(self.tag)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == [], f"processes of a dead run still alive: {_described(left)}"

    def debris(self) -> set[Path]:
        roots = [self.ws.library, *(self.ws.target(t) for t in TARGETS)]
        found = {p for r in roots for p in r.rglob(f"{TMP_PREFIX}*")}
        return found | set((self.ws.root / "state").glob("fetch-*"))

    def check(self) -> None:
        """The invariant and the no-partial-file rules, on the disks as they are."""
        # A file a killed removal left aside is still the source's, by its name.
        incoming = {_named_back(rel): data for rel, data in files_under(self.ws.incoming).items()}
        whole = set(self.originals.values())
        for rel, data in incoming.items():
            assert self.originals[rel] == data, f"{rel} changed in the source"
        for t in TARGETS:
            files = files_under(self.ws.target(t))
            for path, data in self.seen.get(t, {}).items():
                assert files.get(path) == data, f"{t}:{path} was deleted or changed"
            for path, data in files.items():
                assert data in whole, f"{t}:{path} is not a whole original"
            held = set(files.values())
            for rel, data in self.originals.items():
                if rel not in incoming:
                    assert data in held, f"{rel} left its source but is not on {t}"
            self.seen[t] = files
        for path, data in files_under(self.ws.library).items():
            assert data in whole or _decodes(data), f"library:{path} is partial"

    def runs(self) -> list[tuple[int, str]]:
        with sqlite3.connect(self.ws.root / "state" / "state.db") as db:
            return [(int(i), str(s)) for i, s in db.execute("select id, status from runs")]

    def last_apply(self) -> tuple[int, str]:
        """The last run that acted (a locked-out apply is in the history too)."""
        return [r for r in self.runs() if r[1] != "locked"][-1]

    def journal(self, run_id: int) -> list[tuple[str, str, str, str]]:
        with sqlite3.connect(self.ws.root / "state" / "state.db") as db:
            sql = "select action_id, kind, status, detail from journal where run_id = ? order by id"
            return [tuple(r) for r in db.execute(sql, [run_id])]


def _named_back(rel: str) -> str:
    """``rel``, or the name of the file a killed removal left aside there."""
    head, _, name = rel.rpartition("/")
    original = folder.original_name(name)
    return rel if original is None else f"{head}/{original}" if head else original


def _world(root: Path, items: int, extra: str = "") -> World:
    ws = make_workspace(root, extra=extra)
    for i in range(items):
        # One in ten is recent: it stays in the source; the rest are old.
        age = timedelta(days=3) if i % 10 == 0 else timedelta(days=400 + 7 * i)
        make_jpeg(ws.incoming / f"card{i % 7}" / f"IMG_{i:04}.JPG", NOW - age, seed=i)
    return World(ws=ws, originals=files_under(ws.incoming))


def _schedule() -> list[tuple[str, str, int]]:
    """(point, kind, n): each stage in turn, so every kind is reached, with
    small n so each run leaves work for the next."""
    out: list[tuple[str, str, int]] = []
    stages = (
        ("copy-to-library", 13, ("finish-before", "finish-after", "write", "started")),
        ("copy-to-target", 14, ("finish-before", "write", "finish-after", "started")),
        ("encode", 12, ("finish-before", "finish-after", "started")),
        ("remove-from-source", 12, ("finish-before", "started", "aside", "finish-after")),
    )
    for kind, count, points in stages:
        for j in range(count):
            point = points[j % len(points)]
            n = 1 if point == "started" and kind != "remove-from-source" else 1 + (j * 5) % 4
            out.append((point, kind, n))
    return out


def _assert_killed_where_asked(world: World, run_id: int, point: str, kind: str, n: int) -> None:
    """The journal shows the run stopped exactly at the chosen point."""
    rows = world.journal(run_id)
    done = [r for r in rows if r[1] == kind and r[2] != "started"]
    started = [r for r in rows if r[1] == kind and r[2] == "started"]
    if point == "finish-before":
        assert len(done) == n - 1, rows[-3:]
    elif point == "finish-after":
        assert len(done) == n and rows[-1] == done[-1], rows[-3:]
    elif point == "started":
        assert started and len(done) == (n - 1 if kind == "remove-from-source" else 0)


def test_sigkill_campaign_keeps_the_invariant_and_converges(tmp_path: Path) -> None:
    world = _world(tmp_path / "w", 100)
    kills = asides = 0
    debris_seen = 0
    for point, kind, n in _schedule():
        before = world.debris()
        spec = f"{point}:{n}" if point in ("write", "aside") else f"{point}:{kind}:{n}"
        code, out, err = world.run("apply", "--yes", RECONCILE_TEST_KILL_AT=spec)
        world.wait_until_alone()
        assert not (before & world.debris()), "a killed run's temporaries were not swept"
        debris_seen += len(world.debris())
        world.check()
        if code == -signal.SIGKILL:
            kills += 1
            run_id, status = world.runs()[-1]
            assert status == "running"  # killed: nobody could say otherwise
            if point not in ("write", "aside"):
                _assert_killed_where_asked(world, run_id, point, kind, n)
            if point == "aside":
                asides += 1
                assert any(folder.original_name(p.name) for p in world.ws.incoming.rglob("*"))
        else:
            assert code == 0, (spec, out, err)
    assert kills >= 50 and asides >= 2, (kills, asides)

    for _ in range(3):  # cron, after the storm
        code, out, err = world.run("apply", "--yes")
        world.wait_until_alone()
        world.check()
        if "No changes." in out:
            break
    code, out, err = world.run("plan", "--detailed-exitcode")
    assert (code, out) == (0, "No changes. The library matches desired_state.toml.\n")
    assert world.debris() == set()
    statuses = [s for _, s in world.runs()]
    assert statuses.count("crashed") == kills and "running" not in statuses
    left = files_under(world.ws.incoming)
    assert len(left) == 10  # the recent ones; every old item was off-loaded
    assert not [rel for rel in left if _named_back(rel) != rel]  # none left aside
    for t in TARGETS:
        assert set(files_under(world.ws.target(t)).values()) == set(world.originals.values())
    print(f"\ncrash campaign: {kills} SIGKILLs, {debris_seen} temporaries swept after them")


def _interrupt(world: World, sig: int, pause_at: str, tmp: Path) -> tuple[int, str, str]:
    """Run apply paused at ``pause_at``, signal it, prove the lock is held
    while it finishes, then let it go; returns its exit code and output."""
    release = tmp / f"release-{uuid.uuid4().hex}"
    first = world.start(
        "apply",
        "--yes",
        RECONCILE_TEST_PAUSE_AT=pause_at,
        RECONCILE_TEST_PAUSE_FILE=str(release),
    )
    paused = Path(f"{release}.paused")
    deadline = time.monotonic() + 60
    while not paused.exists():
        assert first.popen.poll() is None and time.monotonic() < deadline, first.wait()
        time.sleep(0.02)
    first.popen.send_signal(sig)
    code, _, err = world.run("apply", "--yes")
    assert (code, first.popen.poll()) == (4, None), err
    assert "another reconcile run" in err
    release.touch()
    t0 = time.monotonic()
    code, out, err = first.wait(30)
    assert time.monotonic() - t0 < 5, "a stopped run must end within seconds"
    world.wait_until_alone()
    return code, out, err


def _assert_interrupted_cleanly(world: World) -> None:
    run_id, status = world.last_apply()
    assert status == "interrupted"
    rows = world.journal(run_id)
    started = {r[0] for r in rows if r[2] == "started"}
    finished = {r[0] for r in rows if r[2] != "started"}
    assert started <= finished, "an action started but its outcome was never journaled"
    assert any(r[2] == "interrupted" for r in rows)
    assert world.debris() == set()
    world.check()


#: (signal, where the run is paused when it arrives), in the order a run
#: reaches them: each stopped run leaves the rest to the next.
SIGNAL_POINTS = (
    (signal.SIGINT, "finish-after:copy-to-library:3"),  # between two actions
    (signal.SIGTERM, "write:35"),  # a target copy, mid-file, in a worker thread
    (signal.SIGTERM, "finish-before:encode:2"),  # encoders in flight
    (signal.SIGINT, "started:remove-from-source:2"),  # between the gate and the removal
)


def test_a_signal_stops_apply_cleanly_and_keeps_the_lock(tmp_path: Path) -> None:
    world = _world(tmp_path / "w", 30)
    for sig, pause_at in SIGNAL_POINTS:
        code, out, err = _interrupt(world, sig, pause_at, tmp_path)
        assert code == 128 + sig, (pause_at, out, err)
        name = signal.Signals(sig).name
        assert f"error: stopped by {name}; what was done is kept and journaled" in err
        assert "  - interrupted " in out
        _assert_interrupted_cleanly(world)
        kind = pause_at.split(":")[-2] if pause_at.count(":") == 2 else "copy-to-target"
        rows = world.journal(world.last_apply()[0])
        assert any(r[1] == kind and r[2] == "changed" for r in rows), pause_at

    code, out, err = world.run("apply", "--yes")  # the next run finishes the job
    assert code == 0, (out, err)
    world.check()
    code, out, _ = world.run("plan", "--detailed-exitcode")
    assert code == 0, out
    assert len(files_under(world.ws.incoming)) == 3  # only the recent ones stay


def test_a_second_signal_abandons_in_flight_copies_safely(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w", extra=KEEP_ORIGINALS)
    for i in range(2):  # real JPEGs with 6 MiB of trailing data: many chunks to copy
        path = make_jpeg(ws.incoming / f"IMG_{i}.JPG", NOW - timedelta(days=400), seed=i)
        with path.open("ab") as f:
            f.write(os.urandom(6 << 20))
    world = World(ws=ws, originals=files_under(ws.incoming))
    release = tmp_path / "release"
    first = world.start(
        "apply", "--yes", RECONCILE_TEST_PAUSE_AT="write:2", RECONCILE_TEST_PAUSE_FILE=str(release)
    )
    while not Path(f"{release}.paused").exists():
        assert first.popen.poll() is None, first.wait()
        time.sleep(0.02)
    first.popen.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    first.popen.send_signal(signal.SIGTERM)
    code, _, err = world.run("apply", "--yes")
    assert (code, first.popen.poll()) == (4, None), err  # still finishing: lock held
    release.touch()
    code, out, err = first.wait(30)
    assert code == 143, (out, err)
    assert "abandoned in flight after a second SIGTERM" in out
    world.wait_until_alone()
    _assert_interrupted_cleanly(world)
    assert len(files_under(ws.incoming)) == 2  # nothing left its source

    code, out, err = world.run("apply", "--yes")
    assert code == 0, (out, err)
    world.check()
    assert files_under(ws.incoming) == {}


def _make_clip(path: Path, seconds: int) -> Path:
    """A real H.264 clip, big enough that re-encoding it takes a few seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "4"),
            *("-metadata", "creation_time=2023-01-02T03:04:05Z", str(path)),
        ],
        check=True,
    )
    return path


def _encoding(tag: str) -> bool:
    """Is an ffmpeg of this run re-encoding right now?"""
    for pid in _tagged_processes(tag):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode()).name == "ffmpeg" and b"-crf" in argv:
            return True
    return False


def test_sigkill_during_a_video_encode_leaves_nothing_running(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "w")
    _make_clip(ws.incoming / "MOV_1.MOV", seconds=6)
    world = World(ws=ws, originals=files_under(ws.incoming))
    run = world.start("apply", "--yes")
    deadline = time.monotonic() + 60
    while not _encoding(world.tag):
        assert run.popen.poll() is None and time.monotonic() < deadline, run.wait()
        time.sleep(0.02)
    run.popen.kill()  # the main process only, as cron's timeout or the OOM killer would
    assert run.wait()[0] == -signal.SIGKILL
    world.wait_until_alone()  # forkserver, encoder and its ffmpeg died with it
    world.check()

    code, out, err = world.run("apply", "--yes")
    assert code == 0, (out, err)
    assert "never finished (killed?): marked crashed" in out
    assert world.debris() == set()
    code, out, _ = world.run("plan", "--detailed-exitcode")
    assert code == 0, out
