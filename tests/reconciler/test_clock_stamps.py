"""Times the tool recorded from its own clock are not trusted once they lie
in the future: one run with the clock ahead (a bad RTC at boot, before NTP)
must not put off what is due for as long as the clock was ahead.

End to end (bit rot found, a conduit's release): test_end_to_end_clock_ahead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.filesystem import scan_tree
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB

DAY = 86400.0
WINDOW = 180 * DAY
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    db = StateDB(tmp_path / "state.db")
    yield db
    db.close()


def _hashed(db: StateDB, root: Path, now: float, tree: bool) -> int:
    """Files read (not taken from the cache) by one observation at ``now``."""
    hasher = CachedHasher(db, now=now, reverify_after_s=WINDOW)
    entries = list(scan_tree(root))
    hasher.hash_entries(entries, tree=os.path.join(root, "") if tree else None)
    return hasher.hashed_files


@pytest.mark.parametrize("tree", [False, True], ids=["by-row", "by-tree-listing"])
def test_a_hash_stamped_in_the_future_is_due_now(tmp_path: Path, db: StateDB, tree: bool) -> None:
    root = tmp_path / "store"
    root.mkdir()
    for i in range(5):
        (root / f"IMG_{i}.JPG").write_bytes(f"photo {i}".encode())
    assert _hashed(db, root, NOW + 3650 * DAY, tree) == 5  # the clock ten years ahead
    # The clock put right: every stamp is "later than now", and so says
    # nothing of when the file was last read. Read now, once...
    assert _hashed(db, root, NOW, tree) == 5
    # ...and stamped now: the next run, a day on, trusts the cache again.
    assert _hashed(db, root, NOW + DAY, tree) == 0


@pytest.mark.parametrize("tree", [False, True], ids=["by-row", "by-tree-listing"])
def test_a_hash_within_its_window_is_not_read_again(
    tmp_path: Path, db: StateDB, tree: bool
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "IMG_0.JPG").write_bytes(b"photo")
    assert _hashed(db, root, NOW, tree) == 1
    assert _hashed(db, root, NOW, tree) == 0  # the same moment: not in the future
    assert _hashed(db, root, NOW + 100 * DAY, tree) == 0
    assert _hashed(db, root, NOW + 2 * WINDOW + DAY, tree) == 1  # past any spread


def test_a_settle_period_confirmed_in_the_future_starts_again_from_now(db: StateDB) -> None:
    when = datetime.fromtimestamp(NOW, UTC)
    db.record_delivery("phone", "2022/03/04/IMG_0.JPG", "ab" * 32, 10)
    db.record_confirmation(
        "phone", "2022/03/04/IMG_0.JPG", "ab" * 32, 10, at=when + timedelta(days=3650)
    )
    db.restart_settling("phone", "2022/03/04/IMG_0.JPG", when)
    row = db.deliveries_for("phone", "2022/03/04/IMG_0.JPG")
    assert row is not None and datetime.fromisoformat(row["confirmed_at"]) == when
    db.restart_settling("phone", "2022/03/04/IMG_1.JPG", when)  # no such row: nothing made
    assert db.deliveries_for("phone", "2022/03/04/IMG_1.JPG") is None
