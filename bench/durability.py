"""What making encoded files durable costs, per file, and whether group commit pays.

Issue 11's JPEG row: ``encode_file`` fsyncs each encoded file before the
applier renames it over the library file (DESIGN: written, fsynced,
renamed). Group commit would write several encoded files, make them durable
together, and only then rename each. This measures the candidates:

- strategies (the default): the q75 JPEGs Pillow makes of ``--images``
  (else generated 128x128 photos) written to ``--dir`` (a folder on the
  filesystem to measure; default a temporary one) and made durable by each
  of: an fsync per file as written (today); none (the floor, not durable);
  ``syncfs(2)`` once for all (not a barrier on every filesystem: see
  docs/benchmarks.md); ``syncfs`` then an fsync per file (as durable as
  today: every file still fsynced); fsyncs of all from 2 and 8 threads; and
  ``sync_file_range(WRITE)`` as each is written, an fsync per file later.
  Wall and this process's CPU per file, best and median over the rounds.
- ``--applier``: the applier's whole encode run (the same JPEGs, copied
  into a library with a COM segment each so that none is a duplicate, then
  encoded by ``apply`` at q30), with and without every fsync of Python
  code (``os.fsync``: the encoded file's and its folder's; SQLite's own are
  kept), in turn: the most group commit could save in the applier.

Prints figures; asserts nothing.

    .venv/bin/python bench/durability.py --images bench/out [--dir /mnt/x] [--rounds 9]
    .venv/bin/python bench/durability.py --applier --images bench/out [--copies 4]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.media import jpeg, still

_libc = ctypes.CDLL(None, use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2
_NO_FSYNC = "RECONCILE_BENCH_NO_FSYNC"


def usable_jpegs(folder: Path | None) -> list[bytes]:
    """The originals encode_file re-encodes (colour or greyscale, nothing
    carried that it cannot carry), else 60 generated 128x128 photos."""
    if folder is None:
        out = []
        for seed in range(60):
            im = Image.effect_mandelbrot((128, 128), (-2.0 + seed * 0.07, -1.2, 1.0, 1.2), 48)
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=95)
            out.append(buf.getvalue())
        return out
    found = []
    warnings.simplefilter("ignore")  # Pillow's test images include odd ones on purpose
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg") or not p.is_file():
            continue
        try:
            data = p.read_bytes()
            st = jpeg.read_structure(data, p)
            with Image.open(io.BytesIO(data)) as im:
                usable = im.mode in ("L", "RGB") and st.uncarried(data) is None
            if usable:
                still.encode_jpeg(p, quality=75, original_sha256="0" * 64, tier="t", data=data)
                found.append(data)
        except Exception:  # a test image meant to be broken is not used
            continue
    return found


def _syncfs(fd: int) -> None:
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def strategies(outputs: list[bytes], folder: Path, rounds: int) -> None:
    names = iter(range(10**9))
    threads = ThreadPoolExecutor(8)

    def write_all(*, range_write: bool = False) -> list[int]:
        fds = []
        for data in outputs:
            path = folder / f"out-{next(names)}.jpg"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            os.write(fd, data)
            if range_write:
                _libc.sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
            fds.append(fd)
        return fds

    def each_as_written() -> None:  # today, as encode_file writes
        for data in outputs:
            path = folder / f"out-{next(names)}.jpg"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def grouped(sync: Callable[[list[int]], object], *, range_write: bool = False) -> None:
        fds = write_all(range_write=range_write)
        try:
            sync(fds)
        finally:
            for fd in fds:
                os.close(fd)

    def fsync_each(fds: list[int]) -> None:
        for fd in fds:
            os.fsync(fd)

    def syncfs_then_fsync(fds: list[int]) -> None:
        _syncfs(fds[0])
        fsync_each(fds)

    def from_threads(n: int) -> Callable[[list[int]], object]:
        def run(fds: list[int]) -> None:
            if n == 8:
                list(threads.map(os.fsync, fds))
            else:
                with ThreadPoolExecutor(n) as pool:
                    list(pool.map(os.fsync, fds))

        return run

    runs: list[tuple[str, Callable[[], object]]] = [
        ("fsync each as written (today)", each_as_written),
        ("no sync (floor, not durable)", lambda: grouped(lambda fds: None)),
        ("all written, one syncfs", lambda: grouped(lambda fds: _syncfs(fds[0]))),
        ("all written, syncfs + fsync each", lambda: grouped(syncfs_then_fsync)),
        ("all written, fsync 2 threads", lambda: grouped(from_threads(2))),
        ("all written, fsync 8 threads", lambda: grouped(from_threads(8))),
        ("range write each, fsync each", lambda: grouped(fsync_each, range_write=True)),
    ]
    walls: dict[str, list[float]] = {label: [] for label, _ in runs}
    cpus: dict[str, list[float]] = {label: [] for label, _ in runs}
    count = len(outputs)
    for _ in range(rounds):
        for label, run in runs:  # all in every round, in turn: load falls on each alike
            os.sync()  # nobody's dirty pages waiting, ours or the last run's
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            walls[label].append((time.perf_counter() - wall) / count * 1000)
            cpus[label].append((time.process_time() - cpu) / count * 1000)
            for f in folder.glob("out-*.jpg"):
                f.unlink()
    print("per file, ms: wall best / median, this process's CPU best / median")
    for label, _ in runs:
        w, c = walls[label], cpus[label]
        print(
            f"  {label:34} {min(w):6.3f} / {statistics.median(w):6.3f}   "
            f"{min(c):6.3f} / {statistics.median(c):6.3f}"
        )


#: One apply in a process of its own (its encoders inherit its path; the
#: forkserver's ``__main__`` is this script, hence the guard).
_APPLY = """
import time
from datetime import datetime, UTC
from tests.helpers import run_cli
if __name__ == "__main__":
    wall = time.perf_counter()
    got = run_cli(["-c", {config!r}, "apply", "--yes"], now=datetime(2023, 1, 1, tzinfo=UTC))
    wall = time.perf_counter() - wall
    summary = [line for line in got.out.splitlines() if line.startswith("Apply:")]
    print(got.code, wall, *summary)
