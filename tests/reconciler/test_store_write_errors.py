"""A store's disk refusing a write fails that action with the disk's own
reason, and the run goes on; nothing of it is an internal error.

The library's disk full (a tier changed to keep originals, which are read
back from the targets) or turned read-only by the kernel after an I/O
error stopped the whole apply as "internal error … this is a bug": the
original's search (``Originals.readable``) took the encode's or copy's own
error for a bad original, and a temporary's removal on the way out raised
another. A file standing where a day folder goes (``2020/01/02``, another
tool's) failed that copy on every run: it now goes beside it, as a copy
does beside a file of its own name."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace, mounted

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s filesystem until about ``leave`` bytes are free, in
    a dot-folder (nothing the tool lists)."""
    junk = folder / ".junk"
    junk.mkdir(exist_ok=True)
    st = os.statvfs(folder)
    with open(junk / "filler", "wb") as f:
        f.write(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))


def test_originals_put_back_into_a_full_library_fail_as_actions(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    with mounted(root / "library", "-t", "tmpfs", "-o", "size=2m", "tmpfs"):
        ws = make_workspace(root)  # the default tiers compress
        photos = [make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i, size=300) for i in range(2)]
        originals = {p.read_bytes() for p in photos}
        for _ in range(2):
            r = ws.run("apply", "--yes", now=NOW)
            assert r.code == 0, r.out + r.err
        assert files_under(ws.incoming) == {}
        assert originals <= set(files_under(ws.target("nas")).values())
        # the originals wanted back, with the library's disk full
        ws.config.write_text(ws.config.read_text() + KEEP_ORIGINALS)
        _fill(ws.library, leave=4096)
        r = ws.run("apply", "--yes", now=NOW)
        assert "internal error" not in r.err, r.err
        assert r.code == 1, r.out + r.err
        assert "No space left on device" in r.out, r.out
        # the targets' originals untouched
        assert originals <= set(files_under(ws.target("nas")).values())


def test_a_library_turned_read_only_fails_the_copy_not_the_run(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    with mounted(root / "library", "-t", "tmpfs", "-o", "size=4m", "tmpfs"):
        ws = make_workspace(root, extra=KEEP_ORIGINALS)
        make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()  # same day
        subprocess.run(["mount", "-o", "remount,ro", str(ws.library)], check=True)
        try:
            r = ws.run("apply", "--yes", now=NOW)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(ws.library)], check=True)
        assert "internal error" not in r.err, r.err
        assert r.code == 1
        assert "Read-only file system" in r.out, r.out
        # the rest went on: both backups hold it (so it may leave its source)
        for target in ("nas", "usb"):
            assert photo in files_under(ws.target(target)).values(), r.out


@pytest.mark.parametrize("store", ["nas", "library"])
def test_a_file_where_a_day_folder_goes_is_stepped_around(tmp_path: Path, store: str) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    blocked = make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2020, 1, 2, 12, tzinfo=UTC), seed=1)
    other = make_jpeg(ws.incoming / "IMG_2.JPG", datetime(2021, 5, 6, 12, tzinfo=UTC), seed=2)
    photos = {blocked.read_bytes(), other.read_bytes()}
    obstacle = ws.target(store) / "2020" / "01" / "02"
    obstacle.parent.mkdir(parents=True)
    obstacle.write_bytes(b"another program's file")
    first = ws.run("apply", "--yes", now=NOW)
    assert "internal error" not in first.err, first.err
    assert first.code == 0, first.out + first.err
    assert photos <= set(files_under(ws.target(store)).values()), first.out
    assert files_under(ws.incoming) == {}, first.out
    assert obstacle.read_bytes() == b"another program's file"
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert again.code == 0, again.out + again.err
