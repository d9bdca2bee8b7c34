"""A plan written out (``--out``, ``--json``) carries the fingerprint of the
world it was made from; a plan only shown, or applied at once, does not
spend a pass over every file taking one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.commands import plan as plan_command
from reconciler.media import read_lineage
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


OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def test_a_saved_removal_of_other_bytes_at_its_name_is_stale(tmp_path: Path) -> None:
    """The saved plan removes IMG_1.JPG as it was (content A). Other
    archived bytes (B) then take the name: the fresh plan removes B under
    the same id, which the person never approved. It is stale, and kept."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    b = make_jpeg(ws.incoming / "OTHER.JPG", OLD, seed=2).read_bytes()
    assert ws.run("apply", "--yes", "--only", "library,copy,sidecar", now=NOW).code == 0
    (ws.incoming / "OTHER.JPG").unlink()  # B stays archived on both targets
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    (ws.incoming / "IMG_1.JPG").write_bytes(b)  # B now at A's name
    r = ws.run("apply", str(saved), "--yes", now=NOW)
    assert "stale remove-from-source incoming:IMG_1.JPG" in r.out, r.out
    assert (ws.incoming / "IMG_1.JPG").read_bytes() == b


def test_a_saved_encode_whose_tier_changed_since_is_stale(tmp_path: Path) -> None:
    """Saved an hour before the photo turns one: encode at tier "recent"
    (quality 85). Applied a day later, the fresh plan encodes the same file
    at "older" (75) under the same id: not what was approved; stale."""
    ws = make_workspace(tmp_path, removal=False)
    captured = datetime(2024, 1, 10, 12, tzinfo=UTC)
    make_jpeg(ws.incoming / "IMG_3.JPG", captured, seed=3, size=256)
    saved = tmp_path / "plan.json"
    then = captured + timedelta(days=365, hours=-1)
    assert ws.run("plan", "--out", str(saved), now=then).code == 0
    (encode,) = [a for a in json.loads(saved.read_text())["actions"] if a["type"] == "encode"]
    assert (encode["tier"], encode["quality"]) == ("recent", 85)
    r = ws.run("apply", str(saved), "--yes", now=then + timedelta(days=1))
    assert "stale encode" in r.out, r.out
    (lib,) = ws.library.rglob("IMG_3.JPG")
    assert read_lineage(lib) is None  # kept as it was: nothing unapproved done
