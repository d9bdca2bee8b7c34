"""The metrics textfile and the report are replaced whole, by a rename over
the file: never over something that is no regular file. Configuration and
``report`` refuse such a name up front; the writer itself refuses too, for
what appears there after (``metrics_file = "/dev/null"``, run as root,
renamed a file of metrics over the device)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler import metrics


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_the_writer_never_renames_over_what_is_no_regular_file(tmp_path: Path, kind: str) -> None:
    there = tmp_path / "reconcile.prom"
    if kind == "fifo":
        os.mkfifo(there)
    else:
        there.mkdir()
    with pytest.raises(OSError, match="not a regular file; it is never replaced"):
        metrics.write_textfile(there, "reconcile_items 1\n")
    mode = os.lstat(there).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISDIR(mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_regular_file_and_a_link_to_one_are_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.prom"
    real.write_text("old\n")
    link = tmp_path / "reconcile.prom"
    link.symlink_to(real)
    assert metrics.write_textfile(link, "new\n")
    assert link.read_text() == "new\n"
