"""A plan written out (``--out``, ``--json``) carries the fingerprint of the
world it was made from; a plan only shown, or applied at once, does not
spend a pass over every file taking one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.commands import plan as plan_command
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_a_written_plan_has_a_basis_that_follows_the_world(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", NOW, seed=1)
    first = json.loads(ws.run("plan", "--json", now=NOW).out)["basis"]
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    assert json.loads(saved.read_text())["basis"] == first
    make_jpeg(ws.incoming / "IMG_2.JPG", NOW, seed=2)
    assert json.loads(ws.run("plan", "--json", now=NOW).out)["basis"] != first


def test_a_plan_shown_or_applied_takes_no_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", NOW, seed=1)

    def refuse(*_: object) -> str:
        raise AssertionError("fingerprint taken for a plan nobody keeps")

    monkeypatch.setattr(plan_command, "fingerprint", refuse)
    monkeypatch.setattr("reconciler.plan.fingerprint", refuse)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_removals_files_are_written_as_objects_and_read_back(tmp_path: Path) -> None:
    """``remove-from-source`` carries its item's files as objects of named
    fields (README: the plan format), whatever kind of value the model
    uses for a file; a plan written so is applied as it was planned."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2020, 1, 1, tzinfo=UTC), seed=1)
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    (removal,) = [
        a for a in json.loads(saved.read_text())["actions"] if a["type"] == "remove-from-source"
    ]
    (f,) = removal["files"]
    assert f == {
        "name": "IMG_1.JPG",
        "size": photo.stat().st_size,
        "ref": "IMG_1.JPG",
        "role": "original",
        "sha256": f["sha256"],
        "problem": "",
        "fingerprint": "",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
    r = ws.run("apply", str(saved), "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert not photo.exists()  # archived twice, then off-loaded as planned
