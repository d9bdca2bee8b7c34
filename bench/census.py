"""Benchmark of the census (``reconcile status``, and the end of every run).

Prints figures; asserts nothing. A state database is filled as N items
would leave it (each in the library, on two filesystem targets, one in ten
off-loaded, one in ten still only in the folder source), then the census is
taken: its seconds, and the same for a ``status --json`` of that workspace.
Then, for reference in the same run, bench/noop_plan.py's real tree of
``--tree`` items: a converged no-op ``reconcile plan`` (which takes a census
at its end) against the census alone.

Usage: ``.venv/bin/python bench/census.py [--items N] [--tree M]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import config
from reconciler.census import census
from reconciler.cli import main
from reconciler.state import CachedHash, LineageRow, StateDB
from tests.helpers import KEEP_ORIGINALS, make_workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noop_plan import build, plan


def fill(db: StateDB, root: Path, items: int) -> None:
    hashes: list[tuple[str, CachedHash]] = []
    with db.transaction():
        for i in range(items):
            sha = hashlib.sha256(str(i).encode()).hexdigest()
            rel = f"2020/{1 + i % 12:02d}/{1 + i % 28:02d}/IMG_{i:06d}.JPG"
            row = CachedHash(3_000_000, 1, i, sha, True, 1.6e9 + i, time.time())
            if i % 10 == 9:  # still only in the source
                hashes.append((str(root / "incoming" / f"IMG_{i:06d}.JPG"), row))
                continue
            db.record_lineage(LineageRow(rel, sha, sha, "original", 3_000_000, 1, 1.6e9 + i))
            for target in ("nas", "usb"):
                hashes.append((str(root / target / rel), row))
            if i % 10 == 0:
                db.record_tombstone("incoming", f"IMG_{i:06d}.JPG", [sha], 3_000_000, 1)
    db.store_hashes(hashes)


def bench(items: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = make_workspace(Path(tmp) / "ws", extra=KEEP_ORIGINALS)
        desired = config.load(ws.config)
        db = StateDB.in_dir(desired.state_dir)
        fill(db, ws.root, items)
        t0 = time.perf_counter()
        got = census(db, desired).to_json()
        took = time.perf_counter() - t0
        db.close()
        t0 = time.perf_counter()
        main(["-c", str(ws.config), "status", "--json"], stdout=io.StringIO())
        status = time.perf_counter() - t0
        print(f"{items} items: census {took:.2f} s, status --json {status:.2f} s; {got['items']}")


def reference(items: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = build(Path(tmp), items)
        plan(config_path)  # fills the hash cache
        t0 = time.perf_counter()
        plan(config_path)
        took_plan = time.perf_counter() - t0
        desired = config.load(config_path)
        db = StateDB.in_dir(desired.state_dir)
        t0 = time.perf_counter()
        got = census(db, desired).to_json()
        took = time.perf_counter() - t0
        db.close()
        print(
            f"real tree of {items} items: no-op plan {took_plan:.2f} s (census included), "
            f"census alone {took:.2f} s; {got['items']}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--tree", type=int, default=20_000)
    args = p.parse_args()
    bench(args.items)
    if args.tree:
        reference(args.tree)
