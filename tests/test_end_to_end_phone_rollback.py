"""The state database put back from one of the tool's own backups, or lost,
after the phone took a delivery (README: "Freeing the staging copy", "Two
roles: archive and conduit"). What the world still shows is learned again:
an archive phone's freed copy (the tool's freed line in ``.stignore``, and
the version the phone announces) is not sent a second time, and a conduit's
delivery gone from here is no longer counted as settling on the phone.
Real Syncthing on loopback."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair
from reconciler.state import StateDB
from tests.helpers import Run, Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
ON_PHONE = "2022/03/04/IMG_1.JPG"
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def with_backups(ws: Workspace) -> None:
    """A backup of the state database at every run."""
    text = ws.config.read_text()
    ws.config.write_text(text.replace('dir = "state"', 'dir = "state"\nbackup_interval_hours = 0'))


def backups(ws: Workspace) -> list[Path]:
    return sorted((ws.root / "state" / "backups").glob("state-*.db"))


def restore(ws: Workspace, backup: Path) -> None:
    """As the README says: copy the backup over state.db."""
    state = ws.root / "state"
    for p in state.glob("state.db*"):
        p.unlink()
    shutil.copy(backup, state / "state.db")


def until(ws: Workspace, text: str, now: datetime, timeout: float = 20.0) -> Run:
    """Plan until ``text`` shows (the phone confirming on its own time)."""
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=now)
        if text in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def rows(ws: Workspace, tid: str) -> dict[str, dict[str, object]]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return db.deliveries(tid)
    finally:
        db.close()


# ---------------------------------------------------------------- archive


def freed_on_phone(tmp_path: Path, pair: SyncthingPair) -> tuple[Workspace, bytes]:
    """IMG_1 archived on the NAS and the phone, removed from its folder, and
    its staging copy freed here; a backup of the state database taken before
    the phone confirmed it (the oldest, from the first apply)."""
    options = "delete_local_copy = true\nliveness_timeout_s = 10\n"
    ws = phone_workspace(tmp_path / "ws", pair, removal=True, phone_options=options)
    with_backups(ws)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    until(ws, f"- free-staging-copy phone:{ON_PHONE}", NOW)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    assert list(files_under(pair.local_folder)) == [".stignore"]
    assert phone_files(pair) == {ON_PHONE: photo}
    return ws, photo


def converge(ws: Workspace, pair: SyncthingPair, now: datetime) -> Run:
    """Apply until a plan finds nothing to do (the phone confirms in its time)."""
    deadline = time.monotonic() + 20
    while True:
        r = ws.run("apply", "--yes", now=now)
        assert r.code == 0, r.out + r.err
        plan = ws.run("plan", "--detailed-exitcode", now=now)
        if plan.code == 0 or time.monotonic() > deadline:
            return plan
        time.sleep(0.1)


def test_a_freed_copy_is_not_sent_again_after_a_backup_is_restored(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws, photo = freed_on_phone(tmp_path, pair)
    restore(ws, backups(ws)[0])  # from before the confirmation and the freeing
    assert rows(ws, "phone")[ON_PHONE]["freed_at"] is None
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)  # (no listing shrank to nothing)
    plan = ws.run("plan", now=NOW)
    assert plan.code == 0, plan.out + plan.err
    assert ON_PHONE not in plan.out, plan.out  # learned again from the phone: nothing to send
    row = rows(ws, "phone")[ON_PHONE]
    assert row["confirmed_at"] and row["freed_at"] and row["evidence"]
    assert converge(ws, pair, NOW).out == NO_CHANGES
    assert [k for k, v in phone_files(pair).items() if v == photo] == [ON_PHONE]
    assert "phone 2 file(s)" in ws.run("status", now=NOW).out


def test_a_freed_copy_is_not_sent_again_after_a_fresh_start(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws, photo = freed_on_phone(tmp_path, pair)
    shutil.rmtree(ws.root / "state")  # the state database lost
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    # The freed copy was taken back as the delivery, nothing written here...
    assert f"taken back: phone:{ON_PHONE} (freed here before; the phone holds it" in r.out, r.out
    assert not (pair.local_folder / ON_PHONE).exists()
    assert rows(ws, "phone")[ON_PHONE]["freed_at"] is None
    # ... and the next run proves the phone holds it: confirmed and freed again.
    assert converge(ws, pair, NOW).out == NO_CHANGES
    row = rows(ws, "phone")[ON_PHONE]
    assert row["confirmed_at"] and row["freed_at"] and row["evidence"]
    assert [k for k, v in phone_files(pair).items() if v == photo] == [ON_PHONE]


def test_a_freed_copy_waits_while_the_phone_is_away(tmp_path: Path, pair: SyncthingPair) -> None:
    ws, photo = freed_on_phone(tmp_path, pair)
    restore(ws, backups(ws)[0])
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    pair.stop_phone()
    try:
        plan = ws.run("plan", now=NOW)
        assert plan.code == 0, plan.out + plan.err
        assert "not proven alive this run" in plan.out, plan.out
        # Not proven this run: it does not count, and it is not sent again.
        assert f"library:{ON_PHONE}" not in plan.out, plan.out
        assert rows(ws, "phone")[ON_PHONE]["confirmed_at"] is None
    finally:
        pair.start_phone()
    assert converge(ws, pair, NOW).out == NO_CHANGES
    assert rows(ws, "phone")[ON_PHONE]["freed_at"]
    assert [k for k, v in phone_files(pair).items() if v == photo] == [ON_PHONE]


# ---------------------------------------------------------------- conduit


@pytest.fixture
def conduit_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    """A phone folder that applies deletes, as a conduit's must."""
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def conduit_line(ws: Workspace, now: datetime) -> str:
    status = ws.run("status", now=now).out
    return next(x for x in status.splitlines() if x.startswith("phone (conduit):"))


