"""A file name may hold a newline, a tab, a carriage return or a terminal
escape (Linux allows any byte but ``/`` and NUL; a sync tool or a script can
make one). Shown to a person (plan, apply, status, the log) such a character
is escaped visibly, so one file's name can never make or break a line: a
name cannot forge another action's line. Stored and compared names, and
``--json``, keep the name exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.visible import escape_controls
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

OLD = datetime.now(UTC) - timedelta(days=800)
FORGED = "  - remove-from-source incoming:IMG_2.JPG: archived (2 verified copies)"
NAME = "IMG_1.JPG\n" + FORGED
SHOWN = "IMG_1.JPG\\n" + FORGED


def _no_forged_line(text: str) -> None:
    """Every line naming the photo names it whole; none is the forged one."""
    for line in text.splitlines():
        assert not line.lstrip().startswith("- remove-from-source"), text
        if "IMG_1.JPG" in line:
            assert SHOWN in line, line


def test_a_newline_in_a_name_is_shown_escaped_everywhere(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(tmp_path / "photo.jpg", OLD, seed=1).rename(ws.incoming / NAME)

    plan = ws.run("plan", "--detail")
    assert plan.code == 0, plan.err
    assert plan.out == (
        "reconcile will perform these actions:\n"
        f"  + copy-to-library incoming:{SHOWN}: not in the library\n"
        f"  + copy-to-target[nas] incoming:{SHOWN}: no verified copy on nas\n"
        f"  + copy-to-target[usb] incoming:{SHOWN}: no verified copy on usb\n"
        "\n"
        "Plan: 1 to copy into the library, 2 to copy to targets.\n"
    )
    grouped = ws.run("plan")
    _no_forged_line(grouped.out)
    assert f"      incoming:{SHOWN}\n" not in grouped.out  # groups of one: a line each
    assert f"  + copy-to-library incoming:{SHOWN}: not in the library\n" in grouped.out

    # Machines get the name exactly: JSON escapes it itself.
    listed = json.loads(ws.run("plan", "--json").out)
    assert {a["subject"] for a in listed["actions"]} == {f"incoming:{NAME}"}

    status = ws.run("status")
    _no_forged_line(status.out)
    assert f"oldest not yet archived: incoming:{SHOWN}, captured " in status.out

    applied = ws.run("apply", "--yes", "--detail")
    assert applied.code == 0, applied.err
    _no_forged_line(applied.out)
    assert f"  + changed copy-to-library incoming:{SHOWN}: copied to " in applied.out

    # The name as stored and compared is the file's own: nothing is left to do.
    again = ws.run("plan")
    assert again.out == "No changes. The library matches desired_state.toml.\n"

    log = (tmp_path / "state" / "reconcile.log").read_text(encoding="utf-8")
    assert log.count(SHOWN) >= 9  # 3 actions in each of two plans, 3 outcomes
    _no_forged_line(log)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("IMG\n1.JPG", "IMG\\n1.JPG"),
        ("IMG\t1.JPG", "IMG\\t1.JPG"),
        ("IMG\r1.JPG", "IMG\\r1.JPG"),
        ("\x1b[2K\x1b[31mIMG_1.JPG\x1b[0m", "\\x1b[2K\\x1b[31mIMG_1.JPG\\x1b[0m"),
        ("IMG\x00\x07\x08\x0b\x0c\x1f.JPG", "IMG\\x00\\x07\\x08\\x0b\\x0c\\x1f.JPG"),
        ("IMG\x7f.JPG", "IMG\\x7f.JPG"),
        ("IMG\x85\x9b\x9f.JPG", "IMG\\x85\\x9b\\x9f.JPG"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line breaks to str.splitlines
        ("Café 🎉.JPG", "Café 🎉.JPG"),
        ("👩\u200d👩\u200d👧 été\u00a02024 \\n.JPG", "👩\u200d👩\u200d👧 été\u00a02024 \\n.JPG"),
        ("Été/IMG_0001 (2).HEIC", "Été/IMG_0001 (2).HEIC"),
        ("", ""),
    ],
)
def test_escape_controls(name: str, shown: str) -> None:
    assert escape_controls(name) == shown
