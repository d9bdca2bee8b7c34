"""The applier on real files: idempotence, guards, repair, the removal gate."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from providers.fake import FakeSource
from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import connect
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.state import StateDB
from tests.helpers import files_under, make_jpeg, make_workspace, rot_unseen

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)
RECENT = NOW - timedelta(days=2)


def test_apply_then_plan_is_empty(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "a" / "IMG_0001.JPG", OLD, seed=1)
    make_jpeg(ws.incoming / "b" / "IMG_0001.JPG", OLD, seed=2)  # same name, other photo
    make_jpeg(ws.incoming / "IMG_0002.JPG", RECENT, seed=3)
    originals = files_under(ws.incoming)

    first = ws.run("apply", "--yes", now=NOW)
    assert first.code == 0, first.err

    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, again.out) == (0, "No changes. The library matches desired_state.toml.\n")
    # Both same-named photos survive on each target, byte for byte.
    for target in ("nas", "usb"):
        held = sorted(files_under(ws.target(target)).values())
        assert held == sorted(originals.values())
    # Old items left the import folder; the recent one stays.
    assert list(files_under(ws.incoming)) == ["IMG_0002.JPG"]
    # The library holds three files, each re-encoded for its tier.
    assert len(files_under(ws.library)) == 3


def test_target_without_its_marker_gets_no_writes(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    (ws.target("usb") / ".reconcile-target.json").unlink()

    p = ws.run("plan", now=NOW)
    assert "! unavailable target usb: " in p.out
    assert "has no .reconcile-target.json (not mounted?)" in p.out
    assert (p.code, p.err) == (
        1,
        "error: target usb could not be read (see '!' above); the rest was done\n",
    )

    result = ws.run("apply", "--yes", now=NOW)
    assert result.code == 1
    assert list(ws.target("usb").rglob("*")) == []
    assert len(files_under(ws.target("nas"))) == 1
    # One verified copy is not two: the photo stays in the import folder.
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]


def test_a_copy_changed_on_disk_is_reverified_and_recopied(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    original = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}  # archived and removed: usb is the other copy

    (nas_copy,) = [p for p in ws.target("nas").rglob("*.JPG")]
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one flipped byte
    nas_copy.write_bytes(bytes(damaged))
    os.utime(nas_copy, ns=(1, 1))

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2
    assert p.out.splitlines()[1] == (
        "  + copy-to-target[nas] library:2024/09/16/IMG_1.JPG: no verified copy on nas"
    )

    assert ws.run("apply", "--yes", now=NOW).code == 0
    held = files_under(ws.target("nas"))
    assert sorted(held.values()) == sorted([bytes(damaged), original])  # repaired, nothing deleted
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_removal_gate_rechecks_copies_at_the_moment_of_removal(tmp_path: Path) -> None:
    """The plan says 'archived'; a copy goes bad before the removal runs."""
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0

    desired = config.load(ws.config)
    desired = config.parse(
        {
            "library": {"path": str(ws.library)},
            "state": {"dir": str(tmp_path / "state")},
            "sources": {"incoming": {"kind": "folder", "path": str(ws.incoming)}},
            "targets": {
                "nas": {"kind": "filesystem", "path": str(ws.target("nas")), "same_disk_ok": True},
                "usb": {"kind": "filesystem", "path": str(ws.target("usb")), "same_disk_ok": True},
            },
            "policy": {"removal": {"enabled": True, "pace_seconds": 0}},
        },
        name="d",
        base=tmp_path,
    )
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    world = observe(desired, db, conn, now=NOW)
    the_plan = plan(desired, world, NOW)
    assert [a.kind for a in the_plan.actions] == ["remove-from-source"]

    (usb_copy,) = list(ws.target("usb").rglob("*.JPG"))
    usb_copy.write_bytes(b"not the photo any more")  # after planning, before applying

    result = Applier(desired, db, conn, world, run_id=db.start_run("test")).apply(the_plan)
    (outcome,) = result.outcomes
    assert outcome.status == "refused"
    assert outcome.detail == "IMG_1.JPG: 1 of 2 verified copies now (nas); kept"
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    db.close()


def test_a_failed_or_truncated_download_never_leads_to_a_removal(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    cloud = FakeSource("incoming")
    cloud.add("asset-1", {"IMG_1.JPG": b"x" * 1000}, OLD)
    cloud.add("asset-2", {"IMG_2.JPG": b"y" * 1000}, OLD)
    cloud.fail_fetch.add("IMG_1.JPG")
    cloud.truncate_fetch.add("IMG_2.JPG")
    conn.sources = {"incoming": cloud}
    desired = config.parse(
        {
            "library": {"path": str(ws.library)},
            "state": {"dir": str(tmp_path / "state")},
            "targets": {
                "nas": {"kind": "filesystem", "path": str(ws.target("nas")), "same_disk_ok": True},
                "usb": {"kind": "filesystem", "path": str(ws.target("usb")), "same_disk_ok": True},
            },
            "apply": {"retries": 2, "backoff_base_s": 0},
            "policy": {"removal": {"enabled": True, "pace_seconds": 0}},
        },
        name="d",
        base=tmp_path,
    )
    world = observe(desired, db, conn, now=NOW)
    the_plan = plan(desired, world, NOW)
    result = Applier(desired, db, conn, world, run_id=1, sleep=lambda s: None).apply(the_plan)
    status = {o.action_id: o.status for o in result.outcomes}
    assert status["download:incoming:asset-1:IMG_1.JPG"] == "failed"
    assert status["download:incoming:asset-2:IMG_2.JPG"] == "failed"
    assert status["remove:incoming:asset-1"] == "skipped"
    assert status["remove:incoming:asset-2"] == "skipped"
    assert cloud.removed == []
    assert files_under(ws.library) == {} and files_under(ws.target("nas")) == {}
    db.close()


def test_hash_cache_means_unchanged_files_are_not_reread(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    for i in range(5):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    from reconciler.observe.hasher import CachedHasher

    hasher = CachedHasher(db)
    conn = connect(desired)
    list(conn.sources["incoming"].list_items(hasher))
    list(conn.targets["nas"].list_copies(hasher))
    assert hasher.hashed_files == 0
    (ws.incoming / "IMG_0.JPG").write_bytes(b"changed")
    list(conn.sources["incoming"].list_items(hasher))
    assert hasher.hashed_files == 1
    db.close()


def test_deleting_the_state_db_loses_nothing_and_converges(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1, size=256)
    make_jpeg(ws.incoming / "IMG_2.JPG", RECENT, seed=2, size=256)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    before = {name: files_under(ws.root / name) for name in ("library", "nas", "usb", "incoming")}
    (tmp_path / "state" / "state.db").unlink()
    for extra in ("state.db-wal", "state.db-shm"):
        (tmp_path / "state" / extra).unlink(missing_ok=True)

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (p.code, p.out) == (0, "No changes. The library matches desired_state.toml.\n")
    after = {name: files_under(ws.root / name) for name in before}
    assert after == before


def test_a_listing_that_shrank_sharply_is_not_trusted_for_removal(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    for i in range(10):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", RECENT, seed=i)
    assert ws.run("apply", "--yes", now=NOW).code == 0  # archived, kept: all recent
    for i in range(2, 10):
        (ws.incoming / f"IMG_{i}.JPG").unlink()  # the card was wiped elsewhere

    later = NOW + timedelta(days=60)  # now old enough to off-load
    p = ws.run("plan", now=later)
    assert p.out.splitlines() == [
        "Not done this run:",
        "  ! blocked source incoming: listing shrank from 10 to 2 items since the last run "
        "(guards.max_shrink_fraction=0.5); if that is right, run once with --accept-shrink; "
        "nothing is removed from it this run",
        "",
        "No changes for what could be read; the rest is not known to match. (1 blocked)",
    ]
    assert p.code == 3
    assert p.err == (
        "error: a guard held back source incoming (see '!' above); check it, then run again "
        "(with --accept-shrink if the shrink is real)\n"
    )
    assert ws.run("apply", "--yes", now=later).code == 3
    assert sorted(files_under(ws.incoming)) == ["IMG_0.JPG", "IMG_1.JPG"]

    accepted = ws.run("apply", "--yes", "--accept-shrink", now=later)
    assert accepted.code == 0
    assert files_under(ws.incoming) == {}


def test_an_unreadable_or_empty_source_removes_nothing(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", RECENT, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    card = ws.incoming.rename(tmp_path / "unmounted")
    p = ws.run("plan", now=NOW)
    assert p.code == 1
    assert "  ! unavailable source incoming: listing failed: incoming: " in p.out
    assert "does not exist or is not mounted; nothing is removed from it this run" in p.out
    ws.incoming.mkdir()  # mounted, but empty: a bare mount point
    p = ws.run("plan", now=NOW)
    assert p.code == 3
    assert (
        "  ! blocked source incoming: listing came back empty (last run: 1 items); "
        "nothing is removed from it this run"
    ) in p.out
    ws.incoming.rmdir()
    card.rename(ws.incoming)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_every_action_is_journaled_before_and_after(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    db = StateDB.in_dir(tmp_path / "state")
    rows = db.journal_rows()
    db.close()
    by_action: dict[str, list[str]] = {}
    for row in rows:
        by_action.setdefault(row["action_id"], []).append(row["status"])
    kinds = sorted({row["kind"] for row in rows})
    assert kinds == ["copy-to-library", "copy-to-target", "encode", "remove-from-source"]
    assert len(by_action) == 5
    for statuses in by_action.values():
        assert statuses[0] == "started" and statuses[1] in ("changed", "ok")
        assert len(statuses) == 2


def _rot(copy: Path) -> None:
    """Other bytes in place: same inode, same size, the old mtime."""
    st = copy.stat()
    with open(copy, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"\x00\x01\x02")
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_copy_rewritten_in_place_is_found_by_its_ctime_at_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (copy,) = list(ws.target("nas").rglob("*.JPG"))
    _rot(copy)  # a write: the kernel's ctime moves, whatever the mtime says
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2
    assert "+ copy-to-target[nas] incoming:IMG_1.JPG: no verified copy on nas" in p.out


def test_bit_rot_that_keeps_size_and_mtime_is_found_by_reverification(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (copy,) = list(ws.target("nas").rglob("*.JPG"))
    rotten = bytearray(copy.read_bytes())
    rotten[len(rotten) // 2 : len(rotten) // 2 + 3] = b"\x00\x01\x02"
    rot_unseen(copy, bytes(rotten), tmp_path / "state")  # no ctime moved

    # Within the window the cache is trusted (the removal gate would still re-read).
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    later = NOW + timedelta(days=400)  # past reverify_after_days (180, spread to 360)
    p = ws.run("plan", "--detailed-exitcode", now=later)
    assert p.code == 2
    assert "+ copy-to-target[nas] incoming:IMG_1.JPG: no verified copy on nas" in p.out
    assert ws.run("apply", "--yes", now=later).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=later).code == 0


def test_the_pause_between_removals_comes_before_the_gate_reads_the_copies(
    tmp_path: Path,
) -> None:
    """``pace_seconds`` pauses before each removal after the first. The gate
    read the copies before the pause: a target emptied during it (a NAS
    share dropped, a disk swapped) went unseen, and the second item was
    removed with one copy left of the two asked for."""
    ws = make_workspace(tmp_path)
    ws.config.write_text(ws.config.read_text().replace("pace_seconds = 0", "pace_seconds = 1"))
    for i in (1, 2):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    assert ws.run("apply", "--yes", "--only", "copy", now=NOW).code == 0
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)

    def nas_emptied_meanwhile(seconds: float) -> None:
        for p in ws.target("nas").rglob("IMG_*.JPG"):
            p.unlink()

    try:
        world = observe(desired, db, conn, now=NOW)
        the_plan = plan(desired, world, NOW)
        applier = Applier(
            desired, db, conn, world, run_id=db.start_run("test"), sleep=nas_emptied_meanwhile
        )
        result = applier.apply(the_plan)
    finally:
        conn.close()
        db.close()
    removals = sorted(o.status for o in result.outcomes if o.kind == "remove-from-source")
    assert removals == ["changed", "refused"], result.outcomes
    assert len(files_under(ws.incoming)) == 1
