"""A file whose name is not UTF-8 (an old camera's card, a disk from another
OS) is that file's error, never the run's crash: it stays where it is, the
run names it (undecodable bytes as \\xNN) and says how to fix it, the rest
is archived, and once renamed it is archived like any other. One in a store
is not a copy of anything and stops nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import (
    KEEP_ORIGINALS,
    files_under,
    make_jpeg,
    make_workspace,
    write_raw_name,
)

OLD = datetime.now(UTC) - timedelta(days=800)


def test_an_undecodable_name_waits_named_and_the_rest_is_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    photo = make_jpeg(tmp_path / "spare.jpg", OLD, seed=2).read_bytes()
    odd = write_raw_name(ws.incoming, b"Caf\xe9.JPG", photo)  # Latin-1, not UTF-8
    deep = write_raw_name(ws.incoming, b"\xc9t\xe9/IMG_2.JPG", photo + b"x")  # in a Latin-1 folder
    # One in a target too: another tool's, no copy of anything, in nobody's way.
    write_raw_name(tmp_path / "nas", b"2020/na\xefve.JPG", b"not ours")

    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 1, plan.err
    assert "incoming:Caf\\xe9.JPG" in plan.out
    assert "incoming:\\xc9t\\xe9/IMG_2.JPG" in plan.out
    assert "not valid UTF-8" in plan.out and "rename it" in plan.out
    listed = json.loads(ws.run("plan", "--json").out)
    assert any(n["subject"] == "incoming:Caf\\xe9.JPG" for n in listed["notes"])

    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.err
    assert "could not be read" in applied.err
    assert not (ws.incoming / "IMG_1.JPG").exists()  # archived twice, off-loaded
    assert len(files_under(tmp_path / "usb")) == 1
    with open(odd, "rb") as f:
        assert f.read() == photo  # untouched
    assert os.path.exists(deep)
    assert ws.run("status").code == 0

    # Renamed, it is a photo like any other.
    os.rename(odd, ws.incoming / "Café.JPG")
    os.rename(os.path.dirname(deep), ws.incoming / "Été")
    assert ws.run("apply", "--yes").code == 0
    assert not (ws.incoming / "Café.JPG").exists()
    assert sorted(Path(p).name for p in files_under(tmp_path / "usb")) == [
        "Café.JPG",
        "IMG_1.JPG",
        "IMG_2.JPG",
    ]
    assert ws.run("plan", "--detailed-exitcode").code == 0
