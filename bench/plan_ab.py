"""Same-run A/B of a converged no-op `reconcile plan`: two or more checkouts
of the code, alternating, each a fresh CLI process as cron runs it.

Builds the trees of ``bench/noop_plan.py`` once (or reuses ``--root``), fills
the hash cache with one plan, then gives each side its own copy of the state
DB (a plan writes its run record and may keep tree listings: no side may
see the other's). Each round runs every side once (the order reversed on
every other round, so neither always runs first) and ``rsync -a --dry-run``
over the same trees. A side is ``NAME=PATH``: PATH is put first on
PYTHONPATH for that side's process, which is the console script
(``reconcile``, next to this interpreter), so ``__main__``, imports and
teardown are cron's.

CPU is every process of the plan's (its helper included): this process is
a child subreaper, so the plan's orphans (a forkserver) are reaped here and
counted. Peak RSS is the plan process's own (``wait4``: it, or a child it
reaped, whichever was larger). Prints each round, then per side the best
and median wall time, median CPU and peak RSS. Asserts nothing.

    .venv/bin/python bench/plan_ab.py --items 100000 --rounds 6 \\
        old=/tmp/reconcile-old new=.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from noop_plan import build, rsync  # bench/ is on the path: run as a script

_PR_SET_CHILD_SUBREAPER = 36


def _reap() -> None:
    """Wait for the plan's orphans (a helper it started), so their CPU counts."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def _plan(tree: Path, config: Path) -> tuple[float, float, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cron's runs read compiled modules
    script = Path(sys.executable).with_name("reconcile")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(script), "-c", str(config), "plan", "--detailed-exitcode"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak, not the largest yet
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        said = err.read()[-2000:].decode(errors="replace")
    _reap()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: expected a converged plan, got {proc.returncode}:\n{said}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sides", nargs="+", metavar="NAME=PATH")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--root", type=Path, help="build the trees here (kept; reused if built)")
    args = ap.parse_args()
    if not shutil.which("rsync"):
        raise SystemExit("rsync is not installed (make apt)")
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sides = [
        (name, Path(path).resolve()) for name, _, path in (s.partition("=") for s in args.sides)
    ]
    with tempfile.TemporaryDirectory(prefix="reconcile-ab-") as tmp:
        root = args.root or Path(tmp)
        config = root / "desired_state.toml"
        if not config.exists():
            build(root, args.items)
            _plan(sides[0][1], config)  # the first plan: every file hashed once
        text = config.read_text()
        for name, _ in sides:
            shutil.copytree(root / "state", root / f"state-{name}", dirs_exist_ok=True)
            (root / f"{name}.toml").write_text(text.replace('"state"', f'"state-{name}"'))
        got: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in sides}
        theirs: list[float] = []
        for r in range(args.rounds):
            for name, tree in sides if r % 2 == 0 else sides[::-1]:
                got[name].append(_plan(tree, root / f"{name}.toml"))
            start = time.perf_counter()
            rsync(root)
            theirs.append(time.perf_counter() - start)
            said = "  ".join(f"{n} {v[-1][0]:.2f} s (CPU {v[-1][1]:.2f})" for n, v in got.items())
            print(f"round {r + 1}: {said}  rsync {theirs[-1]:.2f} s", flush=True)
    ref = min(theirs)
    for name, runs in got.items():
        walls = [w for w, _, _ in runs]
        print(
            f"{name}: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s, "
            f"median CPU {statistics.median(c for _, c, _ in runs):.2f} s, "
            f"peak RSS {max(m for _, _, m in runs):.0f} MiB; best / rsync best "
            f"{min(walls) / ref:.2f}x"
        )
    print(f"rsync -a --dry-run x3: best {ref:.2f} s, median {statistics.median(theirs):.2f} s")


if __name__ == "__main__":
    main_bench()
