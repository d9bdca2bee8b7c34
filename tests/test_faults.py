"""Bad input and faults of the machine: each gets a clear message naming what
and where, the right exit code, loses nothing, and the next run completes
once the cause is fixed.

Tests run as root (the Makefile's world): a small tmpfs stands in for a full
disk, and ``setpriv`` drops the capabilities that let root ignore file
permissions, so a permission is denied as it would be to a person.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Run, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 1, 1, tzinfo=UTC)
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def photos(ws: Workspace, n: int, *, start: int = 0, size: int = 64) -> dict[str, bytes]:
    return {
        f"IMG_{i}.JPG": make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i, size=size).read_bytes()
        for i in range(start, start + n)
    }


def run_as_a_person(ws: Workspace, *args: str) -> Run:
    """The CLI in a process that file permissions apply to."""
    cli = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), *args]
    p = subprocess.run([*NO_DAC, *cli], capture_output=True, text=True, timeout=120)
    return Run(code=p.returncode, out=p.stdout, err=p.stderr)


def converged(ws: Workspace, originals: dict[str, bytes]) -> None:
    """Everything archived on both targets, off-loaded, and nothing left to do."""
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert files_under(ws.incoming) == {}
    for target in ("nas", "usb"):
        held = sorted(files_under(ws.target(target)).values())
        assert held == sorted(originals.values())


def kept(ws: Workspace, originals: dict[str, bytes]) -> None:
    """Every photo is in its source or on both targets (nothing lost)."""
    nas, usb = (set(files_under(ws.target(t)).values()) for t in ("nas", "usb"))
    left = files_under(ws.incoming)
    for name, data in originals.items():
        assert left.get(name) == data or (data in nas and data in usb), name


def test_a_truncated_state_db_is_named_with_what_to_do(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    originals = photos(ws, 3)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    new = photos(ws, 2, start=3)  # two more arrive
    db = tmp_path / "state" / "state.db"
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    for command in (("plan",), ("apply", "--yes"), ("status",)):
        r = ws.run(*command, now=NOW)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"error: state database {db} is damaged (database disk image is malformed); move "
            f"it aside with its -wal and -shm files (cd {db.parent} && mkdir -p damaged-state "
            "&& mv state.db* damaged-state/) and run again: the next run rebuilds it from the "
            "sources and targets\n"
        )
    kept(ws, new)
    subprocess.run(
        f"cd {db.parent} && mkdir -p damaged-state && mv state.db* damaged-state/",
        shell=True,
        check=True,
    )
    assert ws.run("apply", "--yes", now=NOW).code == 0
    converged(ws, originals | new)


@pytest.fixture
def small_nas(tmp_path: Path) -> Iterator[Path]:
    """The nas target on its own 400 kB filesystem."""
    nas = tmp_path / "nas"
    nas.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(nas)], check=True)
    try:
        yield nas
    finally:
        subprocess.run(["umount", str(nas)], check=True)


def test_a_full_target_fails_its_copies_and_keeps_the_items(
    tmp_path: Path, small_nas: Path
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    originals = photos(ws, 6, size=300)  # ~77 kB each: the sixth does not fit
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert "No space left on device" in r.out
    assert r.err == (
        "error: some actions failed (see 'failed' above); run apply again to retry them\n"
    )
    kept(ws, originals)
    assert len(files_under(ws.incoming)) >= 1
    assert not [p for p in small_nas.rglob("*") if p.name.startswith(".reconcile-tmp")]
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_nas)], check=True)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    converged(ws, originals)


def test_a_target_folder_that_cannot_be_written(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    originals = photos(ws, 2)
    ws.target("nas").chmod(0o555)
    r = run_as_a_person(ws, "apply", "--yes", "--detail")
    assert r.code == 1
    assert (
        f"  x failed copy-to-target incoming:IMG_0.JPG: nas: creating {ws.target('nas')}/"
        "2022/01/01 failed: Permission denied\n"
    ) in r.out
    assert r.err == (
        "error: some actions failed (see 'failed' above); run apply again to retry them\n"
    )
    assert files_under(ws.incoming) == originals  # nothing removed without its nas copy
    ws.target("nas").chmod(0o755)
    assert run_as_a_person(ws, "apply", "--yes").code == 0
    converged(ws, originals)


def test_a_source_file_that_cannot_be_read(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    originals = photos(ws, 2)
    locked = ws.incoming / "IMG_1.JPG"
    os.chmod(locked, 0)
    r = run_as_a_person(ws, "apply", "--yes")
    assert r.code == 1
    assert (
        f"  x unreadable incoming:IMG_1.JPG: cannot read {locked}: Permission denied; the item "
        "stays; the next run retries\n"
    ) in r.out
    assert r.err == (
        "error: 1 file(s) could not be read (see 'x' above); the rest was done; fix them "
        "and the next run picks them up\n"
    )
    assert files_under(ws.incoming) == {"IMG_1.JPG": originals["IMG_1.JPG"]}  # the rest went on
    kept(ws, originals)
    os.chmod(locked, 0o644)
    assert run_as_a_person(ws, "apply", "--yes").code == 0
    converged(ws, originals)
