"""The census's values: the states items are counted in (``STATES``) and the
count itself (``Census``), as status, the metrics and the report read it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

#: The states, in the order people read them (and the JSON keeps).
STATES = (
    "source_only",
    "library_only",
    "archived_1",
    "archived_2plus",
    "waiting_phone",
    "removed",
    "failed",
)


@attrs.frozen(kw_only=True)
class Failure:
    """An action that failed in the last apply that acted, named by its file."""

    subject: str
    kind: str
    error: str
    at: str


@attrs.frozen(kw_only=True)
class Oldest:
    name: str
    captured_at: datetime


@attrs.frozen(kw_only=True)
class Census:
    items: Mapping[str, int]
    tiers: Mapping[str, int]
    #: target id -> (files, bytes) as the tool knows them.
    targets: Mapping[str, tuple[int, int]]
    library_bytes: int
    saved_by_compression: int
    #: tier -> bytes its encodes saved (they sum to ``saved_by_compression``).
    saved_by_tier: Mapping[str, int]
    offloaded: int
    icloud_bytes: int
    oldest_unarchived: Oldest | None
    #: target id -> when its oldest unconfirmed delivery was made (ISO text).
    waiting_since: Mapping[str, str]
    #: Not in to_json (the contract's shape); status shows and prints them.
    failures: tuple[Failure, ...] = ()
    failed_run: int | None = None

    def to_json(self) -> dict[str, Any]:
        oldest = self.oldest_unarchived
        return {
            "items": {s: int(self.items.get(s, 0)) for s in STATES},
            "tiers": dict(self.tiers),
            "targets": {t: {"files": f, "bytes": b} for t, (f, b) in self.targets.items()},
            "bytes": {
                "library": self.library_bytes,
                "saved_by_compression": self.saved_by_compression,
                "offloaded": self.offloaded,
                "icloud": self.icloud_bytes,
            },
            "oldest_unarchived": (
                None
                if oldest is None
                else {"name": oldest.name, "captured_at": oldest.captured_at.isoformat()}
            ),
            "waiting_since": dict(self.waiting_since),
            "saved_by_tier": dict(self.saved_by_tier),
        }

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], *, failures: tuple[Failure, ...] = (), failed_run: int | None
    ) -> Census:
        """``to_json``'s document back (a stored census), with the failed
        files it leaves out."""
        oldest = doc["oldest_unarchived"]
        return cls(
            items=dict(doc["items"]),
            tiers=dict(doc["tiers"]),
            targets={t: (int(v["files"]), int(v["bytes"])) for t, v in doc["targets"].items()},
            library_bytes=int(doc["bytes"]["library"]),
            saved_by_compression=int(doc["bytes"]["saved_by_compression"]),
            saved_by_tier=dict(doc["saved_by_tier"]),
            offloaded=int(doc["bytes"]["offloaded"]),
            icloud_bytes=int(doc["bytes"]["icloud"]),
            oldest_unarchived=(
                None
                if oldest is None
                else Oldest(
                    name=oldest["name"], captured_at=datetime.fromisoformat(oldest["captured_at"])
                )
            ),
            waiting_since=dict(doc["waiting_since"]),
            failures=failures,
            failed_run=failed_run,
        )


def utc(iso: str) -> datetime:
    when = datetime.fromisoformat(iso)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
