"""A Live Photo's video is never re-encoded once its item has left the
source, whatever name the library gave it: two same-named pairs of one day
are placed as IMG_1.JPG + IMG_1.MOV and IMG_1~<sha>.JPG + IMG_1~<sha'>.MOV."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import Workspace, files_under, make_jpeg, make_workspace
from tests.media.conftest import make_clip
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the samples were taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older
REPO = Path(__file__).resolve().parents[1]
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def two_pairs(ws: Workspace) -> dict[str, bytes]:
    """a/IMG_1.JPG+MOV and b/IMG_1.JPG+MOV; returns the videos' bytes by folder."""
    for folder, size, rotate in (("a", (480, 320), 90), ("b", (400, 300), 180)):
        (ws.incoming / folder).mkdir()
        make_camera_jpeg(ws.incoming / folder / "IMG_1.JPG", size=size)
        make_clip(ws.incoming / folder / "IMG_1.MOV", rotate=rotate)
    return {f: (ws.incoming / f / "IMG_1.MOV").read_bytes() for f in ("a", "b")}


def library_videos(ws: Workspace) -> dict[str, bytes]:
    return {k: v for k, v in files_under(ws.library).items() if k.endswith(".MOV")}


def test_live_videos_under_collision_names_stay_as_they_are(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    movs = two_pairs(ws)
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}  # both pairs archived and off-loaded
    videos = library_videos(ws)
    assert sorted(videos.values()) == sorted(movs.values())
    assert len([k for k in videos if "~" in k]) == 1  # the second pair's name

    assert ws.run("plan", now=T1).out == NO_CHANGES
    # Aging re-encodes both stills, never either video.
    p = ws.run("plan", "--detail", now=T2)
    assert p.out.splitlines()[-1] == "Plan: 2 to encode.", p.out
    assert ".MOV" not in p.out
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert library_videos(ws) == videos
    assert all(read_lineage(q)[1] == "older" for q in ws.library.rglob("*.JPG"))  # type: ignore[index]
    assert ws.run("plan", "--detailed-exitcode", now=T2).code == 0


def test_live_videos_stay_as_they_are_after_a_lost_state_db(tmp_path: Path) -> None:
    """No record of the removal (the state DB was lost; or the person
    emptied the folder): the still of the same name, collision tags aside,
    says it is a Live Photo's video."""
    ws = make_workspace(tmp_path / "ws")
    two_pairs(ws)
    # A young photo stays in the source, so that its listing is not empty.
    make_jpeg(ws.incoming / "young.jpg", datetime(2021, 11, 20, tzinfo=UTC))
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert list(files_under(ws.incoming)) == ["young.jpg"]
    videos = library_videos(ws)
    assert len(videos) == 2
    shutil.rmtree(ws.root / "state")
    p = ws.run("plan", now=T1)
    assert p.out == NO_CHANGES
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert library_videos(ws) == videos


def test_a_live_video_left_alone_by_a_killed_removal_stays_as_it_is(tmp_path: Path) -> None:
    """A SIGKILL between the two deletions of a Live Photo's removal (the
    still gone, its video aside): the next run puts the video back, alone,
    and takes it out as an item of its own. The library's copy is still the
    Live Photo's video: never encoded, then or as it ages."""
    ws = make_workspace(tmp_path / "ws")
    (ws.incoming / "a").mkdir()
    make_camera_jpeg(ws.incoming / "a" / "IMG_1.JPG", size=(480, 320))
    make_clip(ws.incoming / "a" / "IMG_1.MOV", rotate=90)
    mov = (ws.incoming / "a" / "IMG_1.MOV").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["PYTHONPATH"] = str(REPO)
    # the second deletion of a file moved aside is the video's: killed before it
    env["RECONCILE_TEST_KILL_ON"] = r"os.remove|\.reconcile-removing-|2"
    killer = REPO / "tests" / "kill_at_syscall.py"
    killed = subprocess.run(
        [sys.executable, str(killer), "-c", str(ws.config), "apply", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name.split(".reconcile-removing-")[0] for p in (ws.incoming / "a").iterdir()] == [
        "IMG_1.MOV"
    ]
    for _ in range(2):
        r = ws.run("apply", "--yes", now=T1)
        assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    assert list(library_videos(ws).values()) == [mov]
    p = ws.run("plan", "--detail", now=T2)  # aging: the still only
    assert p.out.splitlines()[-1] == "Plan: 1 to encode.", p.out
    assert ".MOV" not in p.out


def test_a_live_video_named_unlike_its_still_but_for_case_stays_as_it_is(tmp_path: Path) -> None:
    """``IMG_1.JPG`` + ``img_1.MOV``: the import folder pairs them whatever
    the case, and so does the library without a record of their removal
    (a lost state DB), as the census does in counting them one item."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(480, 320))
    mov = make_clip(ws.incoming / "img_1.MOV", rotate=90).read_bytes()
    # A young photo stays in the source, so that its listing is not empty.
    make_jpeg(ws.incoming / "young.jpg", datetime(2021, 11, 20, tzinfo=UTC))
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert list(files_under(ws.incoming)) == ["young.jpg"]
    assert ws.run("plan", now=T1).out == NO_CHANGES  # with its record
    shutil.rmtree(ws.root / "state")
    assert ws.run("plan", now=T1).out == NO_CHANGES
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert library_videos(ws) == {"2021/06/01/img_1.MOV": mov}
