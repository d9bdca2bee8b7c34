"""An action that needs an item's original bytes is planned only when this
run can read them; while a target that may hold them is not read
(unplugged) it waits. Here a clip was compressed and off-loaded, then a
still of its name came: the clip is a Live Photo's video, to be put back as
it was (an encode to tier ``original``), from a target. With both targets
unplugged that failed every run (``no readable original … anywhere``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import files_under, make_workspace
from tests.media.conftest import make_clip
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)


def test_a_live_video_to_put_back_waits_for_a_target_holding_its_original(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws")
    clip = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    (mov,) = ws.library.rglob("IMG_1.MOV")
    assert mov.read_bytes() != clip  # compressed as a clip
    make_camera_jpeg(ws.incoming / "IMG_1.JPG")
    for t in ("nas", "usb"):
        ws.target(t).rename(ws.target(t).with_name(t + "-away"))

    r = ws.run("apply", "--yes", now=T1)
    assert "failed" not in r.out, r.out
    assert (
        "waiting library:2021/06/01/IMG_1.MOV: its original is on no store read this run" in r.out
    ), r.out
    # Exit 1 for the unplugged targets alone (README: unavailable), nothing else.
    assert r.err == (
        "error: target nas, target usb could not be read (see '!' above); the rest was done\n"
    )
    assert mov.read_bytes() != clip

    for t in ("nas", "usb"):
        ws.target(t + "-away").rename(ws.target(t))
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert mov.read_bytes() == clip  # put back as it was
