"""A converged, no-op `reconcile plan` over N items vs `rsync -a --dry-run`.

Builds an import folder of N small files, a library and two targets that
already hold them (hard links, so the trees cost no extra disk), runs one
`reconcile plan` to fill the hash cache, then times:

- `reconcile plan` again (nothing to do: the cost of checking), and
- `rsync -a --dry-run` from the import folder to each of the three stores,

in the same run, on the same trees. From the third no-op plan on, a plan
is answered from the converged plan the one before kept
(``reconciler.kept_plan``); each run's kind is printed. Prints figures;
asserts nothing.

    .venv/bin/python bench/noop_plan.py --items 100000
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from reconciler import kept_plan
from reconciler.cli import main
from reconciler.layout import dated_path


def build(root: Path, n: int) -> Path:
    incoming = root / "incoming"
    stores = {name: root / name for name in ("library", "nas", "usb")}
    for name, path in stores.items():
        write_marker(path, name)
    rng = os.urandom(1 << 16)
    for i in range(n):
        rel = f"d{i // 1000:03d}/IMG_{i:06d}.PNG"
        src = incoming / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(rng[i % 4096 : i % 4096 + 512] + i.to_bytes(8, "big"))
        when = datetime.fromtimestamp(src.stat().st_mtime, UTC)
        for path in stores.values():
            dest = path / dated_path(when, f"{i}_{src.name}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dest)
    config = root / "desired_state.toml"
    config.write_text(
        """
[library]
path = "library"
[state]
dir = "state"
[sources.incoming]
kind = "folder"
path = "incoming"
[targets.nas]
kind = "filesystem"
path = "nas"
[targets.usb]
kind = "filesystem"
path = "usb"
[[policy.tiers]]
name = "all"
keep = "original"
"""
    )
    return config


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


#: Each plan's kind, in order: "made" (observed and planned), "walked first"
#: (made after walking every tree first, and kept), or "kept" (answered
#: from the converged plan the one before kept: ``reconciler.kept_plan``).
KINDS: list[str] = []


def _spy_on_kept_plans() -> None:
    check = kept_plan.check

    def spy(*args: object, **kwargs: object) -> kept_plan.Check | None:
        found = check(*args, **kwargs)  # type: ignore[arg-type]
        kept = found is not None and found.kept is not None
        walked = found is not None and bool(found.walks)
        KINDS.append("kept" if kept else "walked first" if walked else "made")
        return found

    kept_plan.check = spy  # type: ignore[assignment]


def plan(config: Path) -> int:
    out = io.StringIO()
    code = main(["-c", str(config), "plan", "--detailed-exitcode"], stdout=out, stderr=out)
    if code != 0:
        raise SystemExit(f"expected a converged plan, got exit {code}:\n{out.getvalue()[-2000:]}")
    return code


def rsync(root: Path) -> None:
    for store in ("library", "nas", "usb"):
        subprocess.run(
            ["rsync", "-a", "--dry-run", f"{root / 'incoming'}/", f"{root / store}/"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def _runs(times: list[float], kinds: list[str] | None = None) -> str:
    if kinds is None:
        return ", ".join(f"{x:.2f}" for x in times)
    return ", ".join(f"{x:.2f} ({k})" for x, k in zip(times, kinds, strict=True))


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("rsync"):
        raise SystemExit("rsync is not installed (make apt)")
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        root = Path(tmp)
        t = timed(lambda: build(root, args.items))
        config = root / "desired_state.toml"
        print(f"built {args.items} items x 4 trees in {t:.1f} s")
        _spy_on_kept_plans()
        first = timed(lambda: plan(config))
        print(f"first plan (hashes every file once): {first:.2f} s")
        KINDS.clear()
        ours = [timed(lambda: plan(config)) for _ in range(args.repeat)]
        theirs = [timed(lambda: rsync(root)) for _ in range(args.repeat)]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"no-op reconcile plan: runs {_runs(ours, KINDS)}")
        print(f"rsync -a --dry-run x3 trees: best {min(theirs):.2f} s  (runs: {_runs(theirs)})")
        for kind in ("made", "kept"):
            times = [x for x, k in zip(ours, KINDS, strict=True) if k == kind]
            if times:
                print(f"{kind}: best {min(times):.2f} s, {min(times) / min(theirs):.2f}x rsync")
        print(f"peak RSS of this process {rss:.0f} MiB")


if __name__ == "__main__":
    main_bench()
