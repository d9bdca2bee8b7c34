"""Benchmark of ``reconcile report``'s page: seconds to draw it from a run
history of 2, 365, 730 and 2,000 runs (a year or more of nightly plan and
apply; the command plots at most 2,000), and the page's size.

The census documents are made up in the shape ``Census.to_json()`` gives
(items moving from a source to two targets, a library growing and being
compressed): what is timed is matplotlib drawing and the page around it.
Prints figures; asserts nothing (benchmarks are not timed tests).

Usage: ``.venv/bin/python bench/report.py``
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import report


def census(i: int) -> dict[str, Any]:
    archived = 10 * i
    return {
        "items": {
            "source_only": 12,
            "library_only": 3,
            "archived_1": 2,
            "archived_2plus": archived,
            "waiting_phone": i % 4,
            "removed": archived // 2,
            "failed": 1 if i % 50 == 0 else 0,
        },
        "tiers": {"recent": 3000, "older": 4 * i, "archive": 2 * i},
        "targets": {"nas": {"files": archived, "bytes": archived * 3_000_000}},
        "bytes": {
            "library": 9_000_000_000 + i * 20_000_000,
            "saved_by_compression": i * 9_000_000,
            "offloaded": i * 15_000_000,
            "icloud": max(0, 40_000_000_000 - i * 15_000_000),
        },
        "oldest_unarchived": {"name": "IMG_0001.JPG", "captured_at": "2019-06-01T12:00:00+00:00"},
        "waiting_since": {},
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help, nothing else
    start = datetime(2024, 1, 1, 3, tzinfo=UTC)
    runs = [
        {"id": n, "command": "apply", "started_at": start.isoformat(), "exit_code": 0}
        for n in range(15)
    ]
    for n in (2, 365, 730, 2000):
        history = [((start + timedelta(hours=12 * i)).isoformat(), census(i)) for i in range(n)]
        t = time.perf_counter()
        page = report.page(
            history=history, runs=runs, generated_at=datetime.now(UTC), state_path="bench"
        )
        took = time.perf_counter() - t
        print(f"{n:5d} runs: page drawn in {took:5.2f} s, {len(page) / 1000:6.0f} kB")


if __name__ == "__main__":
    main()
