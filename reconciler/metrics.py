"""Metrics for monitoring: a Prometheus textfile for node_exporter.

Rewritten atomically (temporary name, then rename in the same folder) at the
end of every plan and apply, from the state database alone, so a plan never
hides the last apply's figures: node_exporter's textfile collector reads
whatever whole file is there. The ``reconcile_last_*`` series of a
command are its last run that ended with an exit code: a run killed
(SIGKILL, the OOM killer) has none, and keeps no series from the last one
that had; it is counted in ``reconcile_runs_without_exit`` instead. Alert on
``reconcile_last_exit_code != 0``, on ``time() -
reconcile_last_run_timestamp_seconds`` growing, on
``reconcile_runs_without_exit{command="apply"} > 0`` for longer than an
apply takes (a run under way counts too), on
``reconcile_items{state="failed"} > 0``, or on
``reconcile_items{state="source_only"}`` staying above zero for days.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import stat
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.backup import locked_if_free
from reconciler.state import NOT_DECLINED, StateDB

PROM_NAME = "reconcile.prom"


def _labels(**labels: str) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    inner = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
    return f"{{{inner}}}" if inner else ""


class _Family:
    def __init__(self, name: str, help_text: str) -> None:
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        self.name = name

    def add(self, value: float, **labels: str) -> None:
        # repr, not :g — six digits would round a Unix time by minutes.
        text = str(value) if isinstance(value, int) else repr(float(value))
        self.lines.append(f"{self.name}{_labels(**labels)} {text}")


def render(db: StateDB, census: Mapping[str, Any] | None = None) -> str:
    """The textfile's text: the last run of each command, what the tool has
    removed, what waits on a confirming store, and the census
    (``reconciler.census``'s JSON: items by state, per-target files and bytes)."""
    stamp = _Family(
        "reconcile_last_run_timestamp_seconds", "When the last run of each command ended."
    )
    duration = _Family("reconcile_last_run_duration_seconds", "How long that run took.")
    code = _Family("reconcile_last_exit_code", "Its exit code (0 ok, 2 changes pending, …).")
    counts = _Family(
        "reconcile_last_run_actions", "Actions of that run by outcome (apply) or kind (plan)."
    )
    moved = _Family(
        "reconcile_last_run_bytes", "Bytes that run downloaded, imported, copied, off-loaded."
    )
    unfinished = _Family(
        "reconcile_runs_without_exit",
        "Runs newer than the last one with an exit code that have none: killed, or under way.",
    )
    for command in ("plan", "apply"):
        row, without = _last_exited(db, command)
        unfinished.add(without, command=command)
        if row is None:
            continue
        ended = datetime.fromisoformat(row["finished_at"])
        started = datetime.fromisoformat(row["started_at"])
        stamp.add(ended.timestamp(), command=command)
        duration.add(max(0.0, (ended - started).total_seconds()), command=command)
        code.add(int(row["exit_code"]), command=command)
        for key, n in sorted(json.loads(row["summary"] or "{}").items()):
            if key.startswith("bytes_"):
                moved.add(int(n), command=command, what=key.removeprefix("bytes_"))
            else:
                counts.add(int(n), command=command, what=key)
    removed = _Family(
        "reconcile_removed_items", "Items this tool removed from their sources, ever."
    )
    removed.add(db.tombstone_count())
    waiting = _Family(
        "reconcile_waiting_confirmations", "Files delivered to a device and not yet confirmed."
    )
    for store_id, n in sorted(db.unconfirmed_counts().items()):
        waiting.add(n, target=store_id)
    families = [stamp, duration, code, counts, moved, unfinished, removed, waiting]
    if census is not None:
        families += _census_families(census)
    return "\n".join(line for f in families for line in f.lines) + "\n"


def _last_exited(db: StateDB, command: str) -> tuple[dict[str, Any] | None, int]:
    """The last run of ``command`` that ended with an exit code (an apply
    declined at its prompt did nothing and is none), and how many runs of
    it came after without one (still ``running``, or marked ``crashed`` by
    the next apply)."""
    sql = (
        "select * from runs where command = ? and exit_code is not null "
        f"and finished_at is not null and {NOT_DECLINED} order by id desc limit 1"
    )
    rows = [dict(r) for r in db.query(sql, [command])]
    last = rows[0] if rows else None
    after = db.conn.execute(
        "select count(*) from runs where command = ? and id > ? and exit_code is null",
        (command, last["id"] if last else -1),
    ).fetchone()[0]
    return last, int(after)


def _census_families(census: Mapping[str, Any]) -> list[_Family]:
    items = _Family(
        "reconcile_items",
        "Items by state (each once, by its best state; failed: in the last apply, besides).",
    )
    for state, n in census["items"].items():
        items.add(int(n), state=state)
    files = _Family("reconcile_target_files", "Files on each target, as the tool recorded them.")
    size = _Family("reconcile_target_bytes", "Bytes on each target, as the tool recorded them.")
    for target, figures in sorted(census["targets"].items()):
        files.add(int(figures["files"]), target=target)
        size.add(int(figures["bytes"]), target=target)
    total = _Family(
        "reconcile_bytes",
        "Library size, bytes saved by compression and by off-loading, bytes left in iCloud.",
    )
    for what, n in census["bytes"].items():
        total.add(int(n), what=what)
    tiers = _Family("reconcile_library_files", "Library files by tier.")
    for tier, n in sorted(census["tiers"].items()):
        tiers.add(int(n), tier=tier)
    return [items, files, size, total, tiers]


#: How long a run waits for another writer of the textfile (a plan ending
#: beside an apply): a write takes a moment; a writer stuck longer than this
#: (a hung disk) is given up on, and this run's figures with it.
WAIT_SECONDS = 30.0


def rewrite(path: Path, db: StateDB, *, wait: float = WAIT_SECONDS) -> bool:
    """Replace the textfile with what ``db`` holds once this writer has the
    textfile's lock: read under it, so of two runs ending together (a plan
    beside an apply) the one that writes last has read what both recorded,
    and the newest figures win. False: another writer kept the lock all
    ``wait`` long."""
    return write_textfile(path, lambda: render(db, last_census(db)), wait=wait)


def last_census(db: StateDB) -> dict[str, Any] | None:
    """The census of the state the runs left last (None: the newest run has
    none, a census that could not be taken). Not by id alone: an apply's
    row is made as it starts, so a plan ending during it has a newer one;
    nor by the times recorded, which go back when the clock does (a run
    made while it was a day ahead would freeze the figures for a day). By
    the state database's change counter each census was taken at (part of
    its ``census_key``): it only grows, so the census taken at the highest
    count saw every write the others saw; of equal counts (the same rows)
    the newest row."""
    rows = db.conn.execute(
        "select id, census_key from runs where census is not null and finished_at is not null"
    ).fetchall()
    if not rows:
        return None
    best = max(rows, key=lambda r: (_changes(r[1]), int(r[0])))[0]
    newest = db.conn.execute("select max(id) from runs where finished_at is not null").fetchone()
    if newest[0] is not None and int(newest[0]) > best and _without_census(db, int(newest[0])):
        return None
    row = db.conn.execute("select census from runs where id = ?", (best,)).fetchone()
    census: dict[str, Any] = json.loads(row[0])
    return census


def _changes(key: str | None) -> int:
    """The change counter a census was taken at, from its key
    (``census.census_key``: ``schema:changes:…``); -1 when it has none (a
    row from before keys were kept)."""
    parts = (key or "").split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def _without_census(db: StateDB, run_id: int) -> bool:
    """The run ``run_id`` ended with no census (one could not be taken)."""
    row = db.conn.execute("select census from runs where id = ?", (run_id,)).fetchone()
    return row is not None and row[0] is None


def write_textfile(path: Path, text: str | Callable[[], str], *, wait: float = 0.0) -> bool:
    """Replace ``path`` whole: a reader never sees half a file. Written after
    the run lock is let go, so under a lock of its own beside it (node_exporter
    reads only ``*.prom``): with it held, a temporary of ours there is a killed
    writer's, removed. ``text`` may be a function, called with the lock held
    (``rewrite``). Another writer holding the lock is waited for up to
    ``wait`` seconds; False if it still held it then (nothing written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked_if_free(path.parent / f".{path.name}.lock", wait=wait) as mine:
        if not mine:
            return False
        for left in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            left.unlink(missing_ok=True)
        _replace(path, text if isinstance(text, str) else text())
        return True


def _replace(path: Path, text: str) -> None:
    # Only a regular file (or nothing) is replaced: a device, a FIFO or a
    # folder at ``path`` (``metrics_file = "/dev/null"`` to switch metrics
    # off, run as root) would be renamed over and gone.
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, "not a regular file; it is never replaced", str(path))
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as another user
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
