"""A soft delete whose answer never came is remembered as unknown and settled
by the next run, never taken as "it did not happen".

iCloud carries the delete out and answers 503; the re-reads that would have
told run into the same storm. Before, the removal was reported failed and
forgotten: no tombstone, the listing count unchanged, so the next run's
listing, one item short, tripped the shrink guard (exit 3, "--accept-shrink")
on every run, and status counted the item as still in iCloud. Now the
removal is noted before it is sent, and the next listing reads the asset:
in Recently Deleted it is tombstoned as if the answer had come; still there,
the note goes. The whole tool, the real pyicloud and the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler.state import StateDB
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "src" / "0.jpg", OLD, seed=0).read_bytes()
    account.add_asset(data, "IMG_0000.JPG", asset_date=OLD)
    return account


def answer_lost(emu: RunningEmulator, *, applied: bool = True) -> None:
    """The first records/modify (the delete) is carried out, then answered
    503; from then on every lookup is 503 too (the storm the re-reads run
    into), until the faults are cleared. Not ``applied``: every delete is
    answered 503, and none is carried out."""
    server = emu.server
    if not applied:
        server.inject("modify", status=503, retry_after=0, times=None)
        return
    real = server._modify
    fired: list[int] = []

    def modify(body: dict, *, conflict: bool) -> dict | None:  # type: ignore[type-arg]
        out = real(body, conflict=conflict)
        if not fired:
            fired.append(1)
            server.inject("lookup", status=503, retry_after=0, times=None)
        return out

    server._modify = modify  # type: ignore[method-assign]
    server.inject("modify", status=503, retry_after=0, applied=True, times=1)


def removal_unheard(ws: Workspace, emu: RunningEmulator, *, applied: bool = True) -> None:
    """Archive, then a removal whose answer is lost; the storm then ends."""
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    ws.removal(on=True)
    answer_lost(emu, applied=applied)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1, r.out + r.err
    assert "failed remove-from-source" in r.out
    emu.server.clear_faults()


def state(ws: Workspace) -> StateDB:
    return StateDB.in_dir(ws.root / "state")


def census(ws: Workspace, now: datetime) -> dict[str, dict[str, int]]:
    return json.loads(ws.run("status", "--json", now=now).out)["census"]  # type: ignore[no-any-return]


def test_a_delete_whose_answer_was_lost_is_settled_by_the_next_run(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    (photo,) = account.live_assets()
    removal_unheard(ws, emu)
    assert photo.deleted  # iCloud did remove it; the tool could not hear so
    db = state(ws)
    (key,) = db.unheard_removals("icloud")
    assert db.tombstones() == {}
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err  # before: 3, "listing came back empty (last run: 1 items)"
    assert db.unheard_removals("icloud") == {}
    assert list(db.tombstones()) == [("icloud", key)]
    assert db.listing_count("icloud") == 0
    assert ws.run("plan", "--detailed-exitcode", now=LATER).code == 0
    counted = census(ws, LATER)
    assert counted["items"]["removed"] == 1, counted
    assert counted["bytes"]["icloud"] == 0, counted


def test_an_unheard_removal_not_read_back_yet_is_no_shrink(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """The next run cannot read the asset yet (its lookup fails once) but
    lists the library: the item missing is the tool's own doing, not a
    listing gone wrong. The run after reads it and settles it."""
    (photo,) = account.live_assets()
    removal_unheard(ws, emu)
    emu.server.inject("lookup", status=503, retry_after=0, times=1, body_contains=photo.asset_id)
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    db = state(ws)
    assert len(db.unheard_removals("icloud")) == 1  # still unknown
    assert db.listing_count("icloud") == 0
    assert ws.run("apply", "--yes", now=LATER).code == 0
    assert db.unheard_removals("icloud") == {}
    assert db.listing_count("icloud") == 0  # lowered once, not twice
    assert census(ws, LATER)["items"]["removed"] == 1


def test_the_shrink_guard_stays_strict_for_everything_else(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """An unheard removal explains one item missing, not two."""
    (photo,) = account.live_assets()
    recent = make_jpeg(tmp_path / "src" / "1.jpg", NOW - timedelta(days=1), seed=1).read_bytes()
    other = account.add_asset(recent, "IMG_0001.JPG", asset_date=NOW - timedelta(days=1))
    removal_unheard(ws, emu)
    account.delete(other)  # gone too: not the tool's doing
    emu.server.inject("lookup", status=503, retry_after=0, times=1, body_contains=photo.asset_id)
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 3, r.out + r.err
    assert "listing came back empty (last run: 2 items)" in r.out


def test_a_delete_that_did_not_happen_is_tried_again(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """The 503 was true (nothing was deleted): the next run reads the asset
    still there, drops the note, and removes it as planned."""
    (photo,) = account.live_assets()
    removal_unheard(ws, emu, applied=False)
    assert not photo.deleted
    db = state(ws)
    assert len(db.unheard_removals("icloud")) == 1
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    assert db.unheard_removals("icloud") == {}
    assert len(db.tombstones()) == 1
    assert census(ws, LATER)["items"]["removed"] == 1
