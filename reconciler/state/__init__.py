"""The state database: SQLite in WAL mode, through sqlite-utils where it helps.

It remembers what is expensive to learn again (file hashes, which download
gave which SHA-256, which library file came from which original, which
deliveries the phone confirmed) and what must never be forgotten while it
exists (the journal, tombstones of what the tool removed from a source).
Everything here can be re-derived by observing again: deleting the database
loses time, not data.

Only the main thread touches the connection; workers hand results back.
Each group of tables has its module (``hash_cache``, ``library``,
``sources``, ``deliveries``, ``runs``); ``StateDB`` is all of them on one
connection (``connection``).
"""

from __future__ import annotations

from pathlib import Path

from reconciler.state.connection import damaged, storable, unusable
from reconciler.state.deliveries import Deliveries
from reconciler.state.hash_cache import SUSPECT, CachedHash, HashCache
from reconciler.state.library import Library, LineageRow
from reconciler.state.runs import NOT_DECLINED, Runs
from reconciler.state.sources import Cursor, DownloadedFile, ListingRow, Sources

__all__ = [
    "NOT_DECLINED",
    "SUSPECT",
    "CachedHash",
    "Cursor",
    "DownloadedFile",
    "LineageRow",
    "ListingRow",
    "StateDB",
    "damaged",
    "storable",
    "unusable",
]


class StateDB(HashCache, Library, Sources, Deliveries, Runs):
    """The tool's memory, one file under the state directory."""

    @classmethod
    def in_dir(cls, state_dir: Path) -> StateDB:
        return cls(state_dir / "state.db")
