"""An asset edited again in iCloud after it was archived (a new rendered edit
and new adjustment data under the same refs): its old hashes no longer
count, the new files are downloaded and archived, and only then may the
asset leave iCloud. Through the whole tool, the real pyicloud and the
emulator."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.listing import decode
from reconciler import sidecar
from reconciler.state import StateDB
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")
AAE_V1 = b"<plist>v1: crop 4:3</plist>"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    photo = account.add_asset(_jpeg(tmp_path, 1), "IMG_0001.JPG", asset_date=OLD)
    account.edit_asset(photo, _jpeg(tmp_path, 2), adjustments=AAE_V1)
    return account


def _jpeg(tmp: Path, seed: int, size: int = 64) -> bytes:
    return make_jpeg(tmp / f"src{seed}.jpg", OLD, seed=seed, size=size).read_bytes()


def _archived_then_edited_again(
    ws: Workspace, account: Account, edit: bytes, aae: bytes
) -> EmulatedAsset:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    (photo,) = account.live_assets()
    account.edit_asset(photo, edit, adjustments=aae)
    ws.removal(on=True)
    return photo


def _held(ws: Workspace, store: str) -> set[bytes]:
    return set(media_under(ws.target(store)).values())


def _assert_safe(ws: Workspace, photo: EmulatedAsset, *wanted: bytes) -> None:
    """The invariant: gone from iCloud only with every file on both targets."""
    if photo.deleted:
        for store in TARGETS:
            held = _held(ws, store)
            for data in wanted:
                assert data in held, f"removed while {store} lacks {data[:20]!r}"


def _sidecar_files(ws: Workspace, store: str) -> dict[str, sidecar.SidecarFile]:
    (xmp,) = ws.target(store).rglob("IMG_0001.JPG.xmp")
    found = sidecar.parse(xmp.read_bytes())
    assert found is not None
    return {f.ref: f for f in found.files}


def test_an_asset_edited_again_is_archived_again_before_it_leaves(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    edit, aae = _jpeg(tmp_path, 3, size=96), b"<plist>v2: black and white, longer</plist>"
    photo = _archived_then_edited_again(ws, account, edit, aae)
    plan = ws.run("plan", "--detail", now=NOW).out
    assert plan.count("+ download") == 2, plan  # the new edit and its adjustment data
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    for store in (*TARGETS, "library"):
        held = _held(ws, store)
        assert {edit, aae, AAE_V1} <= held, store  # the first edit stays archived too
        # The sidecar records the new files' own hashes.
        files = _sidecar_files(ws, store)
        assert files["edited"].sha256 == hashlib.sha256(edit).hexdigest()
        assert files["sidecar"].sha256 == hashlib.sha256(aae).hexdigest()
        assert (files["edited"].size, files["sidecar"].size) == (len(edit), len(aae))
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_the_asset_stays_while_its_new_edit_cannot_be_downloaded(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    edit, aae = _jpeg(tmp_path, 3, size=96), b"<plist>v2: black and white, longer</plist>"
    photo = _archived_then_edited_again(ws, account, edit, aae)
    emu.server.inject("download", status=500, times=None)
    ws.run("apply", "--yes", now=NOW)
    assert not photo.deleted
    for store in TARGETS:
        # No sidecar pairs the new file with the old hash (a lost state DB
        # would trust it).
        files = _sidecar_files(ws, store)
        assert files["sidecar"].size == len(AAE_V1)
        assert files["edited"].size != len(edit)
    emu.server.clear_faults()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert photo.deleted
    _assert_safe(ws, photo, edit, aae)


def test_new_adjustment_data_of_the_same_size_is_told_by_its_fingerprint(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """Only the adjustment data changed, to as many bytes as before: the
    rendered edit is the same, the fingerprint alone tells them apart."""
    aae = b"<plist>v2: mono 4:3</plist>"
    assert len(aae) == len(AAE_V1)
    (photo,) = account.live_assets()
    assert photo.edit is not None and photo.edit.data is not None
    edit = photo.edit.data
    _archived_then_edited_again(ws, account, edit, aae)
    plan = ws.run("plan", "--detail", now=NOW).out
    assert plan.count("+ download") == 1 and "IMG_0001.AAE" in plan, plan
    for _ in range(3):
        ws.run("apply", "--yes", now=NOW)
        _assert_safe(ws, photo, edit, aae)
        if photo.deleted:
            break
    assert photo.deleted
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_rows_from_before_fingerprints_keep_originals_and_read_edits_again(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    db = StateDB.in_dir(ws.root / "state")
    try:
        db.db.execute("update source_files set fingerprint = null")
    finally:
        db.close()
    # An original is still known by its size; an edit and its adjustment
    # data, which the person may re-make at the very same length, are read
    # once more, and then known by their fingerprints.
    again = ws.run("plan", "--detail", now=NOW).out
    assert again.count("+ download") == 2 and "-edited.JPG" in again and ".AAE" in again, again
    assert ws.run("apply", "--yes", now=NOW).code == 0
    emu.server.inject("download", status=500, times=None)  # nothing more may be downloaded
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    emu.server.clear_faults()
    (photo,) = account.live_assets()
    edit, aae = _jpeg(tmp_path, 3, size=96), b"<plist>v2: black and white, longer</plist>"
    account.edit_asset(photo, edit, adjustments=aae)
    ws.removal(on=True)
    assert ws.run("plan", "--detail", now=NOW).out.count("+ download") == 2
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert photo.deleted
    _assert_safe(ws, photo, edit, aae)


@pytest.mark.parametrize("lost_db", [False, True], ids=["state-db", "lost-state-db"])
def test_a_sidecar_pairing_the_new_edit_with_the_old_hash_is_not_trusted(
    ws: Workspace, account: Account, tmp_path: Path, lost_db: bool
) -> None:
    """An older reconcile rewrote the sidecars of an asset edited again
    with the new sizes and fingerprints beside the old hashes: neither the
    state DB's rows nor a recovery from the sidecars may take those."""
    edit, aae = _jpeg(tmp_path, 3, size=96), b"<plist>v2: black and white, longer</plist>"
    photo = _archived_then_edited_again(ws, account, edit, aae)
    ws.removal(on=False)
    assert ws.run("plan", now=NOW).code == 0  # remembers the new listing
    db = StateDB.in_dir(ws.root / "state")
    try:
        (row,) = db.icloud_listing("icloud")
    finally:
        db.close()
    assert row.item is not None
    now_listed = decode("icloud", row.item)
    old = {ref: f.sha256 for ref, f in _sidecar_files(ws, "nas").items()}
    forged = sidecar.render(now_listed, old)
    for store in (*TARGETS, "library"):
        (xmp,) = ws.target(store).rglob("IMG_0001.JPG.xmp")
        xmp.write_bytes(forged)
    if lost_db:
        for f in (ws.root / "state").glob("*.db*"):
            f.unlink()
    ws.removal(on=True)
    assert ws.run("plan", "--detail", now=NOW).out.count("+ download") >= 2
    ws.run("apply", "--yes", now=NOW)
    _assert_safe(ws, photo, edit, aae)
    assert photo.deleted
    for store in TARGETS:
        files = _sidecar_files(ws, store)
        assert files["edited"].sha256 == hashlib.sha256(edit).hexdigest()
