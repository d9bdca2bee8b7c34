"""Removing an item from a folder source deletes exactly the bytes that were
archived, whatever lands at a file's name meanwhile.

A phone syncing into the import folder (Syncthing renames a new file over
its name) can put a new photo at a name being removed: a camera counter
that reset, while the item's Live Photo video was still being read. Each
file is moved aside before it is hashed, so what is hashed is what is
deleted; a file that is not what was archived sends every file back, never
over one that took its name; a killed run's files are put back by the next.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers import folder
from reconciler.hashing import sha256_file
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)
VIDEO = b"\x00\x00\x00\x18ftypqt  " + b"the live video" * 500


def _live_photo(ws: Workspace) -> tuple[bytes, bytes]:
    still = make_jpeg(ws.incoming / "IMG_0001.JPG", OLD, seed=1).read_bytes()
    (ws.incoming / "IMG_0001.MOV").write_bytes(VIDEO)
    os.utime(ws.incoming / "IMG_0001.MOV", (OLD.timestamp(), OLD.timestamp()))
    return still, VIDEO


def _while_reading_the_video(
    monkeypatch: pytest.MonkeyPatch, then: object, *, wrong: bool = False
) -> None:
    """Call ``then()`` while the removal reads the item's video (its second
    file); with ``wrong``, the video then reads as other bytes."""

    def reading(path: str | Path | int) -> str:
        # the removal hashes a descriptor of the file it moved aside
        name = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else str(path)
        if ".MOV" in Path(name).name:
            then()  # type: ignore[operator]
            if wrong:
                return "0" * 64
        return sha256_file(path)

    monkeypatch.setattr(folder, "sha256_file", reading)


def _lands_at_the_still(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, *, seed: int, wrong: bool = False
) -> bytes:
    """A new photo, synced to the still's name while the video is read;
    returns its bytes."""
    new = make_jpeg(ws.root / "new.jpg", NOW, seed=seed).read_bytes()
    _while_reading_the_video(
        monkeypatch, lambda: (ws.incoming / "IMG_0001.JPG").write_bytes(new), wrong=wrong
    )
    return new


def test_a_new_photo_landing_at_a_name_being_removed_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    still, video = _live_photo(ws)
    new = _lands_at_the_still(ws, monkeypatch, seed=2)
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "remove-from-source incoming:IMG_0001.JPG" in run.out
    # the archived pair left; the new photo at the reused name did not
    assert files_under(ws.incoming) == {"IMG_0001.JPG": new}
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted([still, video])
    # and the next run archives the new photo like any other
    monkeypatch.undo()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert new in files_under(ws.target("nas")).values()


@pytest.mark.parametrize("hard_links", [True, False], ids=["links", "no-links (a FAT card)"])
def test_a_file_not_as_archived_sends_every_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    if not hard_links:

        def no_link(src: object, dst: object, **_: object) -> None:
            raise OSError(errno.EPERM, "no hard links on this filesystem")

        monkeypatch.setattr(os, "link", no_link)
    still, video = _live_photo(ws)
    _while_reading_the_video(monkeypatch, lambda: None, wrong=True)
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 1, run.out + run.err
    assert "IMG_0001.MOV changed since it was archived; not removing it" in run.out
    assert files_under(ws.incoming) == {"IMG_0001.JPG": still, "IMG_0001.MOV": video}


def test_a_file_sent_back_never_replaces_one_that_took_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    still, video = _live_photo(ws)
    new = _lands_at_the_still(ws, monkeypatch, seed=3, wrong=True)
    assert ws.run("apply", "--yes", now=NOW).code == 1
    held = files_under(ws.incoming)
    assert held.pop("IMG_0001.JPG") == new and held.pop("IMG_0001.MOV") == video
    # the archived still waits beside it, under a name every listing shows
    ((name, data),) = held.items()
    assert data == still and folder.original_name(name) == "IMG_0001.JPG"
    assert not name.startswith(".")


def test_a_run_killed_with_a_file_aside_is_put_back_by_the_next(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    still, video = _live_photo(ws)
    env = {**os.environ, "RECONCILE_TEST_KILL_AT": "aside:1"}
    killed = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (aside,) = files_under(ws.incoming).keys() - {"IMG_0001.MOV"}
    assert folder.original_name(aside) == "IMG_0001.JPG"

    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "put back 1 source file(s) it was removing" in run.out
    # put back, then removed as archived: nothing lost, nothing left aside
    assert files_under(ws.incoming) == {}
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted([still, video])


def test_names_aside_fit_a_folder_and_give_the_name_back() -> None:
    for name in ("IMG_0001.JPG", "é" * 127 + ".JPG", "x" * 255):
        aside = folder.aside_name(name)
        assert len(aside.encode()) <= 255
        back = folder.original_name(aside)
        assert back is not None and name.startswith(back) and back
    assert folder.original_name("IMG_0001.JPG") is None
    assert folder.original_name("a.reconcile-removing-notatoken12") is None
    assert folder.original_name(".reconcile-removing-0123456789ab") is None  # no name


def test_a_folder_swapped_for_a_link_to_a_target_is_never_followed(tmp_path: Path) -> None:
    """The photo's folder replaced, while the run is under way, by a link to
    the folder holding the NAS's copy (same relative path, same bytes): the
    removal must not reach through it and delete the NAS's copy. One copy
    is asked for, so the USB disk's copy alone lets the gate pass."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    photo = make_jpeg(ws.incoming / "2024/09/16/IMG_0001.JPG", OLD, seed=9).read_bytes()
    release = tmp_path / "release"
    env = {
        **os.environ,
        "RECONCILE_TEST_PAUSE_AT": "started:remove-from-source:1",
        "RECONCILE_TEST_PAUSE_FILE": str(release),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{release}.paused").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0]
            time.sleep(0.02)
        # archived, about to be removed: the swap
        (nas_copy,) = ws.target("nas").rglob("IMG_0001.JPG")
        assert nas_copy.relative_to(ws.target("nas")).as_posix() == "2024/09/16/IMG_0001.JPG"
        os.rename(ws.incoming / "2024/09", tmp_path / "moved-away")
        os.symlink(ws.target("nas") / "2024/09", ws.incoming / "2024/09")
        release.touch()
        out = run.communicate(timeout=120)[0]
    finally:
        if run.poll() is None:
            run.kill()
    assert nas_copy.read_bytes() == photo, out
    assert "Too many levels of symbolic links" in out or "Not a directory" in out, out
    assert (tmp_path / "moved-away/16/IMG_0001.JPG").read_bytes() == photo


def test_a_photo_still_being_written_is_not_removed(tmp_path: Path) -> None:
    """A copy under way (cp, scp, mv from a card to another disk) writes in
    place under the final name. Paused halfway, with its EXIF header (at
    the start) saying the photo is old, the half was archived, proven on
    two targets and removed: the writer then finished into a deleted file,
    and the whole photo was nowhere. Now a file another program has open is
    not removed; once written and closed, it is archived whole and removed."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    whole = make_jpeg(tmp_path / "card/IMG_1.JPG", OLD, seed=1, size=256).read_bytes()
    writer = os.open(ws.incoming / "IMG_1.JPG", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(writer, whole[: len(whole) // 2])  # ...and the copy stalls here
        first = ws.run("apply", "--yes", now=NOW)
        assert first.code == 0, first.out + first.err
        assert "is open in another program (still being written?)" in first.out, first.out
        assert (ws.incoming / "IMG_1.JPG").exists()
        os.write(writer, whole[len(whole) // 2 :])
    finally:
        os.close(writer)
    assert (ws.incoming / "IMG_1.JPG").read_bytes() == whole
    second = ws.run("apply", "--yes", now=NOW)
    assert second.code == 0, second.out + second.err
    assert files_under(ws.incoming) == {}
    for target in ("nas", "usb"):
        assert whole in files_under(ws.target(target)).values()


def test_where_no_lease_can_be_taken_a_file_written_minutes_ago_is_not_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the file's owner, or a network filesystem: no lease tells whether
    another program has it open, so its last write must be QUIET_S old."""
    real = fcntl.fcntl

    def no_leases(fd: int, cmd: int, arg: int = 0) -> object:
        if cmd == fcntl.F_SETLEASE:
            raise OSError(errno.EINVAL, "leases are not supported here")
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_leases)
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    now = time.time()
    os.utime(photo, (now, now))  # written just now (its capture date is old)
    first = ws.run("apply", "--yes", now=NOW)
    assert "was written less than 10 minutes ago (still being written?)" in first.out, first.out
    assert photo.exists()
    ahead = now + 120  # a share whose server's clock is two minutes ahead, writing it now
    os.utime(photo, (ahead, ahead))
    assert "still being written?" in ws.run("apply", "--yes", now=NOW).out
    assert photo.exists()
    quiet = now - folder.QUIET_S - 1
    os.utime(photo, (quiet, quiet))
    ws.run("apply", "--yes", now=NOW)
    assert not photo.exists()
