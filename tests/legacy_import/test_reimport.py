"""README: "Importing again replaces the rows." Rows of the first import
that the second lacks are gone too (they stayed, with their counts). Found
by a bug hunt."""

from __future__ import annotations

from pathlib import Path

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler.state import StateDB
from tests.helpers import Workspace
from tests.legacy_import.common import planned, seed_media_db


def test_importing_again_replaces_the_rows(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    first, second = account.live_assets()
    data = first.master.original.data or b""
    local = ws.library / "Photos" / "IMG_0001.JPG"
    local.parent.mkdir(parents=True)
    local.write_bytes(data)
    wrong = seed_media_db(  # another seed's media.db, imported by mistake
        tmp_path / "wrong.db",
        [
            {
                "filename": "IMG_0001.JPG",
                "icloud_id": first.asset_id,
                "local_path": str(local),
                "initial_size": len(data),
                "current_size": len(data),
            },
            {"filename": "IMG_0009.JPG", "icloud_id": "X", "deleted_icloud": 1},
        ],
    )
    assert ws.run("import-legacy", str(wrong)).code == 0
    right = seed_media_db(
        tmp_path / "right.db", [{"filename": "IMG_0002.JPG", "icloud_id": second.asset_id}]
    )
    assert ws.run("import-legacy", str(right)).code == 0
    db = StateDB.in_dir(ws.root / "state")
    try:
        assert db.legacy_counts() == {"rows": 1, "adopted": 0, "deleted_from_icloud": 0}
    finally:
        db.close()
    assert ("download", "", "icloud:IMG_0001.JPG") in planned(ws)
