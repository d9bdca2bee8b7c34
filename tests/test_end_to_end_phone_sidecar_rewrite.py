"""A sidecar rewritten in the phone's staging folder with its size and mtime
kept (a favourite set: Rating 0 -> 5) was never seen as changed by
Syncthing, which tells changes by size and mtime alone; and a rewrite whose
scan failed left the index on the old bytes. Either way the phone's copy of
the old sidecar counted as the new one, and the asset left iCloud with one
real copy of its metadata. Real Syncthing on loopback, the iCloud emulator."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, phone_files

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "src" / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, favorite=False)
    return account


def _ws(
    tmp_path: Path, emu: RunningEmulator, pair: SyncthingPair, mp: pytest.MonkeyPatch
) -> Workspace:
    root = tmp_path / "ws"
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
    targets = textwrap.dedent(f"""
        [targets.nas]
        kind = "filesystem"
        path = "nas"
        same_disk_ok = true
        [targets.phone]
        kind = "syncthing"
        path = "{pair.local_folder}"
        folder_id = "{pair.folder_id}"
        device_id = "{pair.phone.device_id}"
        url = "{pair.local.url}"
        liveness_timeout_s = 10
        """)
    ws = make_workspace(
        root,
        removal=False,
        sources=icloud,
        targets=targets,
        extra="[apply]\nretries = 2\nbackoff_base_s = 0\n" + KEEP_ORIGINALS,
        stores=("library", "nas"),
    )
    seed_trusted_session(emu, root / "state" / "icloud-session")
    mp.setenv("ICLOUD_USERNAME", emu.username)
    mp.delenv("ICLOUD_PASSWORD", raising=False)
    return ws


def _converge(ws: Workspace) -> str:
    out = ""
    for _ in range(20):
        r = ws.run("apply", "--yes", now=NOW)
        out = r.out + r.err
        p = ws.run("plan", "--detailed-exitcode", now=NOW)
        if p.code == 0:
            return p.out
        time.sleep(0.3)
    raise AssertionError(out + p.out)


def _phone_xmp(pair: SyncthingPair) -> str:
    (text,) = [v.decode() for k, v in phone_files(pair).items() if k.endswith(".xmp")]
    return text


def _removed_holding_the_new_sidecar(ws: Workspace, asset: object, pair: SyncthingPair) -> None:
    """Apply until the asset leaves iCloud (the phone receives the new
    sidecar meanwhile); at that moment the phone holds it."""
    for _ in range(30):
        ws.run("apply", "--yes", now=NOW)
        if asset.deleted:  # type: ignore[attr-defined]
            break
        time.sleep(0.3)
    assert asset.deleted, "never removed"  # type: ignore[attr-defined]
    assert "<xmp:Rating>5</xmp:Rating>" in _phone_xmp(pair), (
        "removed from iCloud counting the phone for a sidecar it does not hold"
    )


def test_a_same_size_sidecar_rewrite_reaches_the_phone_or_does_not_count(
    tmp_path: Path,
    emu: RunningEmulator,
    account: Account,
    pair: SyncthingPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = _ws(tmp_path, emu, pair, monkeypatch)
    _converge(ws)
    assert "<xmp:Rating>0</xmp:Rating>" in _phone_xmp(pair)
    (asset,) = account.live_assets()
    account.update_asset(asset, {"isFavorite": 1})
    _converge(ws)  # the tool says it is done: every store has the new sidecar
    (nas_xmp,) = ws.target("nas").rglob("*.xmp")
    assert "<xmp:Rating>5</xmp:Rating>" in nas_xmp.read_text()
    (staged,) = pair.local_folder.rglob("*.xmp")
    assert "<xmp:Rating>5</xmp:Rating>" in staged.read_text()
    # give Syncthing every chance
    time.sleep(2)
    assert "<xmp:Rating>5</xmp:Rating>" in _phone_xmp(pair), (
        "plan says converged but the phone still holds the old sidecar"
    )


def test_removal_counts_the_phone_for_a_sidecar_it_does_not_hold(
    tmp_path: Path,
    emu: RunningEmulator,
    account: Account,
    pair: SyncthingPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = _ws(tmp_path, emu, pair, monkeypatch)
    _converge(ws)
    (asset,) = account.live_assets()
    account.update_asset(asset, {"isFavorite": 1})
    ws.removal(on=True)
    _removed_holding_the_new_sidecar(ws, asset, pair)


def test_a_sidecar_rewrite_whose_scan_failed_does_not_count_on_the_phone(
    tmp_path: Path,
    emu: RunningEmulator,
    account: Account,
    pair: SyncthingPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The size changes this time (hidden: "False" -> "True"), but
    Syncthing's scan of the rewritten sidecar fails (put_sidecar lets it
    pass: Syncthing's own rescan comes later): its index still says the old
    sidecar, held by the phone, which counted as the new one. The phone's
    answer counts only while the index describes the file as it is here."""
    from providers.syncthing.client import SyncthingClient, SyncthingUnreachableError

    ws = _ws(tmp_path, emu, pair, monkeypatch)
    _converge(ws)
    (asset,) = account.live_assets()
    account.update_asset(asset, {"isFavorite": 1, "isHidden": 1})
    real = SyncthingClient.scan

    def failing(self: SyncthingClient, folder: str, sub: str | None = None) -> None:
        if sub and sub.endswith(".xmp"):
            raise SyncthingUnreachableError("timed out", provider="syncthing", transient=True)
        return real(self, folder, sub)

    monkeypatch.setattr(SyncthingClient, "scan", failing)
    ws.run("apply", "--yes", now=NOW)
    monkeypatch.setattr(SyncthingClient, "scan", real)
    ws.removal(on=True)
    _removed_holding_the_new_sidecar(ws, asset, pair)
