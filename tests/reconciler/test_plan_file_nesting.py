"""A saved plan nested deeper than Python's stack (``[`` a hundred thousand
times) is a damaged plan file like any other: one line, exit 1, nothing run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def test_a_plan_file_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    plan = tmp_path / "p.json"
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000):
        plan.write_text(text)
        r = ws.run("apply", str(plan), "--yes", now=NOW)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"error: {plan}: not a readable plan file: nested too deeply; "
            "run reconcile plan --out again\n"
        )
    assert (ws.incoming / "IMG_1.JPG").exists() and files_under(ws.library) == {}
