"""A path longer than the system opens (PATH_MAX, 4096 bytes: a deeply nested
export, each name within the 255 bytes a folder allows) is that folder's
problem, never the whole tree's: the walk leaves out what it cannot reach,
names each such folder once, shortened, and the rest of the source is
archived and off-loaded, the rest of a target's copies count. What is left
out is never an item nor a copy, so it is neither removed nor taken as gone.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from providers.base import LocalTree
from providers.filesystem import scan_tree
from reconciler.walk_ahead import WalkAhead
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace, media_under

OLD = datetime.now(UTC) - timedelta(days=800)
PATH_MAX = 4096
_DIR = os.O_RDONLY | os.O_DIRECTORY


def _folders(root: Path, length: int, letter: str) -> str:
    """Folders below ``root`` (names of ``letter``, at most 200 bytes) down
    to one whose path, with its "/", is ``length`` bytes, made one folder at
    a time (no path that long can be given whole); its relative path."""
    fd = os.open(root, _DIR)
    remaining, rel = length - len(os.fsencode(root)) - 1, ""
    try:
        while remaining:
            take = 201 if remaining > 202 else remaining  # never a last name of 0 bytes
            name = letter * (take - 1)
            os.mkdir(name, dir_fd=fd)
            fd, parent = os.open(name, _DIR, dir_fd=fd), fd
            os.close(parent)
            remaining, rel = remaining - take, f"{rel}{name}/"
    finally:
        os.close(fd)
    return rel


def _at(root: Path, rel: str) -> int:
    """A descriptor of the folder ``rel`` below ``root``, reached one folder at a time."""
    fd = os.open(root, _DIR)
    for name in rel.rstrip("/").split("/"):
        fd, parent = os.open(name, _DIR, dir_fd=fd), fd
        os.close(parent)
    return fd


def _write(root: Path, rel: str, name: str, data: bytes) -> None:
    fd = _at(root, rel)
    try:
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=fd)
        os.write(f, data)
        os.close(f)
    finally:
        os.close(fd)


def _read(root: Path, rel: str, name: str) -> bytes:
    fd = _at(root, rel)
    try:
        f = os.open(name, os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(f, 1 << 20)
        finally:
            os.close(f)
    finally:
        os.close(fd)


def _out_of_reach(root: Path, rel: str) -> str:
    """The first folder on ``rel``'s way whose path is too long to open."""
    names = rel.rstrip("/").split("/")
    for i in range(len(names)):
        shallow = "/".join(names[: i + 1]) + "/"
        if len(os.fsencode(root)) + 1 + len(shallow) >= PATH_MAX:
            return shallow
    raise AssertionError(f"{rel} is in reach")


def _awkward(root: Path, photo: bytes = b"near the edge") -> tuple[str, str, str]:
    """A tree with one folder whose path is 30 bytes short of the limit
    (``edge``), holding a file in reach (S.JPG), two out of reach, and a
    sub-folder that cannot be opened; and another chain of folders far past
    the limit (``far``) holding DEEP.JPG. Returns edge, its sub-folder, far."""
    edge = _folders(root, PATH_MAX - 30, "e")
    _write(root, edge, "S.JPG", photo)
    _write(root, edge, "L" * 60 + ".JPG", b"out of reach")
    _write(root, edge, "M" * 60 + ".JPG", b"out of reach too")
    fd = _at(root, edge)
    try:
        os.mkdir("x" * 50, dir_fd=fd)
    finally:
        os.close(fd)
    _write(root, edge + "x" * 50, "IN.JPG", b"in a folder out of reach")
    far = _folders(root, 21 * 201 + len(os.fsencode(root)) + 1, "d")
    _write(root, far, "DEEP.JPG", b"far out of reach")
    return edge, edge + "x" * 50 + "/", far


def test_the_walk_names_each_folder_out_of_reach_once_and_lists_the_rest(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "near.jpg").write_bytes(b"near")
    edge, sub, far = _awkward(root)
    odd: list[str] = []
    entries = list(scan_tree(root, None, odd))
    assert sorted(e.rel for e in entries) == sorted([f"{edge}S.JPG", "near.jpg"])
    assert sorted(odd) == sorted([edge, sub, _out_of_reach(root, far)])
    # each listed file can be read by its path, as hashing and copying do
    for e in entries:
        with open(e.path, "rb"):
            pass
    # The helper process walks the same tree the same way, failing nowhere.
    ahead = WalkAhead([LocalTree(root)])
    try:
        ahead._hear(until=0)  # walked there (one not begun yet is walked here)
        got = ahead.take(root, None)
        assert got is not None
        assert [tuple(e) for e in got[0]] == [tuple(e) for e in scan_tree(root)]
        assert got[1] == odd
    finally:
        ahead.close()


