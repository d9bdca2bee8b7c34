"""``log.backup_count = 0`` is accepted (config: "must not be negative"),
and the README says ``state.dir/reconcile.log`` "is rotated at this size
[log.max_file_size_mb]… keeping this many old files". With 0 old files
the log is never rotated at all: Python's RotatingFileHandler, given
backupCount=0, closes and reopens the file in append mode on every record
past the limit, so the log grows without bound (on a small state
partition, until the disk is full)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

LIMIT = 2000  # bytes: log.max_file_size_mb = 0.002


def test_a_log_with_no_old_files_kept_still_stays_near_its_size(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        extra=KEEP_ORIGINALS + "[log]\nmax_file_size_mb = 0.002\nbackup_count = 0\n",
    )
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", datetime(2021, 1, 1 + i, tzinfo=UTC), seed=i)
    assert ws.run("validate").code == 0
    for _ in range(15):
        assert ws.run("plan", "--detail").code == 0
    log = ws.root / "state" / "reconcile.log"
    size = log.stat().st_size
    olds = sorted(p.name for p in log.parent.glob("reconcile.log.*"))
    assert olds == []  # none kept, as configured
    # One record may pass the limit (a plan's whole text is one record), but
    # a rotated log never holds fifteen runs' worth.
    assert size < 4 * LIMIT, f"reconcile.log is {size} bytes with a {LIMIT}-byte limit"
