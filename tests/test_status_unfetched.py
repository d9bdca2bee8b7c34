"""``status``, ``status --json`` and the metrics about iCloud items the last
run listed but no download stands for. The census learns of an iCloud item
from the source's remembered listing, not only from the files downloaded:
one whose download fails on every run, one a plan listed and no apply
fetched yet, a Live Photo whose video never came, an edit made again, is in
a source only until it is fetched, and nothing says "every item is archived"
meanwhile. Nor is it said beside an action that failed in the last apply."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler import config, history
from reconciler.census import STATES, census
from reconciler.state import StateDB
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
RECENT = NOW - timedelta(days=5)  # kept in iCloud: keep_recent_days = 30
EVERY_ITEM = "every item is archived (2 copies required) or off-loaded"
OLDEST = "oldest not yet archived: icloud:IMG_0002.JPG, captured 2021-06-01"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "1.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def _photo(tmp_path: Path, seed: int, when: datetime = OLD) -> bytes:
    return make_jpeg(tmp_path / f"{seed}.jpg", when, seed=seed).read_bytes()


def _items_line(**counts: int) -> str:
    """``status``'s line of the census, exactly (the states not named: 0)."""
    n = _items(**counts)
    return (
        f"items: {n['source_only']} in a source only, {n['library_only']} in the library only, "
        f"{n['archived_1']} archived on 1 target, {n['archived_2plus']} on 2+ targets, "
        f"{n['waiting_phone']} waiting on the phone, {n['removed']} removed from their source, "
        f"{n['failed']} failed"
    )


def _items(**counts: int) -> dict[str, int]:
    return {s: counts.get(s, 0) for s in STATES}


def _status(ws: Workspace) -> list[str]:
    return ws.run("status", now=NOW).out.splitlines()


def _census_json(ws: Workspace) -> dict[str, Any]:
    census_doc: dict[str, Any] = json.loads(ws.run("status", "--json", now=NOW).out)["census"]
    return census_doc


def _metrics(ws: Workspace) -> list[str]:
    text = (ws.root / "state" / "reconcile.prom").read_text()
    return [line for line in text.splitlines() if line.startswith("reconcile_items{")]


def _metric_lines(**counts: int) -> list[str]:
    return [f'reconcile_items{{state="{s}"}} {n}' for s, n in _items(**counts).items()]


