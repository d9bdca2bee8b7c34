"""The capture time zone iCloud holds for an asset (``timeZoneOffset``: where
the photo was taken, or what "Adjust Date & Time" set) survives the
asset's removal from iCloud, in its sidecar: the time on the person's clock
with its offset, as exiftool reads it. A zone changed after archiving is
written before the asset leaves; files stay filed by their UTC date; an
upgrade rewrites the sidecars of assets with a zone, and no other. The
whole tool, the real pyicloud and the emulator."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from providers.icloud.emulator import Account, EmulatedAsset
from reconciler.state import StateDB
from tests.helpers import Workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
NEW_YORK = -4 * 3600
PARIS = 2 * 3600
#: A screenshot taken at 23:30 on 1 June 2021 in New York (no EXIF at all):
#: 03:30 on 2 June in UTC.
TAKEN = datetime(2021, 6, 1, 23, 30, tzinfo=timezone(timedelta(seconds=NEW_YORK)))
STORES = ("nas", "usb", "library")
DATES = ("XMP-xmp:CreateDate", "XMP-photoshop:DateCreated", "XMP-exif:DateTimeOriginal")


def _png(path: Path, seed: int) -> bytes:
    Image.effect_noise((32, 32), 40 + seed).convert("RGB").save(path)
    return path.read_bytes()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    account.add_asset(
        _png(tmp_path / "1.png", 1), "IMG_0001.PNG", asset_date=TAKEN, time_zone_offset=NEW_YORK
    )
    return account


def _shot(account: Account, name: str = "IMG_0001.PNG") -> EmulatedAsset:
    return next(
        a for a in account.zones["PrimarySync"].assets.values() if a.master.filename == name
    )


def _sidecar_dates(ws: Workspace, name: str = "IMG_0001.PNG") -> dict[str, tuple[str, ...]]:
    """The capture date fields (``DATES``) of the item's sidecar on every
    store, as exiftool reads them."""
    out = {}
    for store in STORES:
        (xmp,) = ws.target(store).rglob(f"{name}.xmp")
        read = subprocess.run(
            ["exiftool", "-j", "-G1", *(f"-{tag}" for tag in DATES), str(xmp)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(read.stdout)[0]
        out[store] = tuple(found.get(tag) for tag in DATES)
    return out


def _everywhere(date: str) -> dict[str, tuple[str, ...]]:
    return dict.fromkeys(STORES, (date,) * len(DATES))


def test_the_capture_time_zone_survives_the_offload(ws: Workspace, account: Account) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _shot(account).deleted
    assert _sidecar_dates(ws) == _everywhere("2021:06:01 23:30:00-04:00")
    # Filed by the moment's UTC date, as ever: the zone moves no file.
    for store in STORES:
        (png,) = ws.target(store).rglob("IMG_0001.PNG")
        assert png.relative_to(ws.target(store)).as_posix().endswith("2021/06/02/IMG_0001.PNG")


def test_a_time_zone_adjusted_after_archiving_is_written_before_removal(
    ws: Workspace, account: Account
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    shot = _shot(account)
    # "Adjust Date & Time": taken in Paris after all; the same moment.
    account.adjust_date(shot, time_zone_offset=PARIS)
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert shot.deleted
    assert _sidecar_dates(ws) == _everywhere("2021:06:02 05:30:00+02:00")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_an_upgrade_rewrites_only_the_sidecars_of_zoned_assets(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """What an older release left: sidecars without zones, and a remembered
    listing whose rows have no ``utc_offset``. The next run lists afresh
    (those rows are of another layout), so a zone no change feed will name
    again is still read."""
    zoned = _shot(account)
    plain = account.add_asset(
        _png(tmp_path / "2.png", 2), "IMG_0002.PNG", asset_date=TAKEN, time_zone_offset=None
    )
    zoned.time_zone_offset = None  # as the older release saw it: no zone read
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    _drop_utc_offset_from_the_remembered_listing(ws)
    zoned.time_zone_offset = NEW_YORK  # it always had it; nothing changed since
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in ws.root.rglob("IMG_0002.PNG.xmp")}
    assert len(before) == len(STORES)
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert zoned.deleted and plain.deleted
    assert _sidecar_dates(ws) == _everywhere("2021:06:01 23:30:00-04:00")
    assert _sidecar_dates(ws, "IMG_0002.PNG") == _everywhere("2021:06:02 03:30:00+00:00")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def _drop_utc_offset_from_the_remembered_listing(ws: Workspace) -> None:
    """Each row's metadata as an older release wrote it: ``utc_offset``
    (after ``altitude``, the 10th of its fields) was not there."""
    db = StateDB.in_dir(ws.root / "state")
    try:
        rows = db.icloud_listing("icloud")
        assert len(rows) == 2
        with db.transaction():
            for row in rows:
                assert row.item is not None
                encoded = json.loads(row.item)
                assert encoded[4][9] == 0
                del encoded[4][9]
                db.conn.execute(
                    "update icloud_listing set item = ? where asset_id = ?",
                    [json.dumps(encoded, separators=(",", ":")), row.asset_id],
                )
    finally:
        db.close()