def settling(tmp_path: Path, pair: SyncthingPair) -> Workspace:
    """IMG_0 delivered to a conduit and confirmed; a backup taken after that."""
    options = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\n'
    ws = phone_workspace(tmp_path / "ws", pair, removal=False, phone_options=options)
    with_backups(ws)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    deadline = time.monotonic() + 20
    while " 1 settling" not in conduit_line(ws, NOW):  # confirmed by a run's observation
        assert time.monotonic() < deadline, conduit_line(ws, NOW)
        assert ws.run("plan", now=NOW).out == NO_CHANGES
        time.sleep(0.1)
    assert ws.run("apply", "--yes", now=NOW).out == NO_CHANGES  # (and backed up)
    return ws


def wait_phone_empty(pair: SyncthingPair) -> None:
    deadline = time.monotonic() + 10
    while [k for k in phone_files(pair) if k.endswith(".JPG")]:
        assert time.monotonic() < deadline, phone_files(pair)
        time.sleep(0.05)


def test_a_released_delivery_restored_is_not_counted_on_the_phone(
    tmp_path: Path, conduit_pair: SyncthingPair
) -> None:
    ws = settling(tmp_path, conduit_pair)
    backup = backups(ws)[-1]  # confirmed, not released
    later = NOW + timedelta(days=8)
    r = ws.run("apply", "--yes", now=later)
    assert r.code == 0 and "release-from-phone" in r.out, r.out + r.err
    wait_phone_empty(conduit_pair)
    restore(ws, backup)
    assert " 1 settling" in conduit_line(ws, later)  # what the backup says
    for hours in (1, 2):
        r = ws.run("apply", "--yes", now=later + timedelta(hours=hours))
        assert r.code == 0, r.out + r.err
        assert r.out == NO_CHANGES  # nothing sent again, nothing released
    line = conduit_line(ws, later)
    assert line.startswith("phone (conduit): 1 delivered, 0 settling (0 bytes on the phone)"), line
    assert "next release due" not in line
    assert [k for k in phone_files(conduit_pair) if k.endswith(".JPG")] == []


def test_a_settling_delivery_deleted_here_is_not_counted_on_the_phone(
    tmp_path: Path, conduit_pair: SyncthingPair
) -> None:
    ws = settling(tmp_path, conduit_pair)
    (delivered,) = [p for p in (conduit_pair.local_folder / "2022").rglob("*.JPG")]
    delivered.unlink()  # by the person, before it settled
    # Syncthing here sees it gone (its watcher, or its next rescan) and the phone follows.
    conduit_pair.local.client().scan(conduit_pair.folder_id)
    wait_phone_empty(conduit_pair)
    r = ws.run("apply", "--yes", now=NOW + timedelta(hours=1))
    assert r.code == 0 and r.out == NO_CHANGES, r.out + r.err  # never delivered again
    line = conduit_line(ws, NOW)
    assert line.startswith("phone (conduit): 1 delivered, 0 settling (0 bytes on the phone)"), line
    r = ws.run("apply", "--yes", now=NOW + timedelta(days=8))
    assert r.code == 0 and r.out == NO_CHANGES, r.out + r.err  # nothing to release
