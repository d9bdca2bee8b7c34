"""Each file of an iCloud item is named for its own type: the RAW of a
RAW+JPEG pair whose type pyicloud's table does not know (a Samsung SRW) is
archived as a RAW, never under the JPEG's extension. The whole tool, the
real pyicloud and the emulator; what every store holds read back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")
#: A Samsung NX RAW (SRW: a TIFF container), as Photos tags it.
SRW = b"II*\x00\x08\x00\x00\x00 samsung raw sensor data" * 300


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    jpeg = make_jpeg(tmp_path / "src" / "1.jpg", OLD, seed=1).read_bytes()
    account.add_asset(
        jpeg,
        "SAM_0001.JPG",
        asset_date=OLD,
        alternative=SRW,
        alternative_uti="com.samsung.raw-image",
    )
    return account


def _held(ws: Workspace, target: str) -> dict[str, bytes]:
    return {Path(k).name: v for k, v in media_under(ws.target(target)).items()}


def test_a_raw_alternative_is_archived_under_its_own_extension(
    ws: Workspace, account: Account
) -> None:
    (asset,) = account.live_assets()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for t in TARGETS:
        assert _held(ws, t) == {"SAM_0001.JPG": asset.master.original.data, "SAM_0001.SRW": SRW}
    assert account.live_assets() == []  # archived whole, then removed
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_listing_remembered_with_older_names_is_read_afresh(
    ws: Workspace, account: Account
) -> None:
    """A listing an older version remembered names the RAW as it did
    (``SAM_0001-alternative.JPG``): read by changes, the item would keep
    that name while ``remove`` sees the new one, and refuse it on every run."""
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    state = sqlite3.connect(ws.root / "state" / "state.db")
    ((asset_id, text),) = state.execute("select asset_id, item from icloud_listing").fetchall()
    row = json.loads(text)[:6]  # without the naming version
    for f in row[3]:
        if f[2] == "alternative":
            f[0] = "SAM_0001-alternative.JPG"
    state.execute(
        "update icloud_listing set item = ? where asset_id = ?", [json.dumps(row), asset_id]
    )
    state.commit()
    state.close()
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []
    assert (
        "full listing: the remembered listing cannot be read"
        in (ws.root / "state" / "reconcile.log").read_text()
    )
