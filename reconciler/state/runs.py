"""The run history: each run, its journal of actions, its exit and reason,
and the census taken at its end (what ``status`` and the report read)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from reconciler.model import DAMAGED_ROLE
from reconciler.state.connection import (
    Connection,
    now_text,
)

#: The meta row saying an earlier run left temporaries it could not remove.
_SWEEP_WANTED = "sweep_wanted"
#: The meta rows (this and a folder source's id) saying files may be left
#: aside in that source: a removal could not put them back, or a killed
#: run's could not be looked for (the card was out).
_RESTORE_WANTED = "restore_wanted:"


#: SQL: a run not declined at apply's prompt (``declined`` in its summary).
NOT_DECLINED = (
    "coalesce(case when json_valid(summary) then json_extract(summary, '$.declined') end, 0) = 0"
)


class Runs(Connection):
    """The runs, the journal, and the figures read from them."""

    def start_run(self, command: str) -> int:
        table = self.db.table("runs")
        table.insert({"command": command, "started_at": now_text(), "status": "running"})
        assert table.last_pk is not None
        return int(table.last_pk)

    def finish_run(self, run_id: int, status: str, summary: dict[str, int]) -> None:
        self.db.table("runs").update(
            run_id, {"finished_at": now_text(), "status": status, "summary": json.dumps(summary)}
        )

    def unfinished_runs(self) -> list[int]:
        """Runs still ``running``: under the run lock, killed ones."""
        rows = self.conn.execute("select id from runs where status = ?", ["running"])
        return [int(r[0]) for r in rows]

    def mark_crashed(self) -> list[int]:
        """Call under the run lock: a run still ``running`` then is not alive
        (it would hold the lock), so it was killed; say so, once."""
        ids = self.unfinished_runs()
        if ids:
            self.conn.execute(
                "update runs set status = 'crashed', finished_at = ? where status = 'running'",
                [now_text()],
            )
        return ids

    def want_sweep(self, count: int) -> None:
        """A run left ``count`` temporaries it could not remove (a disk gone
        read-only): the next apply sweeps for debris as after a crash."""
        self._set_meta(_SWEEP_WANTED, str(count))

    def sweep_wanted(self) -> int:
        """How many temporaries an earlier run left, until ``swept``."""
        return int(self._meta(_SWEEP_WANTED) or 0)

    def swept(self) -> None:
        self.conn.execute("delete from meta where key = ?", [_SWEEP_WANTED])

    def want_restore(self, source_id: str) -> None:
        """Files may be left aside in ``source_id``: the next apply looks
        for them there (one row per source: parallel removals never lose
        another's)."""
        self.conn.execute(
            "insert or replace into meta (key, value) values (?, '1')",
            [_RESTORE_WANTED + source_id],
        )

    def restore_wanted(self) -> frozenset[str]:
        """The sources where files may be left aside, until ``restored``."""
        rows = self.conn.execute(
            "select key from meta where substr(key, 1, ?) = ?",
            [len(_RESTORE_WANTED), _RESTORE_WANTED],
        )
        return frozenset(str(r[0])[len(_RESTORE_WANTED) :] for r in rows)

    def restored(self, unreached: Collection[str]) -> None:
        """Files aside were looked for: only ``unreached``'s sources are
        still to look at."""
        with self.transaction():
            for source_id in self.restore_wanted() - set(unreached):
                self.conn.execute("delete from meta where key = ?", [_RESTORE_WANTED + source_id])
            for source_id in unreached:
                self.want_restore(source_id)

    def last_run_status(self) -> str | None:
        rows = list(self.conn.execute("select status from runs order by id desc limit 1"))
        return str(rows[0][0]) if rows else None

    def journal(
        self,
        run_id: int,
        action_id: str,
        kind: str,
        status: str,
        detail: str = "",
        *,
        subject: str = "",
    ) -> None:
        self.conn.execute(
            "insert into journal (run_id, action_id, kind, status, detail, at, subject) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            (run_id, action_id, kind, status, detail, now_text(), subject or None),
        )

    def journal_rows(self, run_id: int | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            return [dict(r) for r in self.query("select * from journal order by id")]
        sql = "select * from journal where run_id = ? order by id"
        return [dict(r) for r in self.query(sql, [run_id])]

    def record_exit(
        self,
        run_id: int | None,
        *,
        command: str,
        started_at: str,
        status: str,
        exit_code: int,
        reason: str,
        summary: dict[str, int] | None = None,
    ) -> int:
        """Give run ``run_id`` (the apply's own row) its exit code and reason,
        or record a run that made no row of its own (a plan, an apply that
        stopped before acting): every run is in the history."""
        if run_id is not None:
            row = self.db.table("runs").get(run_id)
            merged = json.loads(row["summary"] or "{}") | (summary or {})
            self.db.table("runs").update(
                run_id, {"exit_code": exit_code, "reason": reason, "summary": json.dumps(merged)}
            )
            return run_id
        # Plain SQL: every plan ends here, and sqlite-utils is not loaded for it.
        cur = self.conn.execute(
            "insert into runs (command, started_at, finished_at, status, summary, exit_code, "
            "reason) values (?, ?, ?, ?, ?, ?, ?)",
            (command, started_at, now_text(), status, json.dumps(summary or {}), exit_code, reason),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def figures(self, *, compression: bool = True) -> dict[str, Any]:
        """What ``status`` and the metrics tell beyond the runs, from this
        database alone (no provider is asked): the library by tier, bytes
        compression saved (each encoded file against its original's size;
        with ``compression=False`` left out, as 0: it groups the whole hash
        cache, and the census has it cheaper), and what the tool off-loaded,
        per source."""
        tiers = {
            str(r["tier"]): int(r["n"])
            for r in self.query(
                "select tier, count(*) as n from library where role != ? group by tier",
                [DAMAGED_ROLE],
            )
        }
        saved_sql = (
            "select coalesce(sum(o.size - l.size), 0) from library l join "
            # Only the originals of encoded files: grouping the whole hash
            # cache (every file of every store) cost a no-op plan 8%.
            "(select sha256, max(size) as size from hash_cache where sha256 in "
            "(select original_sha256 from library where sha256 != original_sha256) "
            "group by sha256) o "
            "on o.sha256 = l.original_sha256 "
            "where l.sha256 != l.original_sha256 and o.size > l.size"
        )
        saved = int(self.conn.execute(saved_sql).fetchone()[0]) if compression else 0
        removed = {
            str(r["source_id"]): {"items": int(r["n"]), "bytes": int(r["b"] or 0)}
            for r in self.query(
                "select source_id, count(*) as n, sum(size) as b from tombstones "
                "group by source_id order by source_id"
            )
        }
        good = list(
            self.query(
                "select finished_at from runs where command = 'apply' and exit_code = 0 "
                "order by id desc limit 1"
            )
        )
        return {
            "library_tiers": dict(sorted(tiers.items())),
            "bytes_saved_by_compression": saved,
            "removed": removed,
            "last_good_apply": good[0]["finished_at"] if good else None,
        }

    def last_run_of(self, command: str) -> dict[str, Any] | None:
        sql = "select * from runs where command = ? order by id desc limit 1"
        rows = [dict(r) for r in self.query(sql, [command])]
        return rows[0] if rows else None

    def unconfirmed_counts(self) -> dict[str, int]:
        """Per store, deliveries the device has not confirmed yet."""
        sql = (
            "select store_id, count(*) as n from deliveries "
            "where confirmed_at is null group by store_id"
        )
        return {r["store_id"]: int(r["n"]) for r in self.query(sql)}

    def record_census(self, run_id: int, census: dict[str, Any], key: str | None = None) -> None:
        """Keep the census taken at the end of run ``run_id`` (runs.census),
        with what it was taken at (``key``: see ``census_at``)."""
        self.conn.execute(
            "update runs set census = ?, census_key = ? where id = ?",
            (json.dumps(census), key, run_id),
        )

    def census_at(self, key: str) -> dict[str, Any] | None:
        """The newest stored census taken at ``key``, if any."""
        sql = "select census from runs where census_key = ? and census is not null "
        row = self.conn.execute(sql + "order by id desc limit 1", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def census_history(self, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """(finished_at, census) of the last ``limit`` runs that have one, oldest first."""
        sql = (
            "select finished_at, census from runs where census is not null order by id desc limit ?"
        )
        rows = self.conn.execute(sql, (limit,)).fetchall()
        return [(str(at), json.loads(text)) for at, text in reversed(rows)]

    def last_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        sql = "select * from runs order by id desc limit ?"
        return [dict(r) for r in self.query(sql, [limit])]

    def last_apply(self) -> dict[str, Any] | None:
        """The last apply but one declined at its prompt (it did nothing,
        whatever its exit): what status, the report and the metrics say of
        "the last apply"."""
        sql = (
            f"select * from runs where command = 'apply' and {NOT_DECLINED} "
            "order by id desc limit 1"
        )
        rows = [dict(r) for r in self.query(sql)]
        return rows[0] if rows else None
