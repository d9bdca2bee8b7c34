"""A person's edit saved over a library photo while the tool moved it to the
next tier: the editor opened the ``recent`` encode, the yearly run encoded the
file for ``older``, the editor saved (exiftool here: a tag edited), carrying
the lineage label it found (``recent``). That label is no proof the tool made
the file (its record and the library's journal list no such encode): the
person's version is archived, never re-encoded over (it was, before: a label
naming another tier than the record's was believed, and the edit was lost
everywhere)."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import files_under, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)
T2 = datetime(2023, 1, 1, tzinfo=UTC)


def tag(path: Path, name: str) -> str:
    return subprocess.run(
        ["exiftool", "-s3", f"-{name}", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_an_edit_begun_before_a_tier_change_is_the_persons(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib)[1] == "recent"
    opened = lib.read_bytes()  # the person's editor opens the photo

    r = ws.run("apply", "--yes", now=T2)  # the yearly run: tier older
    assert r.code == 0 and read_lineage(lib)[1] == "older", r.out

    # The editor saves the person's version over the file.
    edited_path = tmp_path / "edit.jpg"
    edited_path.write_bytes(opened)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-Artist=Grandma", str(edited_path)], check=True
    )
    edited = edited_path.read_bytes()
    lib.write_bytes(edited)
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "recent")

    runs = [ws.run("apply", "--yes", now=T2) for _ in range(2)]
    on_targets = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    found = {str(p): tag(p, "Artist") for p in ws.library.rglob("*.JPG")}
    assert edited in on_targets or lib.read_bytes() == edited, (
        [r.out for r in runs],
        found,
        "the person's edit was replaced and is on no target",
    )
    assert edited in on_targets, ([r.out for r in runs], "the edit was never archived")
