"""What the last run saw, as ``status`` and the report say it: a target the
last run could not read is not proven now (its marker in place or not), and
a source file the last run could not read is not hidden by a run that
observed nothing after it (locked out) or did not say what it saw (a
mistyped ``--target``). Real files; the unreadable file is read by a CLI
whose process file permissions apply to (``run_as_a_person``)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import MARKER
from reconciler.lock import RunLock
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace
from tests.test_faults import run_as_a_person

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
HEADLINE = "every item is archived (2 copies required) or off-loaded"


def _two_photos(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    for n in range(2):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n)
    return ws


def test_a_target_the_last_run_could_not_read_is_not_proven_now(tmp_path: Path) -> None:
    """The NAS, its marker in place, cannot be listed: a copy of an old
    backup, marker and all, was put inside it. Meanwhile a photo's copy
    there was deleted. Every plan says "nas could not be read"; status names
    the NAS as not proven, as for a phone the last run could not ask, until
    a run reads it again."""
    ws = _two_photos(tmp_path)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (copy,) = ws.target("nas").rglob("IMG_1.JPG")
    copy.unlink()
    old = ws.target("nas") / "old-usb-backup"
    old.mkdir()
    (old / MARKER).write_text((ws.target("usb") / MARKER).read_text())
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 1 and "target nas could not be read" in p.err, p.out + p.err
    text = ws.run("status", now=NOW).out
    assert HEADLINE not in text, text
    assert "not proven now: nas could not be read in run 2" in text, text
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert list(doc["not_proven_now"]) == ["nas"], doc["not_proven_now"]
    # A run that observes nothing (locked out) proves nothing of it either.
    lock = RunLock(ws.root / "state")
    lock.acquire()
    try:
        assert ws.run("apply", "--yes", now=NOW).code == 4
    finally:
        lock.release()
    assert "nas" in json.loads(ws.run("status", "--json", now=NOW).out)["not_proven_now"]
    # Taken out again: the next run reads the NAS, and puts the copy back.
    (old / MARKER).unlink()
    old.rmdir()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert HEADLINE in ws.run("status", now=NOW).out


def _one_never_read(tmp_path: Path) -> Workspace:
    """An apply that could not read one source file (mode 000): status holds
    back its headline."""
    ws = _two_photos(tmp_path)
    os.chmod(ws.incoming / "IMG_1.JPG", 0)
    r = run_as_a_person(ws, "apply", "--yes")
    assert r.code == 1 and "(1 unreadable)" in r.out, r.out + r.err
    assert HEADLINE not in ws.run("status", now=NOW).out
    return ws


def test_a_run_locked_out_does_not_hide_a_source_file_never_read(tmp_path: Path) -> None:
    ws = _one_never_read(tmp_path)
    lock = RunLock(ws.root / "state")
    lock.acquire()
    try:
        assert ws.run("apply", "--yes", now=NOW).code == 4  # observed nothing
    finally:
        lock.release()
    assert HEADLINE not in ws.run("status", now=NOW).out


def test_a_mistyped_target_does_not_hide_a_source_file_never_read(tmp_path: Path) -> None:
    """``plan --target nsa`` observes, then stops at the typo before saying
    what it could not read: its record says nothing of the file."""
    ws = _one_never_read(tmp_path)
    p = run_as_a_person(ws, "plan", "--target", "nsa")
    assert p.code == 1 and "--target nsa: no such source or target" in p.err, p.out + p.err
    assert HEADLINE not in ws.run("status", now=NOW).out
    # Readable again: the next apply archives it, and says so.
    os.chmod(ws.incoming / "IMG_1.JPG", 0o644)
    r = run_as_a_person(ws, "apply", "--yes")
    assert r.code == 0, r.out + r.err
    assert HEADLINE in ws.run("status", now=NOW).out
