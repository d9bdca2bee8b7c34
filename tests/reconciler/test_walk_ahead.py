"""Walking ahead: on a large library a helper process walks the trees after
the first while the observer works. What it hands over must be exactly the
walk the observer would have made itself, whatever the tree holds; a helper
that fails or dies costs only its head start; and it never outlives the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.base import LocalTree
from providers.filesystem import TMP_PREFIX, scan_tree
from providers.icloud.emulator import Account
from providers.syncthing.folder import _is_syncthing_own
from reconciler import kept_plan, lifeline, tree_listing, walk_ahead
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB
from reconciler.walk_ahead import WalkAhead
from tests.helpers import (
    FOLDER_SOURCE,
    KEEP_ORIGINALS,
    Workspace,
    make_jpeg,
    make_workspace,
    write_raw_name,
)

OLD = datetime.now(UTC) - timedelta(days=800)


def _awkward_tree(root: Path) -> None:
    """Every kind of entry the walk treats apart."""
    (root / "2020/01").mkdir(parents=True)
    (root / "2020/01/IMG_1.JPG").write_bytes(b"one")
    (root / "2020/01/IMG_1.MOV").write_bytes(b"its live video")
    (root / "top level.png").write_bytes(b"two")
    (root / ".hidden-folder").mkdir()
    (root / ".hidden-folder/x.jpg").write_bytes(b"never walked")
    (root / f"{TMP_PREFIX}half-written").write_bytes(b"debris")
    (root / ".stfolder").mkdir()  # Syncthing's own
    (root / "2020/01/link.jpg").symlink_to(root / "top level.png")
    (root / "dangling.jpg").symlink_to(root / "nowhere")
    write_raw_name(root, b"Caf\xe9.JPG", b"latin-1 name")
    write_raw_name(root, b"\xc9t\xe9/IMG_2.JPG", b"in a latin-1 folder")
    old = root / "1969.jpg"  # before the epoch: a negative mtime
    old.write_bytes(b"scanned")
    os.utime(old, ns=(-1_500_000_000, -1_500_000_000))
    (root / "empty folder").mkdir()


def _here(root: Path, skip: Any = None) -> tuple[list[tuple[Any, ...]], list[str], list[str]]:
    odd: list[str] = []
    links: list[str] = []
    entries = [tuple(e) for e in scan_tree(root, skip, odd, links)]
    return entries, odd, links


def test_the_helper_hands_over_exactly_the_walk_made_here(tmp_path: Path) -> None:
    a, b, empty = tmp_path / "a", tmp_path / "b/", tmp_path / "empty"
    for root in (a, b):
        _awkward_tree(root)
    empty.mkdir()
    ahead = WalkAhead([LocalTree(a), LocalTree(b, skip=_is_syncthing_own), LocalTree(empty)])
    try:
        for root, skip in ((a, None), (b, _is_syncthing_own), (empty, None)):
            _walked_there(ahead, root)  # not taken back as not begun yet: walked there
            got = ahead.take(root, skip)
            assert got is not None, f"{root} was not walked ahead"
            entries, odd, links, digest = got
            assert ([tuple(e) for e in entries], odd, links) == _here(root, skip)
            # the digest taken there is the one taken here of the same walk
            assert digest == tree_listing.walk_digest(list(scan_tree(root, skip)))
        assert any(e[3] < 0 for e in _here(a)[0])  # the negative mtime went through
        assert ahead.take(a, None) is None  # handed over once; a second ask walks here
    finally:
        ahead.close()


def test_a_tree_asked_with_other_rules_or_never_announced_is_walked_here(
    tmp_path: Path,
) -> None:
    _awkward_tree(tmp_path / "a")
    ahead = WalkAhead([LocalTree(tmp_path / "a", skip=_is_syncthing_own)])
    try:
        assert ahead.take(tmp_path / "other", None) is None
        assert ahead.take(tmp_path / "a", None) is None  # other skip rules
    finally:
        ahead.close()


def _walked_there(ahead: WalkAhead, root: Path) -> None:
    """Wait until the helper has finished walking ``root`` (not taken yet)."""
    index, _ = ahead._pending[os.fspath(root)]
    ahead._hear(until=index)
    assert index in ahead._done


def test_a_walk_that_failed_there_is_made_again_here_with_the_errors_of_now(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "unmounted"
    ahead = WalkAhead([LocalTree(missing), LocalTree(tmp_path / "late")])
    try:
        _walked_there(ahead, missing)
        assert ahead.take(missing, None) is None  # walked here, failing here
        with pytest.raises(FileNotFoundError):
            list(scan_tree(missing))
        # Not there when the helper looked, there now (mounted since):
        _walked_there(ahead, tmp_path / "late")
        _awkward_tree(tmp_path / "late")
        assert ahead.take(tmp_path / "late", None) is None
    finally:
        ahead.close()


def test_another_folder_at_the_root_since_the_walk_is_walked_again(tmp_path: Path) -> None:
    """The helper walked an empty mount point; the disk is mounted before the
    store is listed: the helper's walk is of another folder, not this one."""
    mount = tmp_path / "nas"
    mount.mkdir()
    ahead = WalkAhead([LocalTree(mount)])
    try:
        _walked_there(ahead, mount)
        mount.rename(tmp_path / "empty mount point")
        _awkward_tree(mount)  # the disk, now at the same path
        assert ahead.take(mount, None) is None
    finally:
        ahead.close()
    unchanged = tmp_path / "unchanged"
    _awkward_tree(unchanged)
    ahead = WalkAhead([LocalTree(unchanged)])
    try:
        _walked_there(ahead, unchanged)
        (unchanged / "added since.jpg").write_bytes(b"x")  # same folder: a snapshot
        got = ahead.take(unchanged, None)
        assert got is not None and "added since.jpg" not in [e.rel for e in got[0]]
    finally:
        ahead.close()


