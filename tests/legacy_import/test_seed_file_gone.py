"""The seed's file is another photo of the asset's name and size, then it
leaves the stores (the person tidies up the seed's folder): the run still
converges. Found by a bug hunt: while the seed's SHA-256 stood for the
asset, every run planned copies of bytes nothing held, and failed."""

from __future__ import annotations

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace
from tests.legacy_import.common import NOW, _archived, _seed_one, flipped


def test_a_seed_file_of_other_bytes_then_gone_converges(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path
) -> None:
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    local = _seed_one(ws, account, tmp_path, flipped(data))
    local.unlink()  # the seed's folder tidied away after the import

    codes = []
    for _ in range(4):
        r = ws.run("apply", "--yes", now=NOW)
        codes.append((r.code, r.out[-1500:], r.err))
    # It converges: the asset's own bytes are archived, then it leaves.
    assert codes[-1][0] == 0, codes
    assert first.asset_id not in [a.asset_id for a in account.live_assets()], codes
    assert [p.split("/")[0] for p in _archived(ws, data)] == ["library", "nas", "usb"]


def test_a_seed_file_of_the_same_bytes_then_gone_converges(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path
) -> None:
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    local = _seed_one(ws, account, tmp_path, data)
    local.unlink()
    for _ in range(3):
        r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert first.asset_id not in [a.asset_id for a in account.live_assets()]
    assert [p.split("/")[0] for p in _archived(ws, data)] == ["library", "nas", "usb"]
