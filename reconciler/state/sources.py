"""What the sources left: which download gave which SHA-256, the remembered
iCloud listing and its sync tokens, each listing's count (the shrink
guard), the tombstones of what the tool removed, the removals whose answer
was never heard, and the seed pipeline's imported history."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from reconciler.state.connection import (
    Connection,
    now_text,
)


class DownloadedFile(NamedTuple):
    """A remote source's file as it was when downloaded and verified."""

    sha256: str
    size: int | None
    #: The source's checksum of it then; "" in rows older than the column.
    fingerprint: str

    def still(self, size: int, fingerprint: str) -> bool:
        """Is a file listed now with ``size`` and ``fingerprint`` still the
        one downloaded? An asset edited again keeps its refs (``edited``,
        ``sidecar``) for new bytes, so a ref alone proves nothing. Rows
        without a fingerprint compare by size alone."""
        return self.size == size and (not self.fingerprint or self.fingerprint == fingerprint)


class ListingRow(NamedTuple):
    """One asset of a remembered iCloud listing; ``item`` is the encoded
    SourceItem (None: an asset listed but skipped, e.g. without an original)."""

    asset_id: str
    master_id: str
    zone: str
    pos: int
    item: str | None


class Cursor(NamedTuple):
    """Where an iCloud source's remembered listing stands: per zone, the sync
    token read before it; the Apple ID it is of; its last full listing."""

    account: str
    tokens: dict[str, str]
    full_at: datetime


class UnheardRemoval(NamedTuple):
    """A removal sent to a source whose answer never came back (a 503 after
    the commit, a connection dropped): it may have happened. Noted before
    the request is sent; settled by the next listing of the source, which
    reads the item (``Sources.settle_unheard_removal``)."""

    item_key: str
    #: What its tombstone holds, should it prove removed (as the gate proved it).
    sha256s: tuple[str, ...]
    size: int
    #: Where the source keeps the item (iCloud: the zone id), to read it there.
    place: dict[str, str]
    #: The source's listing count when it was sent (None: none yet).
    count_then: int | None


#: The meta rows of unheard removals: this, then [source id, item key] as
#: JSON; the value is the note (``UnheardRemoval``) as JSON. Few, and short
#: lived: rows of ``meta``, as ``restore_wanted``, not a table of their own.
_UNHEARD = "removal_unheard:"


def _unheard_key(source_id: str, item_key: str) -> str:
    return _UNHEARD + json.dumps([source_id, item_key])