def _stored_and_fresh(ws: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last run's stored census, and a count of the database now."""
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        return db.census_history(1)[-1][1], census(db, desired).to_json()
    finally:
        db.close()


def test_an_item_whose_download_fails_on_every_run_is_in_the_source_only(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    data = _photo(tmp_path, 2)
    account.add_asset(data, "IMG_0002.JPG", asset_date=OLD)
    emu.server.inject("download", status=404, path_contains="IMG_0002.JPG", times=None)
    for _ in range(2):
        assert ws.run("apply", "--yes", now=NOW).code == 1
    lines = _status(ws)
    assert (
        "items: 1 in a source only, 0 in the library only, 0 archived on 1 target, "
        "0 on 2+ targets, 0 waiting on the phone, 1 removed from their source, 1 failed"
    ) in lines
    assert OLDEST in lines
    assert EVERY_ITEM not in lines
    got = _census_json(ws)
    assert got["items"] == _items(source_only=1, removed=1, failed=1)
    assert got["bytes"]["icloud"] == len(data)  # left in iCloud, never downloaded
    assert got["oldest_unarchived"] == {
        "name": "icloud:IMG_0002.JPG",
        "captured_at": OLD.isoformat(),
    }
    assert _metrics(ws) == _metric_lines(source_only=1, removed=1, failed=1)


def test_an_item_a_plan_listed_is_in_the_source_only_until_an_apply_fetches_it(
    ws: Workspace, account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert EVERY_ITEM in _status(ws)
    account.add_asset(_photo(tmp_path, 2), "IMG_0002.JPG", asset_date=OLD)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "+ download icloud:IMG_0002.JPG" in p.out, p.out
    # That plan wrote no row the change counter counts, only the listing:
    # its census is counted again, not the last one taken as still true.
    stored, fresh = _stored_and_fresh(ws)
    assert stored == fresh and fresh["items"] == _items(source_only=1, removed=1)
    lines = _status(ws)
    assert _items_line(source_only=1, removed=1) in lines
    assert OLDEST in lines and EVERY_ITEM not in lines
    assert _census_json(ws)["items"] == _items(source_only=1, removed=1)
    assert _metrics(ws) == _metric_lines(source_only=1, removed=1)
    # Another plan finds the library as it was: that census is reused.
    calls: list[int] = []
    real = history.census

    def counted(db: StateDB, desired: config.DesiredState) -> Any:
        calls.append(1)
        return real(db, desired)

    monkeypatch.setattr(history, "census", counted)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    assert calls == []
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert calls == [1]
    lines = _status(ws)
    assert _items_line(removed=2) in lines and EVERY_ITEM in lines


def test_a_live_photo_whose_video_never_came_is_in_the_source_only(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    video = b"live-mov" * 999
    still = _photo(tmp_path, 2)
    account.add_asset(still, "IMG_0002.JPG", asset_date=OLD, live_video=video)
    emu.server.inject("download", status=404, path_contains="IMG_0002.MOV", times=None)
    assert ws.run("apply", "--yes", now=NOW).code == 1
    # Its still is in the library and on both targets: the item is not.
    assert len(list((ws.root / "nas").rglob("IMG_0002.JPG"))) == 1
    lines = _status(ws)
    assert _items_line(source_only=1, removed=1, failed=1) in lines
    assert "oldest not yet archived: 2021/06/01/IMG_0002.JPG, captured 2021-06-01" in lines
    assert EVERY_ITEM not in lines
    got = _census_json(ws)
    assert got["items"] == _items(source_only=1, removed=1, failed=1)
    assert got["bytes"]["icloud"] == len(still) + len(video)


def test_an_edit_made_again_is_in_the_source_only_until_fetched(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    original = _photo(tmp_path, 2, RECENT)
    asset = account.add_asset(original, "IMG_0002.JPG", asset_date=RECENT)
    account.edit_asset(asset, _photo(tmp_path, 3, RECENT))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _items_line(archived_2plus=1, removed=1) in _status(ws)
    # Edited again in Photos: the same files by name, a new rendered edit.
    edit = make_jpeg(tmp_path / "4.jpg", RECENT, seed=4, size=96).read_bytes()
    account.edit_asset(asset, edit)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "+ download icloud:" in p.out, p.out
    lines = _status(ws)
    assert _items_line(source_only=1, removed=1) in lines
    assert EVERY_ITEM not in lines
    got = _census_json(ws)
    assert got["items"] == _items(source_only=1, removed=1)
    sidecar = asset.master.sidecar
    assert sidecar is not None and sidecar.data is not None
    # What iCloud holds of it now: the edit as listed, not the one downloaded.
    assert got["bytes"]["icloud"] == len(original) + len(edit) + len(sidecar.data)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    lines = _status(ws)
    # (The edit downloaded before stays in the library and on the targets:
    # no source speaks for it now, so it is an item of its own.)
    assert _items_line(archived_2plus=2, removed=1) in lines and EVERY_ITEM in lines


def test_an_item_older_than_max_age_days_is_not_counted(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """The planner passes over an item older than the source's
    ``max_age_days``: never downloaded, it is not the tool's, and the census
    does not count it in a source either."""
    ws.config.write_text(
        ws.config.read_text().replace("timeout_s = 5\n", "timeout_s = 5\nmax_age_days = 365\n")
    )
    account.add_asset(_photo(tmp_path, 2, RECENT), "IMG_0002.JPG", asset_date=RECENT)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    lines = _status(ws)
    assert _items_line(archived_2plus=1) in lines and EVERY_ITEM in lines


def test_nothing_is_called_archived_beside_an_action_that_failed(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    """The item is on both targets, but its removal failed: the last apply
    left work undone, and status says so instead."""
    emu.server.inject("modify", status=500, times=None)
    assert ws.run("apply", "--yes", now=NOW).code == 1
    lines = _status(ws)
    assert _items_line(archived_2plus=1, failed=1) in lines
    assert "failed in the last apply (run 1): 1 action(s), 1 item(s); apply again to retry" in lines
    assert EVERY_ITEM not in lines
