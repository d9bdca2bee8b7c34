"""Two targets that are two folders of one phone are one backup (the whole
tool, real Syncthing): nothing leaves its source on their two copies."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, Run, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)


def _second_folder(tmp_path: Path, pair: SyncthingPair) -> Path:
    """A second folder shared between this machine and the same phone."""
    here, there = tmp_path / "syncthing" / "local-2", tmp_path / "syncthing" / "phone-2"
    here.mkdir()
    there.mkdir()
    with pair.local.client() as lc, pair.phone.client() as pc:
        lc.add_folder(
            folder_id="pixel-2",
            path=str(here),
            type="sendonly",
            device_ids=(pair.phone.device_id,),
            rescan_interval_s=86400,
        )
        pc.add_folder(
            folder_id="pixel-2",
            path=str(there),
            type="receiveonly",
            device_ids=(pair.local.device_id,),
            rescan_interval_s=86400,
            ignore_delete=True,
        )
    return here


def _two_folders(tmp_path: Path, pair: SyncthingPair, options: str) -> Workspace:
    """Targets ``a`` and ``b``: the pair's folder and a second one, one phone."""
    second = _second_folder(tmp_path, pair)
    targets = ""
    for tid, path, folder in (("a", pair.local_folder, pair.folder_id), ("b", second, "pixel-2")):
        targets += (
            f'[targets.{tid}]\nkind = "syncthing"\npath = "{path}"\nfolder_id = "{folder}"\n'
            f'device_id = "{pair.phone.device_id}"\nurl = "{pair.local.url}"\n'
            "liveness_timeout_s = 10\n" + options
        )
    ws = make_workspace(
        tmp_path / "ws", removal=True, targets=targets, extra=KEEP_ORIGINALS, stores=("library",)
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    return ws


def _until_both_confirmed(ws: Workspace) -> Run:
    """Apply until both folders hold the photo (the removal is then decided)."""
    deadline = time.monotonic() + 30
    while True:
        r = ws.run("apply", "--yes", now=NOW)
        if "to confirm" not in r.out and "verified copies" in r.out:
            return r
        assert time.monotonic() < deadline, r.out + r.err
        time.sleep(0.3)


def test_two_folders_of_one_phone_are_not_two_backups(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _two_folders(tmp_path, pair, "")
    r = _until_both_confirmed(ws)
    again = ws.run("apply", "--yes", now=NOW)
    # One lost or reset phone loses both: the photo stays in its source.
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + again.out
    assert "removed from incoming" not in r.out + again.out
    assert "1 of 2 verified copies" in again.out, again.out


def test_two_trusted_conduits_on_one_phone_are_one_google_photos(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws = _two_folders(tmp_path, pair, 'role = "conduit"\ncount_as_copy = true\n')
    r = _until_both_confirmed(ws)
    again = ws.run("apply", "--yes", now=NOW)
    # Both trusted deliveries are one Google Photos account on one phone.
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out + again.out
    assert "removed from incoming" not in r.out + again.out
    assert "1 of 2 verified copies" in again.out, again.out


def test_validate_says_two_targets_are_one_phone(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = _two_folders(tmp_path, pair, "")
    out = ws.run("validate").out
    assert (
        "targets.a: not a backup: on the same phone as b: together they count as one backup "
        "(a lost or reset phone loses every folder on it)"
    ) in out, out
