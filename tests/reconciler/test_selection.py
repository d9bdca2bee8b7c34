"""``apply --only STAGES`` and ``--target ID`` through the CLI: only the
chosen part of the plan runs, and the removal gate is the same whatever was
chosen (a removal whose copies were not selected waits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def workspace(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    for n in (1, 2):
        make_jpeg(ws.incoming / f"IMG_000{n}.JPG", NOW - timedelta(days=400), seed=n)
    return ws


def test_only_copy_fills_the_targets_and_removes_nothing(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    r = ws.run("apply", "--yes", "--only", "copy", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "action(s) not selected by --only/--target; the next run does them" in r.out
    assert len(media_under(ws.target("nas"))) == len(media_under(ws.target("usb"))) == 2
    assert media_under(ws.library) == {}
    assert len(media_under(ws.incoming)) == 2  # removal was not selected
    # The rest is done by a run that selects it: the gate reads both copies.
    r = ws.run("apply", "--yes", "--only", "library,sidecar,remove", now=NOW)
    assert r.code == 0, r.out + r.err
    assert media_under(ws.incoming) == {}
    assert len(media_under(ws.library)) == 2
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_removal_whose_copies_were_not_selected_waits(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    r = ws.run("apply", "--yes", "--target", "nas", now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(media_under(ws.target("nas"))) == 2
    assert media_under(ws.target("usb")) == {}
    assert len(media_under(ws.incoming)) == 2
    # Removals alone: each needs its usb copy, which is not selected.
    r = ws.run("apply", "--yes", "--only", "remove", now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(media_under(ws.incoming)) == 2
    assert "removed" not in r.out
    # Targeting the source brings the copies a removal depends on along.
    r = ws.run("apply", "--yes", "--target", "incoming", now=NOW)
    assert r.code == 0, r.out + r.err
    assert media_under(ws.incoming) == {}
    assert len(media_under(ws.target("usb"))) == 2


def test_unknown_stages_and_stores_are_refused_and_stages_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path)
    assert ws.run("apply", "--help").code == 0
    helptext = " ".join(capsys.readouterr().out.split())
    assert "download, library, copy, sidecar, encode, remove, free, release" in helptext
    r = ws.run("apply", "--yes", "--only", "download,upload")
    assert r.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "reconcile apply: error: argument --only: unknown stage upload; stages: download, "
        "library, copy, sidecar, encode, remove, free, release"
    )
    r = ws.run("apply", "--yes", "--target", "tape", now=NOW)
    assert r.code == 1
    assert r.err == (
        "error: --target tape: no such source or target (known: library, incoming, nas, usb)\n"
    )
    assert len(media_under(ws.incoming)) == 2


def test_plan_only_shows_and_saves_the_selection_and_apply_of_it_runs_only_that(
    tmp_path: Path,
) -> None:
    ws = workspace(tmp_path)
    saved = tmp_path / "copy.plan"
    r = ws.run("plan", "--only", "copy", "--target", "nas", "--out", str(saved), now=NOW)
    assert r.code == 0, r.out + r.err
    assert "action(s) not selected by --only/--target" in r.out
    full = ws.run("plan", "--json", now=NOW).out
    narrow = ws.run("plan", "--json", "--only", "copy", "--target", "nas", now=NOW).out
    assert narrow.count('"type": "copy-to-target"') == 2 < full.count('"type": "copy-to-target"')
    assert '"type": "remove-from-source"' in full
    assert '"type": "remove-from-source"' not in narrow
    r = ws.run("apply", "--yes", str(saved), now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(media_under(ws.target("nas"))) == 2
    assert media_under(ws.target("usb")) == {}
    assert len(media_under(ws.incoming)) == 2
