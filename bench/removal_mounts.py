"""The removal gate's time over N removals, with few mounts and with many.

Each removal's check looks at the disks now (the mount table, each copy's
own file's disk). Builds an import folder of N small photos, archives them
to two tmpfs targets, then times the gate's checks (``RemovalGate.check``,
around the real call) during the apply that removes them: once as is, once
with EXTRA more tmpfs mounts elsewhere (snaps, containers). Prints figures;
asserts nothing. Root only (it mounts).

    .venv/bin/python bench/removal_mounts.py --items 400 --extra 300
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import gate
from tests.helpers import files_under, make_jpeg, on_two_disks

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def gate_seconds(root: Path, seed: Path) -> float:
    with on_two_disks(root, removal=False) as ws:
        ws.incoming.rmdir()
        shutil.copytree(seed, ws.incoming)
        if ws.run("apply", "--yes", now=NOW).code != 0:
            raise SystemExit("archiving failed")
        ws.removal(True)
        spent = 0.0
        real = gate.RemovalGate.check

        def timed(self: gate.RemovalGate, a: object) -> list[str]:
            nonlocal spent
            t = time.perf_counter()
            try:
                return real(self, a)  # type: ignore[arg-type]
            finally:
                spent += time.perf_counter() - t

        gate.RemovalGate.check = timed  # type: ignore[method-assign]
        try:
            r = ws.run("apply", "--yes", now=NOW)
        finally:
            gate.RemovalGate.check = real  # type: ignore[method-assign]
        if r.code != 0 or files_under(ws.incoming):
            raise SystemExit(r.out[-2000:])
        return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--extra", type=int, default=300, help="more mounts, elsewhere")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = work / "seed"
        for i in range(args.items):
            make_jpeg(seed / f"IMG_{i:05d}.JPG", OLD, seed=i, size=16)
        few = gate_seconds(work / "few", seed)
        extra: list[Path] = []
        try:
            for i in range(args.extra):
                at = work / "elsewhere" / str(i)
                at.mkdir(parents=True)
                subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(at)], check=True)
                extra.append(at)
            many = gate_seconds(work / "many", seed)
        finally:
            for at in reversed(extra):
                subprocess.run(["umount", str(at)], check=False)
    print(
        f"gate checks of {args.items} removals: {few:.2f} s; "
        f"with {args.extra} more mounts: {many:.2f} s"
    )


if __name__ == "__main__":
    main()
