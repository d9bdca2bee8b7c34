"""Benchmark of incremental iCloud observation against a full listing.

An emulated library of ``--assets`` assets (50k by default; one album of
200), the real pyicloud against the emulator on loopback. Each run is a new
source, as each cron run is a new process (sign-in included). Measured in
the same run:

- the first run: a full listing, kept in the state DB with its sync token;
- ours: ``--rounds`` runs, each after ``--changed`` changes (added,
  favourited, edited, captioned, deleted, expunged), reading CloudKit's
  change feed and applying it to the kept listing;
- the reference: a full listing, as every run made one before (nothing kept),
  after the last round; the last round's items must be the same items.

A full listing of 50k assets takes minutes (pyicloud validates every record
with pydantic), so the reference is measured once by default. Prints the
times and the ratio; asserts nothing else (benchmarks are not timed tests).

Usage: ``.venv/bin/python bench/icloud_incremental.py [--assets N] [--changed N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.icloud.source import ICloudSource
from reconciler.model import SourceItem
from reconciler.state import StateDB

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _library(assets: int) -> Account:
    account = Account()
    start = datetime(2015, 1, 1, tzinfo=UTC)
    added = [
        account.add_asset(
            f"photo {n}".encode() * 8,
            f"IMG_{n:05d}.JPG",
            asset_date=start + timedelta(minutes=97 * n),
            favorite=n % 50 == 0,
        )
        for n in range(assets)
    ]
    account.add_album("Holidays", added[:: max(1, assets // 200)])
    return account


def _change(account: Account, count: int, round_: int) -> None:
    """``count`` changes of every kind a person makes in Photos."""
    live = account.live_assets()
    kinds = ("add", "favourite", "edit", "caption", "delete", "expunge")
    for n in range(count):
        kind = kinds[n % len(kinds)]
        asset = live[(round_ * 997 + n * 31) % len(live)]
        if kind == "add":
            account.add_asset(b"new %d %d" % (round_, n), f"NEW_{round_}_{n}.JPG", asset_date=NOW)
        elif kind == "favourite":
            account.update_asset(asset, {"isFavorite": int(not asset.favorite)})
        elif kind == "edit":
            account.edit_asset(asset, b"edit %d %d" % (round_, n))
        elif kind == "caption":
            account.describe(asset, caption=f"caption {round_} {n}")
        elif kind == "delete":
            account.delete(asset)
        else:
            account.expunge(asset)


def _run(
    emu: RunningEmulator, sessions: Path, db: StateDB | None
) -> tuple[float, dict[str, SourceItem], str]:
    start = time.perf_counter()
    with ICloudSource(
        "icloud", username=emu.username, session_dir=sessions, endpoint=emu.url
    ) as source:
        if db is not None:
            source.remember_listing(db, NOW)
        items = {i.key: i for i in source.list_items(None)}  # type: ignore[arg-type]
        how = source.last_listing
    return time.perf_counter() - start, items, how


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=50_000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--references", type=int, default=1)
    args = parser.parse_args()
    built = time.perf_counter()
    account = _library(args.assets)
    print(f"emulated library: {args.assets} assets ({time.perf_counter() - built:.1f} s to build)")
    with tempfile.TemporaryDirectory() as tmp, running_emulator(account) as emu:
        sessions = Path(tmp) / "session"
        seed_trusted_session(emu, sessions)
        db = StateDB(Path(tmp) / "state.db")
        first, _, how = _run(emu, sessions, db)
        assert how == "full", how
        print(f"first run (full listing, kept in the state DB): {first:.2f} s")
        ours: list[float] = []
        for round_ in range(args.rounds):
            _change(account, args.changed, round_)
            seconds, changed, how = _run(emu, sessions, db)
            assert how == "changes", how
            ours.append(seconds)
            print(f"round {round_ + 1}: incremental, {args.changed} changed: {seconds:.3f} s")
        full: list[float] = []
        for _ in range(args.references):
            seconds, listed, _ = _run(emu, sessions, None)
            full.append(seconds)
            same = "the same items" if changed == listed else "ITEMS DIFFER"
            print(f"full listing (reference): {seconds:.2f} s ({len(listed)} items; {same})")
        db.close()
    reference, incremental = statistics.median(full), statistics.median(ours)
    print(
        f"full listing {reference:.2f} s; incremental with {args.changed} changed "
        f"{incremental:.3f} s (median of {len(ours)}); ratio {reference / incremental:.1f}x "
        "(target >= 20x)"
    )


if __name__ == "__main__":
    main()
