"""Rebuilding an empty library from the targets never leaves content out
where two contents come back at one library path: each takes a path of its
own (another of its copies', else a collision name), and the next plan has
nothing to do."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from reconciler.layout import collision_path
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

WHEN = datetime(2021, 12, 1, tzinfo=UTC)  # the camera sample's tier is "recent": encoded
DAY = "2021/06/01"


def _new_machine(ws: Workspace) -> None:
    """The state directory and the library disk lost: a new, marked one."""
    shutil.rmtree(ws.root / "state", ignore_errors=True)
    shutil.rmtree(ws.library)
    write_marker(ws.library, "library")


def test_two_photos_named_crosswise_on_two_targets_both_come_back(tmp_path: Path) -> None:
    """The NAS holds the person's own IMG_1.JPG of that day and the card's
    photo of that name beside it (a collision name); the USB disk holds them
    the other way round. Each content's first path is IMG_1.JPG: both must
    come back, neither in place of the other."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    theirs = make_jpeg(tmp_path / "theirs.jpg", None, seed=9, size=128).read_bytes()
    mine = make_jpeg(tmp_path / "mine.jpg", None, seed=3, size=128).read_bytes()
    sha = {data: hashlib.sha256(data).hexdigest() for data in (theirs, mine)}
    plain = f"{DAY}/IMG_1.JPG"
    for t, first, second in (("nas", theirs, mine), ("usb", mine, theirs)):
        (ws.target(t) / DAY).mkdir(parents=True)
        (ws.target(t) / plain).write_bytes(first)
        (ws.target(t) / collision_path(plain, sha[second])).write_bytes(second)
    _new_machine(ws)

    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    assert sorted(files_under(ws.library).values()) == sorted([theirs, mine]), r.out
    again = ws.run("plan", "--detailed-exitcode", now=WHEN)
    assert again.code == 0, again.out


def test_an_encode_in_place_of_a_lost_original_and_a_new_photo_of_its_name(
    tmp_path: Path,
) -> None:
    """IMG_1's original lost (targets replaced) and its encode archived
    tagged .encoded; then a new photo named IMG_1.JPG of that day (a camera
    counter reset) takes the original's free name on the targets. The
    encode comes back at its original's name, the new photo there too: a
    new machine's library must hold both."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    for t in ("nas", "usb"):
        shutil.rmtree(ws.target(t))
        write_marker(ws.target(t), t)
    assert ws.run("apply", "--yes", now=WHEN).code == 1  # x lost; its encode archived
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(480, 320))
    assert ws.run("apply", "--yes", now=WHEN).code == 1  # (the original still lost)
    nas = files_under(ws.target("nas"))
    assert {f"{DAY}/IMG_1.JPG", f"{DAY}/IMG_1.encoded.JPG"} <= set(nas)  # (set-up)
    before = sorted(v for k, v in files_under(ws.library).items() if not k.endswith(".xmp"))
    assert len(before) == 2

    _new_machine(ws)
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code in (0, 1), r.out + r.err  # (1: the encode's original is still lost)
    after = sorted(v for k, v in files_under(ws.library).items() if not k.endswith(".xmp"))
    assert after == before, r.out
    again = ws.run("plan", now=WHEN)
    assert "to copy" not in again.out and "to put back" not in again.out, again.out
