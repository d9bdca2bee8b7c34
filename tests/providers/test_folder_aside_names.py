"""A file a killed removal left aside gets its name back, whatever that name
holds: a name may carry any character but "/" and NUL, a newline too (a
file saved by a script, a name pasted with one)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.folder import aside_name, original_name
from tests.helpers import KEEP_ORIGINALS, apply_killed_at, files_under, make_jpeg, make_workspace

OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("name", ["new\nline.jpg", "\n.jpg", "tab\there\r.jpg", "end.jpg\n"])
def test_a_name_aside_gives_its_name_back(name: str) -> None:
    assert original_name(aside_name(name)) == name


def test_a_photo_with_a_newline_left_aside_by_a_killed_run_is_put_back(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    name = "trip\nday 1.jpg"
    photo = make_jpeg(ws.incoming / name, OLD, seed=1).read_bytes()
    apply_killed_at(ws, "aside:1")
    (aside,) = os.listdir(ws.incoming)
    assert aside != name and original_name(aside) == name

    ws.removal(False)  # a run that only sweeps (and archives)
    run = ws.run("apply", "--yes")
    assert run.code == 0, run.out + run.err
    assert "put back 1 source file(s) it was removing" in run.out
    assert files_under(ws.incoming) == {name: photo}