"""


def applier(outputs: list[bytes], rounds: int, copies: int) -> None:
    """The applier's encode run on these originals, with and without the
    fsyncs of Python code (in the run and in its encoder processes: a
    ``sitecustomize`` module on their path drops them when told)."""
    from tests.helpers import KEEP_ORIGINALS, make_workspace, run_cli

    repo = str(Path(__file__).resolve().parent.parent)
    one_tier = '\n[[policy.tiers]]\nname = "q30"\njpeg_quality = 30\n'
    captured = datetime(2021, 6, 1, tzinfo=UTC).timestamp()
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-durability-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            f"import os\nif os.environ.get({_NO_FSYNC!r}):\n    os.fsync = lambda fd: None\n"
        )
        script = Path(tmp) / "apply_once.py"
        for n in range(rounds):
            for dropped in (False, True):
                ws = make_workspace(Path(tmp) / f"ws-{n}-{dropped}", extra=KEEP_ORIGINALS)
                for i, data in enumerate(outputs * copies):
                    tag = f"copy {i}".encode()
                    com = b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag
                    path = ws.incoming / f"IMG_{i:05d}.JPG"
                    path.write_bytes(data[:2] + com + data[2:])
                    os.utime(path, (captured, captured))
                # imported, archived, originals kept; then one tier for all: only encodes
                assert run_cli(["-c", str(ws.config), "apply", "--yes"]).code == 0
                ws.config.write_text(ws.config.read_text().replace(KEEP_ORIGINALS, one_tier))
                script.write_text(_APPLY.format(config=str(ws.config)))
                os.sync()
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), repo])}
                env[_NO_FSYNC] = "1" if dropped else ""
                done = subprocess.run(
                    [sys.executable, str(script)], env=env, capture_output=True, text=True
                )
                code, wall, summary = done.stdout.split(maxsplit=2)
                results[dropped].append(float(wall))
                print(
                    f"round {n}, {'without' if dropped else 'with'} fsync: exit {code}, "
                    f"{float(wall) * 1000:.0f} ms; {summary.strip()}"
                )
    for dropped, walls in results.items():
        print(
            f"apply {'without' if dropped else 'with'} fsync: best {min(walls) * 1000:.0f} ms, "
            f"median {statistics.median(walls) * 1000:.0f} ms ({len(outputs) * copies} files)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="JPEGs to use (e.g. Pillow's Tests/images)")
    parser.add_argument("--dir", type=Path, help="a folder on the filesystem to measure")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--applier", action="store_true", help="the applier's run, A/B")
    parser.add_argument("--copies", type=int, default=4, help="--applier: copies of each")
    args = parser.parse_args(argv)
    originals = usable_jpegs(args.images)
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"cores: {os.cpu_count()}; load average before: {load}; {len(originals)} originals")
    if args.applier:
        applier(originals, min(args.rounds, 5), args.copies)
        return 0
    outputs = []
    for data in originals:
        with Image.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=75)
            outputs.append(buf.getvalue())
    print(f"{len(outputs)} outputs, {sum(map(len, outputs)) / len(outputs) / 1000:.1f} kB each")
    with tempfile.TemporaryDirectory(prefix="bench-durability-", dir=args.dir) as tmp:
        strategies(outputs, Path(tmp), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