class Sources(Connection):
    """The sources' rows: downloads, listings, tombstones, the seed's history."""

    def known_sha256(self) -> dict[tuple[str, str, str], str]:
        """Every row's SHA-256, whatever the file is now (``source_files``
        says whether it still counts)."""
        rows = self.query("select source_id, item_key, ref, sha256 from source_files")
        return {(r["source_id"], r["item_key"], r["ref"]): r["sha256"] for r in rows}

    def source_files(self) -> dict[tuple[str, str, str], DownloadedFile]:
        """(source, item key, ref) -> what was downloaded there: one read of
        the table, plain rows (a no-op run reads one per remote file)."""
        sql = "select source_id, item_key, ref, sha256, size, fingerprint from source_files"
        return {
            (r[0], r[1], r[2]): DownloadedFile(r[3], r[4], r[5] or "")
            for r in self.conn.execute(sql)
        }

    def record_source_file(
        self, source_id: str, item_key: str, ref: str, sha256: str, size: int, fingerprint: str
    ) -> None:
        """``fingerprint``: the source's own checksum of the file downloaded
        ("" where the source gives none)."""
        self._put(
            "source_files",
            {
                "source_id": source_id,
                "item_key": item_key,
                "ref": ref,
                "sha256": sha256,
                "size": size,
                "fingerprint": fingerprint,
            },
        )

    def listing_count(self, store_id: str) -> int | None:
        rows = list(self.query("select count from listing_counts where store_id = ?", [store_id]))
        return int(rows[0]["count"]) if rows else None

    def record_listing_count(self, store_id: str, count: int) -> None:
        # Rewritten only when it moved: an unchanged world leaves the state
        # database unchanged (a converged plan is kept only then).
        self.conn.execute(
            "insert into listing_counts (store_id, count, observed_at) values (?, ?, ?) "
            "on conflict (store_id) do update set count = excluded.count, "
            "observed_at = excluded.observed_at where count != excluded.count",
            (store_id, count, now_text()),
        )

    def record_tombstone(
        self, source_id: str, item_key: str, sha256s: Sequence[str], size: int, run_id: int | None
    ) -> None:
        """The item left its source: an unheard removal of it is settled."""
        with self.transaction():
            self._put(
                "tombstones",
                {
                    "source_id": source_id,
                    "item_key": item_key,
                    "sha256s": json.dumps(list(sha256s)),
                    "size": size,
                    "removed_at": now_text(),
                    "run_id": run_id,
                },
            )
            self.forget_unheard_removal(source_id, item_key)

    def downloaded(self, source_id: str, item_key: str) -> dict[str, str]:
        """Ref -> the SHA-256 of each file of one item downloaded and verified."""
        sql = "select ref, sha256 from source_files where source_id = ? and item_key = ?"
        return {r[0]: r[1] for r in self.conn.execute(sql, (source_id, item_key))}

    def record_unheard_removal(
        self,
        source_id: str,
        item_key: str,
        *,
        sha256s: Sequence[str],
        size: int,
        place: dict[str, str],
    ) -> None:
        """Note, before it is sent, a removal whose answer may never be
        heard: until settled, it is neither done nor undone."""
        note = {
            "item_key": item_key,
            "sha256s": list(sha256s),
            "size": size,
            "place": place,
            "count": self.listing_count(source_id),
        }
        self._set_meta(_unheard_key(source_id, item_key), json.dumps(note))

    def unheard_removals(self, source_id: str) -> dict[str, UnheardRemoval]:
        """Item key -> the source's removals not settled yet."""
        prefix = _unheard_key(source_id, "")[: -len('""]')]
        rows = self.conn.execute(
            "select value from meta where substr(key, 1, ?) = ?", [len(prefix), prefix]
        )
        out: dict[str, UnheardRemoval] = {}
        for (value,) in rows:
            try:
                note = json.loads(value)
                unheard = UnheardRemoval(
                    item_key=str(note["item_key"]),
                    sha256s=tuple(map(str, note["sha256s"])),
                    size=int(note["size"]),
                    place={str(k): str(v) for k, v in note["place"].items()},
                    count_then=None if note["count"] is None else int(note["count"]),
                )
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # not a row this tool wrote
            out[unheard.item_key] = unheard
        return out

    def forget_unheard_removal(self, source_id: str, item_key: str) -> None:
        """Settled: heard, refused, or the item read still there."""
        self.conn.execute("delete from meta where key = ?", [_unheard_key(source_id, item_key)])

    def settle_unheard_removal(self, source_id: str, item_key: str) -> None:
        """The item was read gone from its source (in Recently Deleted, or
        no more): the removal did happen. Its tombstone is written as the
        applier would have, dated after every run so far (no listing made
        before now speaks of it being back); the listing count is lowered
        as the applier lowers it, unless a listing since rewrote it (and so
        counted without the item already)."""
        note = self.unheard_removals(source_id).get(item_key)
        if note is None:
            return
        with self.transaction():
            (last_run,) = self.conn.execute("select max(id) from runs").fetchone()
            count = self.listing_count(source_id)
            self.record_tombstone(source_id, item_key, note.sha256s, note.size, last_run)
            if count and count == note.count_then:
                self.record_listing_count(source_id, count - 1)

    def tombstones(self) -> dict[tuple[str, str], frozenset[str]]:
        """(source, item key) -> the SHA-256s of the content removed there.
        A key alone never says an item is done: a folder path the tool emptied
        may hold a new photo tomorrow (a camera counter reset)."""
        rows = self.query("select source_id, item_key, sha256s from tombstones")
        return {(r["source_id"], r["item_key"]): frozenset(json.loads(r["sha256s"])) for r in rows}

    def tombstoned_sha256(self) -> frozenset[str]:
        """Every original whose item this tool removed from a source."""
        out: set[str] = set()
        for r in self.query("select sha256s from tombstones"):
            out.update(json.loads(r["sha256s"]))
        return frozenset(out)

    def tombstone_count(self) -> int:
        return int(self.conn.execute("select count(*) from tombstones").fetchone()[0])

    def record_legacy(self, rows: Iterable[dict[str, Any]]) -> None:
        """Store imported seed rows: a re-import replaces them whole (rows
        the new media.db lacks are gone too). Each row has a key of its own
        (the seed's row id): a plain insert, so two rows of one key are an
        error, never one silently replacing the other."""
        with self.transaction():
            self.conn.execute("delete from legacy_media")
            for row in rows:
                values = row | {"imported_at": now_text()}
                cols, marks = ", ".join(values), ", ".join("?" * len(values))
                self.conn.execute(
                    f"insert into legacy_media ({cols}) values ({marks})", list(values.values())
                )

    def legacy_counts(self) -> dict[str, int]:
        """How many seed rows were imported, adopted, and deleted from iCloud
        by it (by ``seed_flag``, as the import's report counts them)."""
        rows, adopted = self.conn.execute(
            "select count(*), count(sha256) from legacy_media"
        ).fetchone()
        flags = self.conn.execute("select deleted_icloud from legacy_media")
        deleted = sum(seed_flag(value) for (value,) in flags)
        return {"rows": int(rows), "adopted": int(adopted), "deleted_from_icloud": deleted}

    def icloud_cursor(self, source_id: str) -> Cursor | None:
        rows = list(
            self.conn.execute(
                "select zone, account, token, full_at from icloud_cursor where source_id = ?",
                [source_id],
            )
        )
        if not rows:
            return None
        return Cursor(
            account=rows[0][1],
            tokens={r[0]: r[2] for r in rows},
            full_at=min(datetime.fromisoformat(r[3]) for r in rows),
        )

    def icloud_listing(self, source_id: str) -> list[ListingRow]:
        sql = (
            "select asset_id, master_id, zone, pos, item from icloud_listing "
            "where source_id = ? order by pos"
        )
        return [ListingRow._make(r) for r in self.conn.execute(sql, [source_id])]

    def save_icloud_listing(
        self,
        source_id: str,
        *,
        account: str,
        tokens: dict[str, str],
        full_at: datetime,
        rows: Iterable[ListingRow],
        gone: Iterable[str] = (),
        replace: bool,
    ) -> None:
        """Record a listing (``replace``: a whole one) or the rows a run of
        changes touched, with the tokens to read changes from next time."""
        with self.transaction():
            conn = self.conn
            if replace:
                conn.execute("delete from icloud_listing where source_id = ?", [source_id])
            conn.execute("delete from icloud_cursor where source_id = ?", [source_id])
            conn.executemany(
                "delete from icloud_listing where source_id = ? and asset_id = ?",
                [(source_id, a) for a in gone],
            )
            conn.executemany(
                "insert or replace into icloud_listing (source_id, asset_id, master_id, zone, "
                "pos, item) values (?, ?, ?, ?, ?, ?)",
                [(source_id, *r) for r in rows],
            )
            conn.executemany(
                "insert into icloud_cursor (source_id, zone, account, token, full_at) "
                "values (?, ?, ?, ?, ?)",
                [(source_id, z, account, t, full_at.isoformat()) for z, t in tokens.items()],
            )


def seed_flag(value: object) -> bool:
    """Whether one of the seed's yes/no columns (``deleted_icloud``) says
    yes: 1 as the seed wrote it, or the text a hand edit may leave ('1',
    'true', 'yes', any case). Kept as the seed wrote it, counted by this one
    rule: the import's report and ``legacy_counts`` agree."""
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return isinstance(value, str) and value.strip().lower() in {"1", "true", "yes"}
