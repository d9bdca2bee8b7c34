"""Hypothesis: over random worlds, apply converges, and no item ever leaves a
source with fewer than ``copies`` verified copies at that moment."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from providers.fake import FakeSource, FakeStore, sha256_bytes
from providers.filesystem import FilesystemStore, write_marker
from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import Connected
from reconciler.model import SourceItem
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.state import StateDB

#: Thousands of worlds under make test: their temporary files live in RAM.
pytestmark = pytest.mark.usefixtures("ram_tempdir")

NOW = datetime(2026, 11, 25, tzinfo=UTC)
COPIES = 2


class WatchedSource(FakeSource):
    """Checks the invariant itself, independently of the applier, on every removal."""

    def __init__(self, source_id: str, stores: list[FakeStore]) -> None:
        super().__init__(source_id)
        self.stores = stores
        self.violations: list[str] = []

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        data = self.items[item.key][1]

        def at_the_deletion() -> None:
            proven()  # the gate passed: the copies must be there now
            for name, content in data.items():
                sha = sha256_bytes(content)
                holders = [
                    s.id
                    for s in self.stores
                    if s.available and any(sha256_bytes(v) == sha for v in s.files.values())
                ]
                if len(holders) < COPIES:
                    self.violations.append(f"{item.key}/{name} removed with copies on {holders}")

        super().remove(item, at_the_deletion)


items_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # content id: equal ids are duplicate content
        st.one_of(st.none(), st.integers(0, 2000)),  # age in days, None: unknown date
        st.booleans(),  # a Live Photo (two files)
    ),
    min_size=0,
    max_size=6,
)


# max_examples comes from the profile (tests/conftest.py): 2,000 under make test.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # archived on two targets, both copies rot between plan and apply
    items=[(0, 100, False)],
    offline=set(),
    fail_fetch=set(),
    preloaded={(0, "t1"), (0, "t2")},
    corrupt_after_plan={0},
)
@given(
    items=items_strategy,
    offline=st.sets(st.sampled_from(["t1", "t2", "t3"]), max_size=2),
    fail_fetch=st.sets(st.integers(0, 5), max_size=3),
    preloaded=st.sets(st.tuples(st.integers(0, 5), st.sampled_from(["t1", "t2", "t3"]))),
    corrupt_after_plan=st.sets(st.integers(0, 5), max_size=2),
)
def test_apply_converges_and_never_removes_an_unarchived_item(
    items: list[tuple[int, int | None, bool]],
    offline: set[str],
    fail_fetch: set[int],
    preloaded: set[tuple[int, str]],
    corrupt_after_plan: set[int],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_marker(root / "library", "library")
        desired = config.parse(
            {
                "library": {"path": "library"},
                "state": {"dir": "state"},
                "targets": {k: {"kind": "filesystem", "path": k} for k in ("t1", "t2", "t3")},
                "policy": {
                    "copies": COPIES,
                    "tiers": [{"name": "all", "keep": "original"}],
                    "removal": {"enabled": True, "keep_recent_days": 30, "pace_seconds": 0},
                },
                "apply": {"retries": 1, "backoff_base_s": 0},
            },
            name="d",
            base=root,
        )
        stores = [FakeStore(k) for k in ("t1", "t2", "t3")]
        source = WatchedSource("cloud", stores)
        for n, (content, age, live) in enumerate(items):
            files = {f"IMG_{n}.PNG": f"photo {content}".encode() * 50}
            if live:
                files[f"IMG_{n}.MOV"] = f"video {content}".encode() * 70
            when = None if age is None else NOW - timedelta(days=age)
            source.add(f"asset-{n}", files, when)
            if content in fail_fetch:
                source.fail_fetch.update(files)
        everything = {key: dict(data) for key, (_, data) in source.items.items()}
        # Some content is already archived (an earlier run, another tool).
        for content, store_id in preloaded:
            store = next(s for s in stores if s.id == store_id)
            store.files[f"old/{content}.PNG"] = f"photo {content}".encode() * 50
        for s in stores:
            s.available = s.id not in offline
        conn = Connected(
            sources={"cloud": source},
            targets={s.id: s for s in stores},
            library=FilesystemStore("library", root / "library"),
        )
        db = StateDB.in_dir(root / "state")
        try:
            # A first run with faults: offline targets, failing downloads, and
            # copies corrupted after the plan was made.
            world = observe(desired, db, conn, now=NOW)
            the_plan = plan(desired, world, NOW)
            for s in stores:
                for path in list(s.files):
                    if any(f"{c}".encode() in s.files[path][:12] for c in corrupt_after_plan):
                        s.corrupt(path)
            Applier(desired, db, conn, world, run_id=1, sleep=lambda _: None).apply(the_plan)
            assert source.violations == []

            # Then the faults clear, and cron runs until nothing is left to do.
            source.fail_fetch.clear()
            for s in stores:
                s.available = True
            for run in range(2, 6):
                world = observe(desired, db, conn, now=NOW)
                the_plan = plan(desired, world, NOW)
                if not the_plan.actions:
                    break
                Applier(desired, db, conn, world, run_id=run, sleep=lambda _: None).apply(the_plan)
            assert the_plan.actions == (), [a.id for a in the_plan.actions]
            assert source.violations == []
            # Converged: every item's content, removed or not, is on every target.
            for data in everything.values():
                for content in data.values():
                    for s in stores:
                        assert sha256_bytes(content) in {sha256_bytes(v) for v in s.files.values()}
            # Only old items with a known date left the source; all the others stayed.
            ages = {f"asset-{n}": age for n, (_, age, _) in enumerate(items)}
            for key in source.removed:
                age = ages[key]
                assert age is not None and age > 30
            assert set(source.items) | set(source.removed) == set(ages)
        finally:
            db.close()