def test_a_source_archives_all_but_what_is_out_of_reach_and_names_that(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    near_edge = make_jpeg(tmp_path / "s.jpg", OLD, seed=2).read_bytes()
    edge, sub, far = _awkward(ws.incoming, near_edge)

    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.err  # as for any source file that cannot be read
    assert "file(s) could not be read" in applied.err
    said = [line for line in applied.out.splitlines() if line.startswith("  x unreadable")]
    assert len(said) == 3, applied.out  # each folder once: edge, its sub-folder, far
    assert all(len(line) < 500 for line in said)  # each path shortened
    assert any(
        line.startswith("  x unreadable incoming:dddddddddd…dddddddddd/…1")
        and "folders…/dddddddddd…dddddddddd/: cannot read " in line
        and "paths in it pass the system's limit (4096 bytes)" in line
        for line in said
    ), said
    # What could be reached was archived twice and off-loaded, the edge's too.
    assert sorted(Path(p).name for p in media_under(ws.target("usb"))) == ["IMG_1.JPG", "S.JPG"]
    assert sorted(Path(p).name for p in media_under(ws.target("nas"))) == ["IMG_1.JPG", "S.JPG"]
    assert not (ws.incoming / "IMG_1.JPG").exists()
    try:
        _read(ws.incoming, edge, "S.JPG")
        raise AssertionError("S.JPG was not off-loaded")
    except FileNotFoundError:
        pass
    # What could not be reached stays, untouched.
    assert _read(ws.incoming, edge, "L" * 60 + ".JPG") == b"out of reach"
    assert _read(ws.incoming, sub, "IN.JPG") == b"in a folder out of reach"
    assert _read(ws.incoming, far, "DEEP.JPG") == b"far out of reach"

    again = ws.run("plan", "--detailed-exitcode")
    assert again.code == 1, again.err
    assert "No changes" in again.out and again.out.count("x unreadable") == 3
    assert ws.run("apply", "--yes").code == 1
    assert _read(ws.incoming, far, "DEEP.JPG") == b"far out of reach"


def test_a_target_with_a_tree_out_of_reach_still_counts_its_other_copies(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    edge, sub, far = _awkward(ws.target("nas"))  # another tool's files

    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.out + applied.err
    assert "unavailable" not in applied.out
    assert not (ws.incoming / "IMG_1.JPG").exists()  # nas's copy counted, with usb's
    assert [Path(p).name for p in files_under(ws.target("usb"))] == ["IMG_1.JPG"]
    assert _read(ws.target("nas"), far, "DEEP.JPG") == b"far out of reach"
    assert _read(ws.target("nas"), edge, "S.JPG") == b"near the edge"
    assert _read(ws.target("nas"), sub, "IN.JPG") == b"in a folder out of reach"
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_photos_moved_out_of_reach_are_not_taken_for_gone(tmp_path: Path) -> None:
    """Archived and kept (too recent), then a folder above them renamed
    longer: unlisted now, they are reported, and nothing anywhere is
    removed for it."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    now = datetime.now(UTC)
    make_jpeg(ws.incoming / "IMG_1.JPG", now, seed=1)
    edge = _folders(ws.incoming, PATH_MAX - 30, "e")
    photo = make_jpeg(tmp_path / "s.jpg", now, seed=2).read_bytes()
    _write(ws.incoming, edge, "S.JPG", photo)
    assert ws.run("apply", "--yes").code == 0
    kept = {store: media_under(ws.root / store) for store in ("library", "nas", "usb")}
    assert all(len(files) == 2 for files in kept.values()), kept

    top = edge.split("/")[0]
    os.rename(ws.incoming / top, ws.incoming / (top + "e" * 40))
    moved = edge.replace(top, top + "e" * 40, 1)
    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.err
    assert applied.out.count("x unreadable") == 1
    assert "blocked" not in applied.out and "remove" not in applied.out
    assert {store: media_under(ws.root / store) for store in kept} == kept
    assert _read(ws.incoming, moved, "S.JPG") == photo
    assert (ws.incoming / "IMG_1.JPG").exists()
