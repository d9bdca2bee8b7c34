"""Benchmark of ``reconcile import-legacy`` and of the plan after it.

Prints figures; asserts nothing. A seed-style media.db of N rows names N
files already in the library (the seed's downloads) and N copies on the NAS;
the import hashes them, then a plan (a folder source, nothing in it) reads
none of them again. Figures: rows/s and MB/s of the import, and the plan's
seconds with and without the import before it.

Usage: ``.venv/bin/python bench/import_legacy.py [--rows N] [--kb K]``
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.cli import main
from tests.helpers import KEEP_ORIGINALS, make_workspace


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return code, out.getvalue() + err.getvalue()


def bench(rows: int, kb: int, imported: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = make_workspace(Path(tmp) / "ws", extra=KEEP_ORIGINALS)
        db_path = Path(tmp) / "media.db"
        conn = sqlite3.connect(db_path)
        conn.execute(
            "create table media (id integer primary key, filename text, icloud_id text, "
            "local_path text, status text, synced_nas integer, deleted_icloud integer, "
            "initial_size integer, current_size integer)"
        )
        for n in range(rows):
            name = f"IMG_{n:05d}.JPG"
            data = os.urandom(kb * 1024)
            for store in ("library", "nas"):
                path = ws.root / store / "seed" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            conn.execute(
                "insert into media (filename, icloud_id, local_path, status, synced_nas, "
                "deleted_icloud, initial_size, current_size) "
                "values (?, ?, ?, 'synced', 1, 0, ?, ?)",
                (
                    name,
                    f"asset-{n}",
                    str(ws.root / "library" / "seed" / name),
                    len(data),
                    len(data),
                ),
            )
        conn.commit()
        conn.close()
        mb = 2 * rows * kb / 1024
        if not imported:
            t0 = time.perf_counter()
            code, text = run("-c", str(ws.config), "plan")
            print(
                f"plan with no import (hashes them itself): exit {code} in "
                f"{time.perf_counter() - t0:.2f} s"
            )
            return
        t0 = time.perf_counter()
        code, text = run("-c", str(ws.config), "import-legacy", str(db_path))
        took = time.perf_counter() - t0
        assert code == 0, text
        print(
            f"import-legacy: {rows} rows, {2 * rows} files, {mb:.0f} MB in {took:.2f} s "
            f"({rows / took:.0f} rows/s, {mb / took:.0f} MB/s)"
        )
        t0 = time.perf_counter()
        code, text = run("-c", str(ws.config), "plan")
        print(f"plan after it: exit {code} in {time.perf_counter() - t0:.2f} s")
        sys.stdout.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--kb", type=int, default=256)
    a = p.parse_args()
    bench(a.rows, a.kb, imported=False)
    bench(a.rows, a.kb, imported=True)