def test_a_helper_killed_before_its_walk_costs_only_its_head_start(tmp_path: Path) -> None:
    _awkward_tree(tmp_path / "a")
    ahead = WalkAhead([LocalTree(tmp_path / "a")])
    try:
        pids = _helper_pids(ahead)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert ahead.take(tmp_path / "a", None) is None  # the observer walks it itself
    finally:
        ahead.close()


def _slowly(name: str) -> bool:
    """A walk that takes far longer than any test (a hung network mount)."""
    time.sleep(60)
    return False


def test_closing_waits_for_no_walk_under_way(tmp_path: Path) -> None:
    """A tree never asked for (its store was unavailable) or a run stopped
    by a signal: the helper is killed, not waited for."""
    _awkward_tree(tmp_path / "a")
    ahead = WalkAhead([LocalTree(tmp_path / "a", skip=_slowly)])
    pids = _helper_pids(ahead)
    time.sleep(0.5)  # well into its first name
    started = time.monotonic()
    ahead.close()
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while any(lifeline.alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(lifeline.alive(pid) for pid in pids)


def _helper_pids(ahead: WalkAhead) -> list[int]:
    return [ahead._proc.pid] if ahead._proc is not None else []


def _settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each WalkAhead returns once the helper has begun its first tree (it
    starts as a process of its own): what these tests check is the walk
    handed over, not the race to the first one."""
    start = WalkAhead.__init__

    def init(self: WalkAhead, trees: Any, fences: Any = None) -> None:
        start(self, trees, fences)
        deadline = time.monotonic() + 10
        while self._proc is not None and 0 not in self._begun and not self._ended:
            assert time.monotonic() < deadline, "the helper never began"
            self._hear()
            time.sleep(0.005)

    monkeypatch.setattr(WalkAhead, "__init__", init)


def test_a_large_library_plans_the_same_with_the_helper_and_it_does_not_outlive_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second folder source (a camera's card): its tree is the helper's,
    # names set aside (links, undecodable ones) and all.
    card = '[sources.card]\nkind = "folder"\npath = "card"\n'
    ws = make_workspace(tmp_path, sources=FOLDER_SOURCE + card, extra=KEEP_ORIGINALS)
    for i in range(6):
        make_jpeg(ws.incoming / f"2020/IMG_{i}.JPG", OLD, seed=i)
    _awkward_tree(ws.incoming / "odd")
    _awkward_tree(tmp_path / "card")
    # Windows' cache (no item) and names whose walk order is not their sorted
    # order: the card's listing filters and sorts the walk before hashing.
    (tmp_path / "card/Thumbs.db").write_bytes(b"cache")
    for i, name in enumerate(("b/IMG_9.JPG", "a/IMG_8.JPG", "c/IMG_7.JPG", "IMG_6.JPG")):
        make_jpeg(tmp_path / "card" / name, OLD, seed=60 + i)
    assert ws.run("apply", "--yes").code == 1  # the undecodable names wait, named
    # Then the world moves: a new photo, a copy lost on one target, one
    # altered on the other, debris and a link on a target.
    make_jpeg(ws.incoming / "2021/IMG_new.JPG", OLD, seed=40)
    nas = sorted(p for p in (tmp_path / "nas").rglob("*.JPG"))
    usb = sorted(p for p in (tmp_path / "usb").rglob("*.JPG"))
    nas[0].unlink()
    usb[1].write_bytes(usb[1].read_bytes() + b"rot")
    (tmp_path / "usb" / f"{TMP_PREFIX}debris").write_bytes(b"x")
    (tmp_path / "usb" / "link.jpg").symlink_to(usb[2])

    walked: dict[str, str] = {}
    helpers: list[int] = []
    take, close = WalkAhead.take, WalkAhead.close

    def spy_take(self: WalkAhead, root: Path, skip: Any) -> Any:
        got = take(self, root, skip)
        walked[Path(root).name] = "helper" if got is not None else "here"
        return got

    def spy_close(self: WalkAhead) -> None:
        helpers.extend(_helper_pids(self))
        close(self)

    monkeypatch.setattr(WalkAhead, "take", spy_take)
    monkeypatch.setattr(WalkAhead, "close", spy_close)
    _settled(monkeypatch)
    runs = {}
    # The observer's own walks ahead (as ``apply`` makes them); then every
    # tree walked before observing, as ``plan`` does (``kept_plan.check``).
    check = kept_plan.check
    monkeypatch.setattr(kept_plan, "check", lambda *a, **k: None)
    for mode, least in (
        ("ahead", 0),
        ("in turn", 1 << 40),
        ("ahead again", 0),
        ("all walked first", 0),
    ):
        if mode == "all walked first":
            order = list(walked)
            monkeypatch.setattr(kept_plan, "check", check)
        monkeypatch.setattr(walk_ahead, "MIN_STATE_BYTES", least)
        text = ws.run("plan")
        listed = json.loads(ws.run("plan", "--json").out)
        runs[mode] = (text.code, text.out, listed["actions"], listed["notes"])
    assert runs["ahead"] == runs["in turn"] == runs["ahead again"] == runs["all walked first"]
    code, out, actions, notes = runs["ahead"]
    assert code == 1 and actions and notes, out  # 1: the undecodable names
    assert "IMG_new.JPG" in out and "incoming:odd/\\xc9t\\xe9/IMG_2.JPG" in out
    assert "card:\\xc9t\\xe9/IMG_2.JPG" in out and "card:dangling.jpg" in out
    assert walked["card"] == "helper"  # the first tree after the first, every time
    # the library before the targets: its work after the walk is the longest
    assert order == ["incoming", "card", "library", "nas", "usb"]
    assert helpers and not any(lifeline.alive(pid) for pid in helpers)


def test_the_helper_dies_with_a_killed_run(tmp_path: Path) -> None:
    """SIGKILL (cron's timeout, the OOM killer) cannot be caught: the helper,
    busy walking a tree, must still not outlive the run."""
    _awkward_tree(tmp_path / "a")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from providers.base import LocalTree\n"
        "from reconciler.walk_ahead import WalkAhead\n"
        "from tests.reconciler.test_walk_ahead import _helper_pids, _slowly\n"
        "if __name__ == '__main__':\n"
        f"    ahead = WalkAhead([LocalTree(Path({str(tmp_path / 'a')!r}), skip=_slowly)])\n"
        "    print(*_helper_pids(ahead), flush=True)\n"
        "    time.sleep(120)\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        pids = [int(p) for p in run.stdout.readline().split()]
        assert pids and all(lifeline.alive(pid) for pid in pids)
        time.sleep(0.3)  # into its walk
    finally:
        run.kill()
        run.wait()  # not for its output: a surviving helper would hold the pipe open
        if run.stdout is not None:
            run.stdout.close()
    deadline = time.monotonic() + 10
    while any(lifeline.alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(lifeline.alive(pid) for pid in pids)


def test_no_helper_to_be_had_means_every_tree_is_walked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No memory files (memfd), a process limit reached: the run goes on,
    walking in turn, as on a small library."""

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(walk_ahead, "_spawn", refused)
    _awkward_tree(tmp_path / "a")
    ahead = WalkAhead([LocalTree(tmp_path / "a")])
    assert ahead.take(tmp_path / "a", None) is None
    ahead.close()

    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    monkeypatch.setattr(walk_ahead, "MIN_STATE_BYTES", 0)
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0


@pytest.fixture
def account() -> Account:
    return Account()


def test_behind_a_remote_source_the_first_tree_is_walked_ahead_too(
    ws: Workspace, account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """iCloud is listed first, over the network: meanwhile the helper walks
    every local tree, the first target's too, and the plan is the same."""
    for i in range(3):
        photo = make_jpeg(tmp_path / f"{i}.jpg", OLD, seed=i).read_bytes()
        account.add_asset(photo, f"IMG_{i}.JPG", asset_date=OLD)
    assert ws.run("apply", "--yes").code == 0
    walked: dict[str, str] = {}
    take = WalkAhead.take

    def spy_take(self: WalkAhead, root: Path, skip: Any) -> Any:
        got = take(self, root, skip)
        walked[Path(root).name] = "helper" if got is not None else "here"
        return got

    monkeypatch.setattr(WalkAhead, "take", spy_take)
    _settled(monkeypatch)
    outs = []
    for least in (0, 1 << 40):
        monkeypatch.setattr(walk_ahead, "MIN_STATE_BYTES", least)
        plan = ws.run("plan", "--json")
        outs.append(json.loads(plan.out)["actions"])
    assert outs[0] == outs[1]
    assert walked["nas"] == "helper" and set(walked) == {"nas", "usb", "library"}


def test_a_file_dated_past_2262_is_walked_here_and_keeps_its_tree_from_a_listing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An mtime no 64-bit column holds (year 2300, which ext4 stores): the
    helper cannot send that tree, the observer walks it itself, the trees
    after it still come from the helper, and no listing is kept for it (its
    walk has no digest), so every run matches it file by file."""
    far, after = tmp_path / "far", tmp_path / "after"
    for root in (far, after):
        (root / "d").mkdir(parents=True)
        (root / "d" / "a.jpg").write_bytes(b"a")
    when = 10_500_000_000 * 10**9  # 2302
    os.utime(far / "d" / "a.jpg", ns=(when, when))
    ahead = WalkAhead([LocalTree(far), LocalTree(after)])
    db = StateDB(tmp_path / "state.db")
    try:
        _walked_there(ahead, far)
        with caplog.at_level(logging.INFO, logger="reconcile"):
            assert ahead.take(far, None) is None  # walked here instead
        assert "could not walk" in caplog.text and "OverflowError" in caplog.text
        _walked_there(ahead, after)
        assert ahead.take(after, None) is not None  # the helper lived on
        entries = list(scan_tree(far))
        assert entries[0].mtime_ns == when
        for _ in range(2):
            hasher = CachedHasher(db, workers=1)
            (got,) = hasher.hash_entries(entries, tree=os.path.join(far, ""))
            assert got.sha256 == hashlib.sha256(b"a").hexdigest()
            assert hasher.listed_trees == 0
        assert db.tree_listing(os.path.join(far, "")) is None
    finally:
        db.close()
        ahead.close()


def test_the_helper_never_runs_the_programs_main_module_again(tmp_path: Path) -> None:
    """A script that calls the tool without a main guard: its top-level code
    runs once, in the run. (A helper started by multiprocessing runs the
    main module again in the child: the whole application, or whatever such
    a script does, e.g. write into the very trees being walked.)"""
    _awkward_tree(tmp_path / "a")
    ran = tmp_path / "ran"
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from providers.base import LocalTree\n"
        "from reconciler.walk_ahead import WalkAhead\n"
        f"with open({str(ran)!r}, 'a') as f:\n"
        "    f.write('ran\\n')\n"
        f"ahead = WalkAhead([LocalTree(Path({str(tmp_path / 'a')!r}))])\n"
        "ahead._hear(until=0)\n"
        f"got = ahead.take(Path({str(tmp_path / 'a')!r}), None)\n"
        "ahead.close()\n"
        "print('walked there' if got is not None else 'walked here')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=Path(__file__).parents[2],
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "walked there\n"
    assert ran.read_text() == "ran\n"


def test_a_tree_not_begun_there_is_walked_here_and_never_there(tmp_path: Path) -> None:
    """Asked for before the helper began it (an empty import folder, done at
    once): walked here, waiting for nothing, and the helper passes it over
    instead of walking it for nothing; the trees after it are still its."""
    for name in ("a", "b", "c"):
        _awkward_tree(tmp_path / name)
    ahead = WalkAhead([LocalTree(tmp_path / name) for name in ("a", "b", "c")])
    try:
        assert ahead.take(tmp_path / "b", None) is None  # the helper is still starting
        _walked_there(ahead, tmp_path / "c")
        assert 1 not in ahead._begun
        got = ahead.take(tmp_path / "c", None)
        assert got is not None and [tuple(e) for e in got[0]] == _here(tmp_path / "c")[0]
        assert ahead.take(tmp_path / "a", None) is not None
    finally:
        ahead.close()


def test_a_process_holding_many_files_open_still_walks_ahead(tmp_path: Path) -> None:
    """With a thousand files open (a long test session, a program that
    embeds this one), the helper's pipe is numbered past 1023, which
    ``select`` refuses: every take raised ValueError."""
    _awkward_tree(tmp_path / "a")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        ahead = WalkAhead([LocalTree(tmp_path / "a")])
        try:
            assert ahead._proc is not None and ahead._proc.stdout is not None
            assert ahead._proc.stdout.fileno() >= 1024
            _walked_there(ahead, tmp_path / "a")
            got = ahead.take(tmp_path / "a", None)
            assert got is not None
            assert [tuple(e) for e in got[0]] == _here(tmp_path / "a")[0]
        finally:
            ahead.close()
    finally:
        for fd in held:
            os.close(fd)
