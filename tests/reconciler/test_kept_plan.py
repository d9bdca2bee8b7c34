"""A converged plan, kept (``reconciler.kept_plan``): a no-op ``plan`` is
answered from the last converged plan only while nothing it was made from
changed. Each test changes one thing the plan depends on, and checks that
the next plan is made afresh and says what a plan made with no kept plan
says; the first checks that an unchanged library is answered without
observing at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.filesystem import MARKER
from reconciler import kept_plan, walk_ahead
from reconciler.commands import common
from tests.helpers import KEEP_ORIGINALS, Run, Workspace, make_jpeg, make_workspace

OLD = datetime.now(UTC) - timedelta(days=800)

#: Two tiers: originals until 900 days of age, then quality 60.
TIERS = """
[[policy.tiers]]
name = "young"
max_age_days = 900
keep = "original"
[[policy.tiers]]
name = "old"
jpeg_quality = 60
"""


class Observed:
    """Counts the observations made (a plan given again makes none)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = common.observe

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(common, "observe", counting)

    def since(self, before: int) -> int:
        return self.count - before


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> Observed:
    """Plans kept for a library of any size, and for files changed just now
    (the tests' files are seconds old; ``RACY_S`` has its own test)."""
    monkeypatch.setattr(walk_ahead, "MIN_STATE_BYTES", 0)
    monkeypatch.setattr(kept_plan, "RACY_S", -3600.0)
    return Observed(monkeypatch)


def _library(tmp_path: Path, extra: str = KEEP_ORIGINALS, n: int = 3) -> Workspace:
    ws = make_workspace(tmp_path / "ws", removal=False, extra=extra)
    for i in range(n):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("apply", "--yes").code == 0
    # converged, and nothing kept yet but a mark: the next plan walks first
    assert ws.run("plan").code == 0
    return ws


def _fresh(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *args: str, **kw: Any) -> Run:
    """The plan made with no kept plan in reach (the library counted small)."""
    with monkeypatch.context() as m:
        m.setattr(walk_ahead, "MIN_STATE_BYTES", 1 << 60)
        return ws.run("plan", *args, **kw)


def _same(a: Run, b: Run) -> None:
    assert (a.code, a.out, a.err) == (b.code, b.out, b.err)


def _json(run: Run) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(run.out)
    got.pop("created_at")
    return got


