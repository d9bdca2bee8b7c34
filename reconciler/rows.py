"""The state rows the applier records for what it wrote, and the times in them.

``reconciler.state`` holds the tables; these make their rows from the
applier's values: a library file's lineage (an original placed there), the
library copy a lineage row stands for, the hash-cache entry of a copy just
written and verified, and capture times as the numbers rows and file
mtimes store.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from providers.base import Store
from reconciler.model import ORIGINAL_TIER, FileCopy
from reconciler.state import CachedHash, LineageRow


def mtime_ns(captured_at: datetime | None) -> int | None:
    return None if captured_at is None else int(captured_at.timestamp()) * 1_000_000_000


def as_copy(row: LineageRow) -> FileCopy:
    return FileCopy(
        store_id="library", path=row.path, size=row.size, mtime_ns=row.mtime_ns, sha256=row.sha256
    )


def cache_row(store: Store, copy: FileCopy) -> tuple[str, CachedHash] | None:
    """What we just wrote and verified need not be read again next run."""
    path = store.local_path(copy.path)
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size != copy.size or st.st_mtime_ns != copy.mtime_ns:
        return None
    return str(path), CachedHash(
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        sha256=copy.sha256,
        dated=False,
        captured_at=None,
        hashed_at=time.time(),
        ctime_ns=st.st_ctime_ns,
    )


def original_row(copy: FileCopy, captured_at: datetime | None, role: str = "") -> LineageRow:
    """The row of a file placed as it is; ``role``: what it is in its item,
    known when it was written ("": learned later, from its item's sidecar)."""
    return LineageRow(
        path=copy.path,
        original_sha256=copy.sha256,
        sha256=copy.sha256,
        tier=ORIGINAL_TIER,
        size=copy.size,
        mtime_ns=copy.mtime_ns,
        captured_at=ts(captured_at),
        role=role,
    )


def ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
