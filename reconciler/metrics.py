"""Metrics for monitoring: a Prometheus textfile for node_exporter.

Rewritten atomically (temporary name, then rename in the same folder) at the
end of every plan and apply, from the state database alone, so a plan never
hides the last apply's figures: node_exporter's textfile collector reads
whatever whole file is there. Alert on ``reconcile_last_exit_code != 0`` or
on ``time() - reconcile_last_run_timestamp_seconds`` growing.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path

from reconciler.state import StateDB

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


def render(db: StateDB) -> str:
    """The textfile's text: the last run of each command, what the tool has
    removed, and what waits on a confirming store."""
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
    for command in ("plan", "apply"):
        row = db.last_run_of(command)
        if row is None or not row["finished_at"]:
            continue
        ended = datetime.fromisoformat(row["finished_at"])
        started = datetime.fromisoformat(row["started_at"])
        stamp.add(ended.timestamp(), command=command)
        duration.add(max(0.0, (ended - started).total_seconds()), command=command)
        if row.get("exit_code") is not None:
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
    families = (stamp, duration, code, counts, moved, removed, waiting)
    return "\n".join(line for f in families for line in f.lines) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` whole: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
