"""The seed's file is another photo of the asset's name and size: the
asset's sidecar (its metadata, its AssetId) is written beside its own bytes
only. Found by a bug hunt: written beside the seed's file first, it stayed
there for ever, describing a photo that is not it."""

from __future__ import annotations

import re
from pathlib import Path

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace
from tests.legacy_import.common import NOW, _seed_one, flipped


def test_each_store_has_one_sidecar_per_asset_beside_its_own_bytes(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    _seed_one(ws, account, tmp_path, flipped(data))
    for _ in range(3):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    assert first.asset_id not in [a.asset_id for a in account.live_assets()]
    for store in ("library", "nas", "usb"):
        mine = [
            p
            for p in ws.target(store).rglob("*.xmp")
            if re.search(rf"AssetId>{first.asset_id}<", p.read_text())
        ]
        beside = {str(p.relative_to(ws.root)): Path(str(p)[: -len(".xmp")]) for p in mine}
        wrong = [x for x, media in beside.items() if media.read_bytes() != data]
        assert wrong == [], f"{store}: sidecars of {first.asset_id} beside another photo: {wrong}"
        assert len(mine) == 1, (store, sorted(beside))
