"""The library's sidecar of an off-loaded item, lost before any later run
read it (deleted, or its whole day folder): it comes back from a target, as
its original does. The applier recorded it with no role, so the next run
took the gone ``.xmp`` for another program's and forgot it: the library
never held the item's metadata again, and once a target lost its copy too,
nothing wrote it there while status said every item was archived. The
applier now records what it wrote as the item's sidecar. Real exiftool and
the emulator."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import Workspace, exiftool_tags, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
DAY = "2021/06/01"
SIDECAR = f"{DAY}/IMG_0001.JPG.xmp"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "s1.jpg", OLD, seed=1).read_bytes()
    asset = account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, caption="Dawn", favorite=True)
    account.add_album("Trip", [asset])
    return account


def _offloaded(ws: Workspace, account: Account) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []


@pytest.mark.parametrize("lost", ["sidecar", "day folder"])
def test_the_librarys_sidecar_lost_before_the_next_run_comes_back(
    ws: Workspace, account: Account, lost: str
) -> None:
    _offloaded(ws, account)
    if lost == "sidecar":
        (ws.library / SIDECAR).unlink()
    else:
        shutil.rmtree(ws.library / DAY)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert (ws.library / f"{DAY}/IMG_0001.JPG").exists()
    assert (ws.library / SIDECAR).exists(), r.out
    back = exiftool_tags(ws.library / SIDECAR)
    assert back["XMP-xmp:Rating"] == 5
    assert back["XMP-dc:Title"] == "Dawn"
    assert back["XMP-lr:HierarchicalSubject"] == "Albums|Trip"
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out


def test_a_target_that_loses_it_next_gets_it_back(ws: Workspace, account: Account) -> None:
    """Lost from the library unread, then from the usb: the usb gets it back
    from the library's, and status never says the item is on two targets
    while only the nas holds its sidecar."""
    _offloaded(ws, account)
    (ws.library / SIDECAR).unlink()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (ws.target("usb") / SIDECAR).unlink()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in ("library", "usb"):
        assert exiftool_tags(ws.target(store) / SIDECAR)["XMP-dc:Title"] == "Dawn", store
    assert [p for p in files_under(ws.target("usb")) if p.endswith(".xmp")] == [SIDECAR]
    census = json.loads(ws.run("status", "--json", now=NOW).out)["census"]["items"]
    assert census["removed"] == 1, census
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_row_an_older_version_wrote_without_a_role_is_mended(
    ws: Workspace, account: Account
) -> None:
    """A state database written by an older version holds the library
    sidecar's row with no role: lost unread, it is still the item's sidecar
    and comes back."""
    _offloaded(ws, account)
    db = sqlite3.connect(ws.root / "state" / "state.db")
    with db:
        changed = db.execute("update library set role = '' where path like '%.xmp'").rowcount
    db.close()
    assert changed == 1
    (ws.library / SIDECAR).unlink()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert exiftool_tags(ws.library / SIDECAR)["XMP-dc:Title"] == "Dawn", r.out
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
