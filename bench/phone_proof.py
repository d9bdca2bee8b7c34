"""Benchmark of the phone's proofs on a real loopback Syncthing pair.

Prints figures; asserts nothing (benchmarks are not timed tests):

- the liveness canary's round trip (median and worst of several runs);
- per-file confirmation (``/rest/db/file``) per second, which every run now
  asks for every staged copy (an old confirmation alone never counts);
- freeing (ignore line, rescan, unlink, rescan, index check) per second.

Usage: ``.venv/bin/python bench/phone_proof.py [--files N]``
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.syncthing.pair import SyncthingPair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--canaries", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SyncthingPair.create(Path(tmp) / "st") as pair:
        trips = []
        for _ in range(args.canaries):
            with pair.target() as t:
                live = t.prove_alive()
                assert live.alive and live.round_trip_s is not None, live.reason
                trips.append(live.round_trip_s)
            time.sleep(0.5)  # runs are minutes apart: let the last canary's deletion settle
        print(
            f"canary round trip: median {statistics.median(trips) * 1000:.0f} ms, "
            f"worst {max(trips) * 1000:.0f} ms ({len(trips)} runs)"
        )
        src_dir = Path(tmp) / "src"
        src_dir.mkdir()
        with pair.target() as t:
            copies = []
            start = time.monotonic()
            for n in range(args.files):
                data = f"photo {n} ".encode() * 1000
                src = src_dir / f"{n}.jpg"
                src.write_bytes(data)
                copies.append(t.put(src, f"b/{n}.jpg", hashlib.sha256(data).hexdigest()))
            print(f"put: {args.files / (time.monotonic() - start):.0f} files/s")
            deadline = time.monotonic() + 60
            while not all(t.confirm(c.path).held for c in copies[-5:]):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            start = time.monotonic()
            held = sum(t.confirm(c.path).held for c in copies)
            took = time.monotonic() - start
            print(f"confirm: {args.files / took:.0f} files/s ({held}/{args.files} held)")
            start = time.monotonic()
            for c in copies[:50]:
                t.free_local(c.path)
            print(f"free_local: {50 / (time.monotonic() - start):.1f} files/s")


if __name__ == "__main__":
    main()