def test_an_unchanged_library_is_answered_without_observing(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _library(tmp_path)
    fresh = _json(_fresh(ws, monkeypatch, "--json"))
    first = ws.run("plan", "--detailed-exitcode")  # made, and kept
    assert first.code == 0 and "No changes" in first.out
    before = kept.count
    again = ws.run("plan", "--detailed-exitcode")
    assert kept.since(before) == 0, "the kept plan was not given again"
    _same(again, first)
    # --json and --out: the same plan, its basis that of the world it holds,
    # so a saved plan applies
    given = ws.run("plan", "--json")
    assert kept.since(before) == 0
    assert _json(given) == fresh
    assert json.loads(given.out)["basis"]
    out = tmp_path / "saved.json"
    assert ws.run("plan", "--out", str(out)).code == 0
    assert kept.since(before) == 0
    applied = ws.run("apply", str(out), "--yes")
    assert applied.code == 0, applied.err


def _rewrite_in_place(path: Path) -> None:
    """New bytes, the same size and mtime: only the ctime tells."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _one(root: Path, pattern: str = "*.JPG") -> Path:
    return sorted(root.rglob(pattern))[0]


def _db(ws: Workspace) -> sqlite3.Connection:
    return sqlite3.connect(ws.root / "state" / "state.db")


CHANGES: dict[str, Callable[[Workspace], None]] = {
    "a new photo to import": lambda ws: make_jpeg(ws.incoming / "IMG_new.JPG", OLD, seed=9),
    "a library file rewritten in place": lambda ws: _rewrite_in_place(_one(ws.library)),
    "a target's copy rewritten in place": lambda ws: _rewrite_in_place(_one(ws.target("nas"))),
    "a target's copy deleted": lambda ws: _one(ws.target("usb")).unlink(),
    "a library file renamed": lambda ws: _one(ws.library).rename(
        _one(ws.library).with_name("moved.JPG")
    ),
    "a target's marker gone": lambda ws: (ws.target("nas") / MARKER).unlink(),
    "a target's marker rewritten": lambda ws: (ws.target("usb") / MARKER).write_text(
        '{"id": "nas"}'
    ),
    "a folder the walk skips holds new debris": lambda ws: (
        ws.library / ".reconcile-tmp-x"
    ).write_bytes(b"half"),
    "the configuration": lambda ws: ws.config.write_text(
        ws.config.read_text().replace(KEEP_ORIGINALS, TIERS.replace("900", "30"))
    ),
    "a row of the state database": lambda ws: (
        _db(ws)
        .execute("insert into settled values ('x' || hex(randomblob(8)), 'old', 'not worth it')")
        .connection.commit()
    ),
    "a file gone from the state's library table": lambda ws: (
        _db(ws)
        .execute("delete from library where path = (select min(path) from library)")
        .connection.commit()
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_plans_afresh(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    ws = _library(tmp_path)
    assert ws.run("plan").code == 0  # kept
    before = kept.count
    assert ws.run("plan").code == 0
    assert kept.since(before) == 0
    CHANGES[change](ws)
    after = ws.run("plan", "--json")
    assert kept.since(before) == 1, f"{change}: the kept plan was given again"
    assert _json(after) == _json(_fresh(ws, monkeypatch, "--json"))


def test_a_plan_with_work_to_do_is_not_kept(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _library(tmp_path)
    (_one(ws.target("usb"))).unlink()
    before = kept.count
    runs = [ws.run("plan", "--detailed-exitcode") for _ in range(3)]
    assert kept.since(before) == 3  # every plan observed
    assert runs[0].code == runs[1].code == 2
    _same(runs[0], runs[1])


def test_the_clock_past_a_tier_boundary_plans_afresh(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The items are 895 days old; the tier turns at 900: a plan "as of"
    6 days later must encode them, one 4 days later need not."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=TIERS)
    now = datetime.now(UTC)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", now - timedelta(days=895), seed=i)
    assert ws.run("apply", "--yes", now=now).code == 0
    assert ws.run("plan", now=now).code == 0  # the mark
    assert ws.run("plan", "--detailed-exitcode", now=now).code == 0
    before = kept.count
    early = ws.run("plan", "--detailed-exitcode", now=now + timedelta(days=4))
    assert early.code == 0 and kept.since(before) == 0
    late = ws.run("plan", "--json", now=now + timedelta(days=6))
    assert kept.since(before) == 1
    assert {a["type"] for a in json.loads(late.out)["actions"]} == {"encode"}
    assert _json(late) == _json(_fresh(ws, monkeypatch, "--json", now=now + timedelta(days=6)))


def test_a_clock_set_back_plans_afresh(tmp_path: Path, kept: Observed) -> None:
    ws = _library(tmp_path)
    now = datetime.now(UTC)
    assert ws.run("plan", now=now).code == 0
    before = kept.count
    assert ws.run("plan", now=now - timedelta(minutes=5)).code == 0
    assert kept.since(before) == 1


def test_a_file_due_to_be_read_again_plans_afresh(tmp_path: Path, kept: Observed) -> None:
    """``guards.reverify_after_days``: bit rot keeps size and times, so a
    file due is read, and a kept plan must not stand in for that."""
    ws = _library(tmp_path, extra=KEEP_ORIGINALS + "[guards]\nreverify_after_days = 3\n")
    now = datetime.now(UTC)
    assert ws.run("plan", now=now).code == 0
    before = kept.count
    assert ws.run("plan", now=now + timedelta(days=2)).code == 0
    assert kept.since(before) == 0
    assert ws.run("plan", now=now + timedelta(days=3, hours=1)).code == 0
    assert kept.since(before) == 1


def test_never_longer_than_a_week(tmp_path: Path, kept: Observed) -> None:
    ws = _library(tmp_path)
    now = datetime.now(UTC)
    assert ws.run("plan", now=now).code == 0
    before = kept.count
    assert ws.run("plan", now=now + timedelta(days=6)).code == 0
    assert kept.since(before) == 0
    assert ws.run("plan", now=now + timedelta(days=7, seconds=1)).code == 0
    assert kept.since(before) == 1


def test_a_file_changed_while_the_plan_was_made_is_seen_by_the_next(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changed after the walks, before the observer read it: the plan kept
    may have read either version, so the next must not take it."""
    ws = _library(tmp_path)
    real = common.observe
    victim = _one(ws.target("nas"))

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        _rewrite_in_place(victim)
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(common, "observe", meanwhile)
        assert ws.run("plan").code == 0
    before = kept.count
    after = ws.run("plan", "--json")
    assert kept.since(before) == 1
    assert _json(after) == _json(_fresh(ws, monkeypatch, "--json"))


def test_a_state_database_written_while_the_plan_was_made_keeps_nothing(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _library(tmp_path)
    real = common.observe

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        with _db(ws) as other:  # another run, say
            other.execute("insert into settled values ('y', 'old', 'not worth it')")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(common, "observe", meanwhile)
        assert ws.run("plan").code == 0
    before = kept.count
    assert ws.run("plan").code == 0
    assert kept.since(before) == 1


def test_files_changed_just_before_the_walk_keep_nothing(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within ``RACY_S`` of the walk a file could change again unseen (a
    coarse clock's tick, FAT's 2-second mtimes): no plan is kept then."""
    monkeypatch.setattr(kept_plan, "RACY_S", 3600.0)  # every test file is that young
    ws = _library(tmp_path)
    assert ws.run("plan").code == 0
    before = kept.count
    assert ws.run("plan").code == 0
    assert kept.since(before) == 1


def test_another_version_of_the_program_plans_afresh(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _library(tmp_path)
    assert ws.run("plan").code == 0
    before = kept.count
    monkeypatch.setattr(kept_plan, "_code", lambda: b"an upgrade")
    assert ws.run("plan").code == 0
    assert kept.since(before) == 1


def test_apply_always_observes(tmp_path: Path, kept: Observed) -> None:
    ws = _library(tmp_path)
    assert ws.run("plan").code == 0
    _one(ws.target("usb")).unlink()
    # the plan kept is not what apply goes by: the copy is made again
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0
    assert len(list(ws.target("usb").rglob("*.JPG"))) == 3


def test_accept_shrink_is_never_answered_from_a_kept_plan(tmp_path: Path, kept: Observed) -> None:
    ws = _library(tmp_path)
    assert ws.run("plan").code == 0
    before = kept.count
    assert ws.run("plan", "--accept-shrink").code == 0
    assert kept.since(before) == 1


def test_only_a_run_after_a_converged_one_walks_first(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walking every tree before observing costs the observer its walks
    ahead: it is done only where a kept plan may hold (the last plan was
    converged, and the state database has not changed since)."""
    walked_first: list[int] = []
    walk_all = kept_plan._walk_all

    def counting(*args: Any) -> Any:
        walked_first.append(1)
        return walk_all(*args)

    monkeypatch.setattr(kept_plan, "_walk_all", counting)
    ws = _library(tmp_path)  # apply, then a converged plan: a mark
    assert walked_first == []
    assert ws.run("plan").code == 0  # walks first, keeps the plan
    assert ws.run("plan").code == 0  # walks first, answered
    assert len(walked_first) == 2
    _one(ws.target("usb")).unlink()
    assert ws.run("plan").code == 0  # walks first, for nothing: work to do
    # (and the copy's row in the hash cache forgotten): this one does not
    assert ws.run("plan").code == 0
    assert len(walked_first) == 3
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan").code == 0  # the state changed: no walk first, a mark
    assert len(walked_first) == 3
    assert ws.run("plan").code == 0
    assert len(walked_first) == 4


def test_every_table_a_plan_reads_moves_the_world_count(tmp_path: Path) -> None:
    """A table added later is counted too: only ``NOT_WORLD`` is not."""
    from reconciler.schema import NOT_WORLD
    from reconciler.state import StateDB

    db = StateDB(tmp_path / "state.db")
    sql = "select name from sqlite_master where type = ?"
    tables = {r[0] for r in db.conn.execute(sql, ["table"])} - NOT_WORLD
    triggers = {r[0] for r in db.conn.execute(sql, ["trigger"])}
    for table in sorted(tables):
        for op in ("insert", "update", "delete"):
            assert {f"world_{table}_{op}", f"counted_{table}_{op}"} & triggers, (table, op)
    before = db.world_count()
    with db.conn:
        db.conn.execute("insert into settled values ('a', 'old', 'not worth it')")
    assert db.world_count() == before + 1
    with db.conn:  # a census table, through the census's counter
        db.conn.execute(
            "insert into tombstones (source_id, item_key, sha256s) values ('s', 'k', 'x')"
        )
    assert db.world_count() == before + 2
    db.start_run("plan")  # the history is no input of a plan
    assert db.world_count() == before + 2


def test_a_file_that_could_not_be_read_keeps_nothing(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error (a disk's, a file another program holds) may pass with
    nothing on disk changed: the plan that met it is not given again."""
    import errno

    from reconciler.observe import hasher

    ws = _library(tmp_path)
    new = make_jpeg(ws.incoming / "IMG_new.JPG", OLD, seed=9)
    real = hasher.sha256_file

    def failing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(path) == os.fspath(new):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return real(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(hasher, "sha256_file", failing)
        # (the first writes the new listing count; the next would leave a
        # mark and walk first, were they kept)
        for _ in range(3):
            unread = ws.run("plan", "--json")
            assert unread.code == 1 and not json.loads(unread.out)["actions"], unread.out
    before = kept.count
    after = ws.run("plan", "--json")  # the disk is well again
    assert kept.since(before) == 1
    assert json.loads(after.out)["actions"], "the photo read now is not imported"
    assert _json(after) == _json(_fresh(ws, monkeypatch, "--json"))


def test_files_dated_in_the_future_still_keep_the_plan(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The racy check goes by ctimes (the kernel's clock): an mtime a copy
    tool set from a camera's clock, years ahead, is no change just made."""
    monkeypatch.setattr(kept_plan, "RACY_S", 1.0)
    ws = _library(tmp_path)
    ahead = (datetime.now(UTC) + timedelta(days=800)).timestamp()
    os.utime(_one(ws.target("nas")), (ahead, ahead))
    assert ws.run("plan").code == 0  # the hash cache learns the new mtime
    time.sleep(1.1)  # every ctime older than RACY_S
    assert ws.run("plan").code == 0  # a mark
    assert ws.run("plan").code == 0  # walks first, keeps
    before = kept.count
    assert ws.run("plan").code == 0
    assert kept.since(before) == 0


def _answered(ws: Workspace, kept: Observed, **kw: Any) -> None:
    """Plan until a plan is answered from the kept plan."""
    for _ in range(4):
        before = kept.count
        ws.run("plan", **kw)
        if kept.since(before) == 0:
            return
    raise AssertionError("no plan was answered")


def test_a_marker_whose_link_leads_elsewhere_now_plans_afresh(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker's reader follows a link at its name: the file behind it
    rewritten (another store's id) moves nothing the link itself shows."""
    ws = _library(tmp_path)
    marker = ws.target("nas") / MARKER
    outside = tmp_path / "nas-marker.json"
    outside.write_bytes(marker.read_bytes())
    marker.unlink()
    marker.symlink_to(outside)
    _answered(ws, kept)
    outside.write_text('{"id": "usb"}')
    after = ws.run("plan", "--json")
    want = _fresh(ws, monkeypatch, "--json")
    assert want.code == 1
    assert (after.code, _json(after)) == (want.code, _json(want))


def test_a_capture_date_that_could_not_be_read_keeps_nothing(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library file with no capture time on record has its metadata read
    every run: a read error there (a disk's) may pass, and the plan that
    met it must not be given again once the photo reads, 800 days old."""
    import errno

    from reconciler import media

    ws = make_workspace(tmp_path / "ws", removal=False, extra=TIERS.replace("900", "30"))
    photo = make_jpeg(ws.library / "undated" / "HAND.JPG", OLD)
    real = media.read_capture_date

    def failing(path: Any) -> Any:
        if os.fspath(path) == os.fspath(photo):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return real(path)

    with monkeypatch.context() as m:
        m.setattr(media, "read_capture_date", failing)
        assert ws.run("apply", "--yes").code == 0  # copied; no tier known
        for _ in range(3):  # were they kept: a mark, walked first, answered
            run = ws.run("plan", "--json")
            assert run.code == 0 and not json.loads(run.out)["actions"], run.out
    before = kept.count
    after = ws.run("plan", "--json")  # the disk is well again
    assert kept.since(before) == 1
    assert {a["type"] for a in json.loads(after.out)["actions"]} == {"encode"}
    assert _json(after) == _json(_fresh(ws, monkeypatch, "--json"))


def test_answered_plans_match_fresh_ones_around_every_boundary(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tier turning at 31 days, removal at 30, an item captured in the
    future: at each moment one turns (and a microsecond either side, and a
    second after), the plan given is the one made afresh."""
    import shutil

    tiers = TIERS.replace("900", "31")
    ws = make_workspace(tmp_path / "ws", removal=True, extra=tiers)
    now = datetime.now(UTC).replace(microsecond=0)
    captures = {
        "IMG_0.JPG": now - timedelta(days=30) + timedelta(hours=1),  # removal, +1 h
        "IMG_1.JPG": now + timedelta(hours=3),  # in the future until +3 h
        "IMG_OLD.JPG": now - timedelta(days=31) + timedelta(hours=2),  # tier, +2 h
    }
    for i, (name, when) in enumerate(captures.items()):
        make_jpeg(ws.incoming / name, when.replace(tzinfo=None), seed=i)
    assert ws.run("apply", "--yes", now=now).code == 0
    assert not json.loads(ws.run("plan", "--json", now=now).out)["actions"]
    _answered(ws, kept, now=now)
    db = ws.root / "state" / "state.db"
    snapshot = tmp_path / "snapshot.db"
    shutil.copy(db, snapshot)
    wrong = []
    for hours in (1, 2, 3):
        turn = now + timedelta(hours=hours)
        for d in (timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1)):
            at = turn + d
            shutil.copy(snapshot, db)  # the kept plan, as it was
            got = ws.run("plan", "--json", now=at)
            want = _fresh(ws, monkeypatch, "--json", now=at)
            if (got.code, _json(got)) != (want.code, _json(want)):
                wrong.append((at - now, got.code, want.code))
    assert not wrong


def _between_walk_and_observation(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]
) -> None:
    real = common.observe

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        assert kwargs.get("walked"), "this run did not walk first"
        change()
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "observe", meanwhile)


def test_a_card_swapped_after_its_walk_is_walked_again(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another card at the source's mount point by the time the observer
    looks, its photos named as a camera names them: the walk made before
    is of the other card, and must not be taken (the hash cache would
    answer its paths, sizes and times with the old card's hashes)."""
    ws = _library(tmp_path)  # applied, a mark: the next plan walks first

    def swap() -> None:
        ws.incoming.rename(ws.root / "card1")
        ws.incoming.mkdir()
        for i in range(3):
            make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=70 + i)

    with monkeypatch.context() as m:
        _between_walk_and_observation(m, swap)
        got = ws.run("plan", "--json")
    want = _fresh(ws, monkeypatch, "--json")
    assert json.loads(want.out)["actions"]
    assert (got.code, _json(got)) == (want.code, _json(want))


def test_a_backup_disk_rotated_after_its_walk_is_walked_again(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two disks taking turns at one mount point, both marked usb: the empty
    one is there when the observer looks, and must not pass for the full."""
    ws = _library(tmp_path)

    def rotate() -> None:
        usb = ws.target("usb")
        usb.rename(ws.root / "usb-disk-a")
        usb.mkdir()
        (usb / MARKER).write_bytes((ws.root / "usb-disk-a" / MARKER).read_bytes())

    with monkeypatch.context() as m:
        _between_walk_and_observation(m, rotate)
        got = ws.run("plan", "--json")
    want = _fresh(ws, monkeypatch, "--json")
    assert json.loads(want.out)["actions"]
    assert (got.code, _json(got)) == (want.code, _json(want))


def test_the_next_process_finds_the_same_key(tmp_path: Path) -> None:
    """Cron runs each plan in a process of its own, with its own string hash
    seed: nothing in the key may follow a set's order (two targets with
    ``same_disk_ok`` are a set of names)."""
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import sys\n"
        "from reconciler import kept_plan, walk_ahead\n"
        "walk_ahead.MIN_STATE_BYTES = 0\n"
        "kept_plan.RACY_S = -3600.0\n"
        "from reconciler.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    for i in range(3):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    root = Path(__file__).resolve().parents[2]

    def run(seed: int, *args: str) -> None:
        env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONPATH=str(root))
        done = subprocess.run(
            [sys.executable, str(runner), "-c", str(ws.config), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def plan_kept() -> bool:
        with _db(ws) as db:
            return bool(db.execute("select plan from converged_plan").fetchone()[0])

    run(0, "apply", "--yes")
    run(0, "plan")  # a mark
    run(0, "plan")  # walks first, keeps
    assert plan_kept()
    for seed in (1, 2, 3):  # each would observe again, and keep a mark only
        run(seed, "plan")
        assert plan_kept(), seed


def test_a_program_run_from_an_archive_is_known_by_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a zipapp, the packages have no folder of files to stat: the
    archive itself tells one version from the next."""
    import zipfile

    import providers
    import reconciler

    app = tmp_path / "reconcile.pyz"

    def build(text: str) -> bytes:
        with zipfile.ZipFile(app, "w") as z:
            z.writestr("reconciler/__init__.py", text)
            z.writestr("providers/__init__.py", "")
        monkeypatch.setattr(reconciler, "__file__", f"{app}/reconciler/__init__.py")
        monkeypatch.setattr(providers, "__file__", f"{app}/providers/__init__.py")
        return kept_plan._code()

    first = build("VERSION = 1\n")
    os.utime(app, ns=(1, 1))
    again = build("VERSION = 2  # a longer line\n")
    assert first != again


def test_a_state_database_locked_by_another_program_costs_only_the_keeping(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is said and exits as ever; nothing is kept, so the next is
    made as usual."""
    from reconciler import state

    ws = _library(tmp_path)  # the next plan walks first and would keep
    monkeypatch.setattr(state.connection, "BUSY_TIMEOUT_S", 0.2)
    keep = kept_plan.keep
    holder = _db(ws)

    def locked(*args: Any) -> bool:
        holder.execute("begin immediate")
        try:
            return keep(*args)
        finally:
            holder.execute("rollback")

    with monkeypatch.context() as m:
        m.setattr(kept_plan, "keep", locked)
        run = ws.run("plan", "--detailed-exitcode")
    assert (run.code, run.err) == (0, ""), run.err
    assert "No changes" in run.out
    before = kept.count
    ws.run("plan")
    assert kept.since(before) == 1


def _undecodable(ws: Workspace) -> None:
    make_jpeg(ws.incoming / "x.JPG", OLD, seed=40)
    os.rename(ws.incoming / "x.JPG", os.fsencode(ws.incoming) + b"/bad\xff.JPG")
    os.mkdir(os.fsencode(ws.library) + b"/d\xfe")
    make_jpeg(ws.root / "y.JPG", OLD, seed=41)
    os.rename(ws.root / "y.JPG", os.fsencode(ws.library) + b"/d\xfe/in.JPG")


def _links(ws: Workspace) -> None:
    (ws.root / "elsewhere").mkdir()
    make_jpeg(ws.root / "elsewhere" / "E.JPG", OLD, seed=42)
    (ws.incoming / "link.JPG").symlink_to(_one(ws.incoming))
    (ws.incoming / "folder link").symlink_to(ws.root / "elsewhere", target_is_directory=True)
    (ws.target("nas") / "out.JPG").symlink_to(ws.root / "elsewhere" / "E.JPG")


def _odd_files(ws: Workspace) -> None:
    os.mkfifo(ws.incoming / "pipe.JPG")
    (ws.incoming / ".DS_Store").write_bytes(b"junk")
    (ws.library / ".hidden").mkdir()
    make_jpeg(ws.library / ".hidden" / "H.JPG", OLD, seed=43)
    os.link(_one(ws.library), ws.library / "hard.JPG")
    make_jpeg(ws.incoming / "F.JPG", None, seed=44)
    os.utime(ws.incoming / "F.JPG", ns=(4_000_000_000 * 10**9, 4_000_000_000 * 10**9))


def _emptied(ws: Workspace) -> None:
    for f in ws.incoming.iterdir():
        f.unlink()


@pytest.mark.parametrize("awkward", [_undecodable, _links, _odd_files, _emptied])
def test_plans_walked_first_and_answered_match_fresh_ones_on_awkward_trees(
    tmp_path: Path,
    kept: Observed,
    monkeypatch: pytest.MonkeyPatch,
    awkward: Callable[[Workspace], None],
) -> None:
    """Undecodable names, links, a FIFO, junk and dot-folders, hard links, an
    mtime past 2100, a source emptied (a guard): every plan, made after
    walking first or answered, is the one made with nothing kept."""
    ws = _library(tmp_path)
    awkward(ws)
    for _ in range(4):  # made, a mark, walked first and kept, answered
        got = ws.run("plan", "--json")
        want = _fresh(ws, monkeypatch, "--json")
        assert (got.code, _json(got)) == (want.code, _json(want))


def test_a_state_database_restored_from_a_backup_holding_a_kept_plan(
    tmp_path: Path, kept: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup's kept plan is of the world as it was then: restored after
    the world moved on, it is never given for the world of now."""
    import shutil

    from reconciler import backup

    ws = _library(tmp_path)
    ws.config.write_text(
        ws.config.read_text().replace('dir = "state"', 'dir = "state"\nbackup_interval_hours = 0')
    )
    _answered(ws, kept)
    assert ws.run("apply", "--yes").code == 0  # a no-op apply: its backup holds the kept plan
    state = ws.root / "state"
    saved = tmp_path / "saved.db"
    shutil.copy(backup.backups(state / backup.FOLDER)[-1], saved)
    with sqlite3.connect(saved) as db:
        assert db.execute("select plan from converged_plan").fetchone()[0]
    make_jpeg(ws.incoming / "NEW.JPG", OLD, seed=9)
    assert ws.run("apply", "--yes").code == 0
    _answered(ws, kept)
    for path in state.glob("state.db*"):
        path.unlink()
    shutil.copy(saved, state / "state.db")
    for _ in range(3):
        got = ws.run("plan", "--json")
        want = _fresh(ws, monkeypatch, "--json")
        assert (got.code, _json(got)) == (want.code, _json(want))
