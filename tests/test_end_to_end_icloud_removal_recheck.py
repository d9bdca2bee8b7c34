"""The removal re-reads the asset and compares everything its sidecar records,
not only the files and Photos metadata: a capture date adjusted in Photos
("Adjust Date & Time") or an original renamed after the listing stops the
removal until the next run has rewritten the sidecar. The whole tool, the
real pyicloud and the emulator; sidecars read back with exiftool."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from tests.helpers import Workspace, during_icloud_removal, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
ADJUSTED = datetime(2018, 7, 4, 18, 0, tzinfo=UTC)
STORES = ("nas", "usb", "library")


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def _photo(account: Account) -> EmulatedAsset:
    (asset,) = account.zones["PrimarySync"].assets.values()
    return asset


def _sidecar_dates(ws: Workspace) -> dict[str, str]:
    """``XMP-xmp:CreateDate`` of the item's sidecar on every store, as exiftool reads it."""
    out = {}
    for store in STORES:
        (xmp,) = ws.target(store).rglob("IMG_0001.JPG*.xmp")
        read = subprocess.run(
            ["exiftool", "-j", "-XMP-xmp:CreateDate", str(xmp)],
            capture_output=True,
            text=True,
            check=True,
        )
        out[store] = json.loads(read.stdout)[0]["CreateDate"]
    return out


def test_a_capture_date_adjusted_during_the_run_waits_for_the_sidecar(
    ws: Workspace, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = _photo(account)

    def adjust_date() -> None:
        with account.lock:
            photo.asset_date_ms = int(ADJUSTED.timestamp() * 1000)
            account.zones["PrimarySync"].invalidate()
            account.touch(photo)

    pending = during_icloud_removal(monkeypatch, adjust_date)
    r = ws.run("apply", "--yes", now=NOW)
    assert pending == [], "the change was not made"
    assert not photo.deleted, r.out
    assert r.code == 1, r.out + r.err
    assert "its metadata changed since it was archived (capture date;" in r.out, r.out
    # The next run rewrites every sidecar with the adjusted date, then removes.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    assert _sidecar_dates(ws) == dict.fromkeys(STORES, "2018:07:04 18:00:00+00:00")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_an_original_renamed_during_the_run_waits_for_the_sidecar(
    ws: Workspace, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = _photo(account)

    def rename() -> None:
        with account.lock:
            photo.master.filename = "Beach.JPG"
            account.zones["PrimarySync"].invalidate()
            account.record_change(account.zones["PrimarySync"], photo.master_id)
            account.touch(photo)

    pending = during_icloud_removal(monkeypatch, rename)
    r = ws.run("apply", "--yes", now=NOW)
    assert pending == [], "the change was not made"
    assert not photo.deleted, r.out
    assert "original changed since it was archived; not removed" in r.out, r.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    # The sidecar stays beside the original as archived, and records its new name.
    for store, text in ws.sidecars("IMG_0001.JPG", STORES).items():
        assert "|Beach.JPG</rdf:li>" in text, store
