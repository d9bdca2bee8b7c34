"""Deliveries to a device that confirms later (the phone): each file sent,
confirmed, freed or released, and the device's last proof of life."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.state.connection import (
    Connection,
    now_text,
)


class Deliveries(Connection):
    """The deliveries' and the liveness rows."""

    def deliveries(self, store_id: str) -> dict[str, dict[str, Any]]:
        rows = self.query("select * from deliveries where store_id = ?", [store_id])
        return {r["path"]: dict(r) for r in rows}

    def record_delivery(self, store_id: str, path: str, sha256: str, size: int) -> None:
        existing = self.deliveries_for(store_id, path)
        if existing and existing["sha256"] == sha256:
            return
        self._put(
            "deliveries",
            {
                "store_id": store_id,
                "path": path,
                "sha256": sha256,
                "size": size,
                "delivered_at": now_text(),
                "confirmed_at": None,
                "freed_at": None,
            },
        )

    def record_freed(self, store_id: str, path: str, evidence: str = "") -> None:
        """The local staging copy is gone; the phone's copy counts while the
        phone still announces the version recorded here (``evidence``)."""
        self.conn.execute(
            "update deliveries set freed_at = ?, evidence = coalesce(nullif(?, ''), evidence) "
            "where store_id = ? and path = ?",
            (now_text(), evidence, store_id, path),
        )

    def deliveries_for(self, store_id: str, path: str) -> dict[str, Any] | None:
        rows = list(
            self.query("select * from deliveries where store_id = ? and path = ?", [store_id, path])
        )
        return dict(rows[0]) if rows else None

    def record_confirmation(
        self,
        store_id: str,
        path: str,
        sha256: str,
        size: int,
        *,
        identity: str = "",
        evidence: str = "",
        at: datetime | None = None,
    ) -> None:
        # Keeps delivered_at when the row exists (a delivery this tool made).
        when = at.isoformat() if at is not None else now_text()
        self.conn.execute(
            "insert into deliveries (store_id, path, sha256, size, confirmed_at, identity, "
            "evidence) values (?, ?, ?, ?, ?, ?, ?) on conflict (store_id, path) do update set "
            "sha256 = excluded.sha256, size = excluded.size, confirmed_at = "
            "excluded.confirmed_at, identity = excluded.identity, evidence = excluded.evidence",
            (store_id, path, sha256, size, when, identity, evidence),
        )

    def restart_settling(self, store_id: str, path: str, at: datetime) -> None:
        """The confirmation of a delivery counts from ``at``: its recorded
        time is later than now (a clock that ran ahead), so the settle
        period starts again rather than lasting until that time comes."""
        self.conn.execute(
            "update deliveries set confirmed_at = ? "
            "where store_id = ? and path = ? and confirmed_at is not null",
            (at.isoformat(), store_id, path),
        )

    def unconfirm_delivery(self, store_id: str, path: str) -> None:
        """The device was asked and no longer holds this copy (changed or
        lost there, or confirmed by another phone or folder): it is a
        delivery again, waiting, and no census counts it as a copy."""
        self.conn.execute(
            "update deliveries set confirmed_at = null, evidence = null "
            "where store_id = ? and path = ? and confirmed_at is not null",
            (store_id, path),
        )

    def forget_delivery(self, store_id: str, path: str) -> None:
        """A freed copy the phone no longer holds, or a staging copy gone from
        here without being freed: nothing of it is left to count."""
        self.conn.execute(
            "delete from deliveries where store_id = ? and path = ?", (store_id, path)
        )

    def record_liveness(
        self, store_id: str, alive: bool, reason: str, round_trip_s: float | None
    ) -> None:
        self._put(
            "liveness",
            {
                "store_id": store_id,
                "at": now_text(),
                "alive": int(alive),
                "reason": reason,
                "round_trip_s": round_trip_s,
            },
        )

    def liveness(self, store_id: str) -> dict[str, Any] | None:
        rows = list(self.query("select * from liveness where store_id = ?", [store_id]))
        return dict(rows[0]) if rows else None
