"""The no-op plan's curve: time and peak memory of a converged `reconcile plan`
at 1k, 10k and 100k items, each beside `rsync -a --dry-run` on the same trees
in the same run.

For each size it builds the trees of ``bench/noop_plan.py`` (an import folder,
a library and two targets holding the same files), runs one `reconcile plan`
to fill the hash cache (the *first plan*: every file hashed once), then
alternates, ``--repeat`` times, a no-op `reconcile plan` as a fresh process
(what cron runs: interpreter start and imports included) with rsync over the
three stores. A plan is either made (observed and planned) or, from the
third no-op plan on a library above the walk-ahead threshold, answered from
the converged plan the one before kept (``reconciler.kept_plan``): each
kind's best is printed. Peak memory is the plan process's own maximum RSS, and beside
it the peak of all its processes together, sampled every 0.1 s (on a large
library a helper process walks trees ahead, from a forkserver). CPU is the
plan process's own. Prints a table and, with ``--plot``, draws it
(matplotlib). Asserts nothing.

    .venv/bin/python bench/plan_curve.py --sizes 1000,10000,100000 --plot docs/benchmarks.png
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from noop_plan import build, rsync  # bench/ is on the path: run as a script


def child(config: str) -> None:
    """Run inside the measured process: one plan, then its own figures. The
    plan reads its arguments from sys.argv, as the console script's does
    (the command is then the whole process, as under cron)."""
    from reconciler import kept_plan
    from reconciler.cli import main

    check = kept_plan.check
    answered: list[bool] = []

    def spy(*args: object, **kwargs: object) -> kept_plan.Check | None:
        found = check(*args, **kwargs)  # type: ignore[arg-type]
        answered.append(found is not None and found.kept is not None)
        return found

    kept_plan.check = spy  # type: ignore[assignment]
    out = io.StringIO()
    sys.argv = ["reconcile", "-c", config, "plan", "--detailed-exitcode"]
    code = main(stdout=out, stderr=out)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "code": code,
                "rss_mib": usage.ru_maxrss / 1024,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "kept": any(answered),
                "tail": out.getvalue()[-1500:] if code else "",
            }
        )
    )


def _tree_rss_mib(top: int) -> float:
    """The resident memory of ``top`` and every process below it (a large
    library's plan walks ahead in a helper process, from a forkserver)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * page
    total = 0
    for pid in rss:
        p = pid
        while p and p != top:
            p = parents.get(p, 0)
        if p == top:
            total += rss[pid]
    return total / (1 << 20)


def plan_process(config: Path) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The exit is timed by a thread waiting on it, not by the sampling loop
    # below noticing it: that would add up to 0.1 s to every plan (a sixth
    # of a small library's).
    done: list[tuple[float, str, str]] = []

    def wait() -> None:
        out, err = proc.communicate()
        done.append((time.perf_counter(), out, err))

    waiter = threading.Thread(target=wait)
    waiter.start()
    peak_all = 0.0
    while waiter.is_alive():  # every 0.1 s: the plan's process tree
        peak_all = max(peak_all, _tree_rss_mib(proc.pid))
        waiter.join(0.1)
    ended, out, err = done[0]
    wall = ended - start
    if proc.returncode:
        raise SystemExit(f"the plan process failed:\n{err[-2000:]}")
    got = json.loads(out.strip().splitlines()[-1])
    if got["code"] != 0:
        raise SystemExit(f"expected a converged plan, got exit {got['code']}:\n{got['tail']}")
    return {
        "wall_s": wall,
        "rss_mib": got["rss_mib"],
        "all_rss_mib": max(peak_all, got["rss_mib"]),
        "cpu_s": got["cpu_s"],
        "kept": got["kept"],
    }


def rsync_timed(root: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    rsync(root)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": wall, "cpu_s": cpu}


def measure(n: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="reconcile-curve-") as tmp:
        root = Path(tmp)
        built = time.perf_counter()
        config = build(root, n)
        built = time.perf_counter() - built
        first = plan_process(config)
        ours = []
        theirs = []
        for _ in range(repeat):
            ours.append(plan_process(config))
            theirs.append(rsync_timed(root))
    # Plans made (observed), and plans answered from the kept converged plan
    # (reconciler.kept_plan: from the third no-op plan on, above the
    # walk-ahead threshold); each kind's best.
    made = [r for r in ours if not r["kept"]]
    kept = [r for r in ours if r["kept"]]
    best = min(made, key=lambda r: r["wall_s"])
    ref = min(theirs, key=lambda r: r["wall_s"])
    answered = min(kept, key=lambda r: r["wall_s"]) if kept else None
    return {
        "items": n,
        "build_s": built,
        "first_plan_s": first["wall_s"],
        "plan_s": best["wall_s"],
        "plan_cpu_s": min(r["cpu_s"] for r in made),
        "kept_s": answered["wall_s"] if answered else float("nan"),
        "kept_cpu_s": answered["cpu_s"] if answered else float("nan"),
        "kept_ratio": answered["wall_s"] / ref["wall_s"] if answered else float("nan"),
        "kept_rss_mib": answered["rss_mib"] if answered else float("nan"),
        "rsync_s": ref["wall_s"],
        "rsync_cpu_s": min(r["cpu_s"] for r in theirs),
        "ratio": best["wall_s"] / ref["wall_s"],
        "peak_rss_mib": max(r["rss_mib"] for r in ours),
        "peak_all_rss_mib": max(r["all_rss_mib"] for r in ours),
    }


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [r["items"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(items, [r["plan_s"] for r in rows], "o-", label="reconcile plan (no-op), made")
    left.plot(items, [r["kept_s"] for r in rows], "D-", label="answered from the kept plan")
    left.plot(items, [r["rsync_s"] for r in rows], "s--", label="rsync -a --dry-run x3")
    left.set(xscale="log", yscale="log", xlabel="items", ylabel="seconds (best run)")
    left.set_title("Converged plan: time")
    left.legend()
    right.plot(items, [r["peak_rss_mib"] for r in rows], "o-", color="tab:red", label="plan")
    right.plot(
        items,
        [r["peak_all_rss_mib"] for r in rows],
        "^:",
        color="tab:purple",
        label="plan + helper processes",
    )
    right.plot(
        items, [r["kept_rss_mib"] for r in rows], "D-", color="tab:orange", label="kept plan"
    )
    right.axhline(250, color="grey", linestyle=":", label="target 250 MiB")
    right.set(xscale="log", xlabel="items", ylabel="MiB")
    right.set_title("Converged plan: peak RSS")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--plot", type=Path, help="write the curve to this PNG")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    if not shutil.which("rsync"):
        raise SystemExit("rsync is not installed (make apt)")
    rows = []
    print(
        f"{'items':>8} {'plan s':>8} {'rsync s':>8} {'ratio':>6} {'plan cpu':>9} "
        f"{'rsync cpu':>9} {'peak MiB':>9} {'all procs':>9} {'first plan s':>12} "
        f"{'kept s':>7} {'ratio':>6} {'kept MiB':>8}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        r = measure(n, args.repeat)
        rows.append(r)
        print(
            f"{n:>8} {r['plan_s']:>8.2f} {r['rsync_s']:>8.2f} {r['ratio']:>5.2f}x "
            f"{r['plan_cpu_s']:>9.2f} {r['rsync_cpu_s']:>9.2f} {r['peak_rss_mib']:>9.0f} "
            f"{r['peak_all_rss_mib']:>9.0f} {r['first_plan_s']:>12.1f} "
            f"{r['kept_s']:>7.2f} {r['kept_ratio']:>5.2f}x {r['kept_rss_mib']:>8.0f}",
            flush=True,
        )
    if len(rows) > 1:
        a, b = rows[-2], rows[-1]
        print(
            f"time {a['items']} -> {b['items']} items: {b['plan_s'] / a['plan_s']:.1f}x "
            f"(items x{b['items'] / a['items']:.0f})"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)
        print(f"plotted to {args.plot}")


if __name__ == "__main__":
    main_bench()
