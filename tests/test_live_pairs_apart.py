"""A Live Photo whose still and video reach the import folder in different
runs (a phone syncing the video a day after its still, or before it), or
beside a second still of their name: its video is kept as it is, never
encoded as a clip (that drops the track pairing it with its still), and one
compressed before its still came is put back as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import Workspace, files_under, make_workspace
from tests.media.conftest import make_clip
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the samples were taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def library_videos(ws: Workspace) -> dict[str, bytes]:
    return {k: v for k, v in files_under(ws.library).items() if k.endswith(".MOV")}


def apply(ws: Workspace) -> str:
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    return r.out


def test_a_live_video_that_comes_after_its_still_is_kept_as_it_is(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG")
    apply(ws)
    assert files_under(ws.incoming) == {}  # the still archived and off-loaded
    mov = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    p = ws.run("plan", now=T1)
    last = "Plan: 1 to copy into the library, 2 to copy to targets, 1 to remove from sources."
    assert p.out.splitlines()[-1] == last, p.out
    apply(ws)
    assert library_videos(ws) == {"2021/06/01/IMG_1.MOV": mov}
    assert ws.run("plan", now=T1).out == NO_CHANGES
    p = ws.run("plan", now=T2)  # aging: the still only
    assert p.out.splitlines()[-1] == "Plan: 1 to encode.", p.out
    assert ".MOV" not in p.out


def test_a_video_compressed_before_its_still_came_is_put_back_as_it_was(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    mov = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    apply(ws)  # alone, it is a clip: compressed, and off-loaded
    assert files_under(ws.incoming) == {}
    assert library_videos(ws).keys() == {"2021/06/01/IMG_1.MOV"}
    assert library_videos(ws)["2021/06/01/IMG_1.MOV"] != mov
    make_camera_jpeg(ws.incoming / "IMG_1.JPG")
    p = ws.run("plan", now=T1)
    assert (
        "  ~ encode library:2021/06/01/IMG_1.MOV (captured 2021-06-01, 0.5 years ago): "
        "tier original (original), library has recent\n"
    ) in p.out
    out = apply(ws)
    assert "library:2021/06/01/IMG_1.MOV: original restored" in out
    assert files_under(ws.incoming) == {}
    assert library_videos(ws) == {"2021/06/01/IMG_1.MOV": mov}
    assert ws.run("plan", now=T1).out == NO_CHANGES
    p = ws.run("plan", now=T2)  # aging: the still only
    assert p.out.splitlines()[-1] == "Plan: 1 to encode.", p.out
    assert ".MOV" not in p.out


def test_with_two_jpegs_of_its_name_a_live_video_is_kept_as_it_is(tmp_path: Path) -> None:
    """README: with two stills of the name, the video goes with the HEIC,
    else the JPEG (of two, the first by name)."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(480, 320))
    make_camera_jpeg(ws.incoming / "IMG_1.jpeg", size=(400, 300))
    mov = make_clip(ws.incoming / "IMG_1.MOV").read_bytes()
    p = ws.run("plan", "--detail", now=T1)
    assert "encode incoming:IMG_1.MOV" not in p.out, p.out
    apply(ws)
    assert files_under(ws.incoming) == {}
    assert library_videos(ws) == {"2021/06/01/IMG_1.MOV": mov}
    assert ws.run("plan", now=T1).out == NO_CHANGES
