"""First-plan hashing throughput on large files vs cores x hashlib SHA-256.

Writes ``--files`` files of ``--mib`` MiB each (read once first, so both
sides read from the page cache), then measures in the same run:

- the reference: hashlib SHA-256 of an in-memory buffer on one thread,
  times the cores (the ceiling: no reads, no scheduling), and the same
  buffer hashed on one thread per core at once (what the machine gives now);
- the same files hashed by a plain loop (``f.read`` 1 MiB, ``hashlib``
  update), one thread per core: what hashing *files* costs on this machine
  (reading from the page cache is not free), without anything of ours;
- the same files mapped into memory (``mmap``) and hashed there, one
  thread per core: no copy out of the page cache. Not what we use: a file
  truncated by another program while it is mapped kills the reading
  process (SIGBUS), and photo folders are written by other programs;
- ``sha256sum`` (coreutils) over the same files, one process per core;
- ours: the observer's hasher (``CachedHasher.hash_entries``) over the
  files with an empty hash cache, exactly as a first plan hashes them.

Prints MB/s for each and the ratio. Asserts nothing.

    .venv/bin/python bench/hashing.py --files 8 --mib 128
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from providers.filesystem import scan_tree
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB

MIB = 1 << 20


def hashlib_rate(buf: bytes, threads: int, rounds: int) -> float:
    """MB/s of SHA-256 over ``buf`` fed ``rounds`` times to one hash on each of
    ``threads``: compute only (a small buffer stays in the CPU's cache)."""

    def work() -> None:
        h = hashlib.sha256()
        for _ in range(rounds):
            h.update(buf)
        h.digest()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(buf) * rounds * threads / (time.perf_counter() - start) / 1e6


def write_files(folder: Path, files: int, mib: int) -> int:
    block = os.urandom(MIB)
    for i in range(files):
        with open(folder / f"VID_{i:03d}.MOV", "wb") as f:
            for j in range(mib):
                f.write(block[j % 97 :] + block[: j % 97])
    for p in folder.iterdir():  # into the page cache, as the reference is in memory
        with open(p, "rb") as f:
            while f.read(8 * MIB):
                pass
    return files * mib * MIB


def _files_rate(folder: Path, threads: int, total: int, hash_file: Callable[[Path], str]) -> float:
    """MB/s of ``hash_file`` over the files, split among ``threads`` threads."""
    paths = sorted(folder.iterdir())

    def work(mine: list[Path]) -> None:
        for p in mine:
            hash_file(p)

    pool = [threading.Thread(target=work, args=(paths[i::threads],)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - start) / 1e6


def _read_and_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def _hash_mapped(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        view = memoryview(m)
        for at in range(0, len(view), 8 * MIB):
            h.update(view[at : at + 8 * MIB])
        view.release()
    return h.hexdigest()


def plain_rate(folder: Path, threads: int, total: int) -> float:
    """MB/s of a plain read-and-hash loop over the files, one thread per core."""
    return _files_rate(folder, threads, total, _read_and_hash)


def mapped_rate(folder: Path, threads: int, total: int) -> float:
    """MB/s of hashing the files mapped into memory, one thread per core."""
    return _files_rate(folder, threads, total, _hash_mapped)


def sha256sum_rate(folder: Path, procs: int, total: int) -> float:
    """MB/s of coreutils sha256sum over the files, one process per core."""
    paths = sorted(folder.iterdir())
    start = time.perf_counter()
    running = [
        subprocess.Popen(["sha256sum", *map(str, paths[i::procs])], stdout=subprocess.DEVNULL)
        for i in range(procs)
    ]
    for p in running:
        p.wait()
    return total / (time.perf_counter() - start) / 1e6


def ours_rate(folder: Path, state: Path, total: int) -> tuple[float, int]:
    db = StateDB(state / "state.db")
    try:
        hasher = CachedHasher(db)
        entries = list(scan_tree(folder))
        start = time.perf_counter()
        hasher.hash_entries(entries)
        seconds = time.perf_counter() - start
    finally:
        db.close()
    return total / seconds / 1e6, hasher.workers


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    buf = os.urandom(MIB)
    with tempfile.TemporaryDirectory(prefix="reconcile-hash-") as tmp:
        root = Path(tmp)
        (root / "files").mkdir()
        total = write_files(root / "files", args.files, args.mib)
        ours, single, parallel, plain, mapped, coreutils = [], [], [], [], [], []
        workers = 0
        for i in range(args.repeat):
            single.append(hashlib_rate(buf, 1, 256))
            parallel.append(hashlib_rate(buf, cores, 256))
            plain.append(plain_rate(root / "files", cores, total))
            mapped.append(mapped_rate(root / "files", cores, total))
            coreutils.append(sha256sum_rate(root / "files", cores, total))
            (root / f"state{i}").mkdir()
            rate, workers = ours_rate(root / "files", root / f"state{i}", total)
            ours.append(rate)
    ceiling = max(single) * cores
    print(f"{args.files} files x {args.mib} MiB, {cores} cores, hasher workers {workers}")
    print(f"hashlib SHA-256, one thread, in the CPU's cache: {max(single):.0f} MB/s")
    print(f"reference, cores x that: {ceiling:.0f} MB/s")
    print(f"hashlib on {cores} threads at once, in cache (measured): {max(parallel):.0f} MB/s")
    print(f"plain read + hashlib loop over the files, {cores} threads: {max(plain):.0f} MB/s")
    print(
        f"the files mapped (mmap; not used: SIGBUS on a file truncated meanwhile), "
        f"{cores} threads: {max(mapped):.0f} MB/s ({max(mapped) / ceiling:.2f}x cores x hashlib)"
    )
    print(f"sha256sum over the files, {cores} processes: {max(coreutils):.0f} MB/s")
    print(f"ours (first plan's hasher, page cache): {max(ours):.0f} MB/s")
    print(
        f"ratio: {max(ours) / ceiling:.2f}x (cores x hashlib); "
        f"{max(ours) / max(parallel):.2f}x (hashlib on every core, measured); "
        f"{max(ours) / max(plain):.2f}x (plain loop over the files); "
        f"{max(ours) / max(coreutils):.2f}x (sha256sum)"
    )


if __name__ == "__main__":
    main_bench()
