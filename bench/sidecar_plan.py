"""The planner's cost of sidecars: a converged `plan()` over N iCloud items
with metadata (every sidecar current everywhere) vs the same items without.

Pure planner, no I/O: the world is built in memory. Prints figures.

    .venv/bin/python bench/sidecar_plan.py --items 20000
"""

from __future__ import annotations

import argparse
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import config, sidecar
from reconciler.model import (
    FileCopy,
    ItemMetadata,
    LibraryFile,
    LibraryState,
    MediaFile,
    SourceItem,
    SourceState,
    TargetState,
    World,
)
from reconciler.plan import plan

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def world(n: int, *, metadata: bool) -> World:
    items: list[SourceItem] = []
    held: list[str] = []
    for i in range(n):
        files = (
            MediaFile(name=f"IMG_{i:06d}.JPG", size=1000, ref="original", sha256=_sha(i, 0)),
            MediaFile(
                name=f"IMG_{i:06d}-edited.JPG",
                size=900,
                ref="edited",
                role="edited",
                sha256=_sha(i, 1),
            ),
        )
        meta = ItemMetadata(
            title=f"Photo {i}",
            keywords=("trip",),
            albums=("Trip 2023",),
            favorite=i % 7 == 0,
            latitude=48.85,
            longitude=2.29,
            record_ids=(("AssetId", f"A{i}"), ("MasterId", f"M{i}")),
        )
        item = SourceItem(
            source_id="icloud",
            key=f"A{i}:M{i}",
            files=files,
            captured_at=NOW - timedelta(days=1),
            metadata=meta if metadata else None,
        )
        items.append(item)
        held += [f.sha256 or "" for f in files]
        if metadata:
            held.append(sidecar.digest(item, {f.ref: f.sha256 or "" for f in files}))

    def copies(store: str) -> tuple[FileCopy, ...]:
        return tuple(
            FileCopy(store_id=store, path=f"p/{s[:12]}", size=1, mtime_ns=1, sha256=s) for s in held
        )

    return World(
        observed_at=NOW,
        sources=(SourceState(source_id="icloud", kind="icloud", remote=True, items=tuple(items)),),
        targets=tuple(
            TargetState(target_id=t, kind="filesystem", available=True, copies=copies(t))
            for t in ("nas", "usb")
        ),
        library=LibraryState(
            available=True,
            files=tuple(
                LibraryFile(
                    path=f"l/{s[:12]}", sha256=s, original_sha256=s, tier="original", size=1
                )
                for s in held
            ),
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20000)
    n = parser.parse_args().items
    desired = config.parse(
        {
            "library": {"path": "lib"},
            "state": {"dir": "st"},
            "sources": {"icloud": {"kind": "icloud"}},
            "targets": {
                "nas": {"kind": "filesystem", "path": "nas", "same_disk_ok": True},
                "usb": {"kind": "filesystem", "path": "usb", "same_disk_ok": True},
            },
            "policy": {"tiers": [{"name": "all", "keep": "original"}]},
        },
        name="bench.toml",
        base=Path("/bench"),
    )
    for metadata in (False, True):
        w = world(n, metadata=metadata)
        began = time.perf_counter()
        p = plan(desired, w, NOW)
        took = time.perf_counter() - began
        assert p.empty, [a.id for a in p.actions[:3]]
        label = "with sidecars" if metadata else "no metadata "
        print(f"{label}: {n} items planned in {took:.2f} s ({took / n * 1e6:.0f} us/item)")


if __name__ == "__main__":
    main()
