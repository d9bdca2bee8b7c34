"""Everything iCloud holds about an item survives the off-load: edits, RAW
pairs, favourites, albums, captions — through the whole tool, the real
pyicloud and the emulator, read back from disk (sidecars with exiftool)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import (
    RunningEmulator,
)
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")


def _jpeg(tmp: Path, seed: int) -> bytes:
    return make_jpeg(tmp / f"src{seed}.jpg", OLD, seed=seed).read_bytes()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    src = tmp_path / "src"
    photo = account.add_asset(
        _jpeg(src, 1),
        "IMG_0001.JPG",
        asset_date=OLD,
        favorite=True,
        caption="Beach at dawn",
        description="The first morning",
        keywords=("sea",),
        location=(48.8584, 2.2945, 35.0),
    )
    account.edit_asset(photo, _jpeg(src, 11), adjustments=b"<plist>crop 4:3</plist>")
    movie = account.add_asset(
        b"\x00\x00\x00\x18ftypqt  movie" * 300, "IMG_0002.MOV", asset_date=OLD
    )
    account.edit_asset(
        movie,
        b"\x00\x00\x00\x18ftypqt  trimmed" * 200,
        adjustments=b"<plist>trim 0.5s-2.5s</plist>",
        adjustment_type="trim",
    )
    account.add_asset(
        _jpeg(src, 3), "IMG_0003.JPG", asset_date=OLD, alternative=b"DNG raw sensor data" * 700
    )
    account.add_asset(b"MPO\xff\xd8 two eyes" * 100, "DSC_0004.MPO", asset_date=OLD)
    account.add_asset(b"II*\x00 a dng" * 100, "DSC_0005.DNG", asset_date=OLD)
    account.add_asset(b"who knows" * 100, "NOTE_0006.XYZ", asset_date=OLD)
    account.add_album("Trip 2023", [photo])
    account.add_album("Best of", [photo])
    return account


def _exiftool(path: Path) -> dict[str, Any]:
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool is needed (apt install libimage-exiftool-perl; make apt)"
    out = subprocess.run(
        [exiftool, "-j", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(out.stdout)[0]
    return found


def _resources(asset: EmulatedAsset) -> dict[str, bytes]:
    """What iCloud holds of the asset, by the name the archive gives it."""
    m = asset.master
    stem = m.filename.rsplit(".", 1)[0]
    out = {m.filename: m.original.data or b""}
    if m.alternative is not None:
        out[f"{stem}.DNG"] = m.alternative.data or b""
    if m.sidecar is not None:
        out[f"{stem}.AAE"] = m.sidecar.data or b""
    if asset.edit is not None:
        ext = ".MOV" if m.filename.endswith(".MOV") else ".JPG"
        out[f"{stem}-edited{ext}"] = asset.edit.data or b""
    return out


def _by_name(root: Path) -> dict[str, bytes]:
    return {Path(rel).name: data for rel, data in media_under(root).items()}


def test_every_resource_and_the_metadata_are_archived_before_removal(
    ws: Workspace, account: Account
) -> None:
    wanted: dict[str, bytes] = {}
    for asset in account.live_assets():
        wanted.update(_resources(asset))
    photo = next(a for a in account.live_assets() if a.master.filename == "IMG_0001.JPG")
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    # Only then: everything left iCloud.
    assert account.live_assets() == []
    assert len(account.deleted_assets()) == 6
    for store in (*TARGETS, "library"):
        root = ws.target(store)
        assert _by_name(root) == wanted, store  # byte-identical: the edit was not re-encoded
        for rel in media_under(root):
            # Sorted by when it was taken: the capture date is the mtime.
            assert (root / rel).stat().st_mtime == OLD.timestamp(), rel
        (xmp,) = root.rglob("IMG_0001.JPG.xmp")
        assert xmp.parent == next(root.rglob("IMG_0001.JPG")).parent
        tags = _exiftool(xmp)
        assert tags["XMP-dc:Title"] == "Beach at dawn"
        assert tags["XMP-dc:Description"] == "The first morning"
        assert tags["XMP-xmp:Rating"] == 5
        assert sorted(tags["XMP-lr:HierarchicalSubject"]) == [
            "Albums|Best of",
            "Albums|Trip 2023",
            "sea",
        ]
        assert tags["XMP-reconcile:AssetId"] == photo.asset_id
        assert tags["XMP-reconcile:MasterId"] == photo.master_id
        original = hashlib.sha256(photo.master.original.data or b"").hexdigest()
        assert tags["XMP-reconcile:OriginalSHA256"] == original
        assert tags["XMP-xmp:CreateDate"] == "2021:06:01 09:30:00+00:00"
        assert tags["Composite:GPSLatitudeRef"] == "North"
        # Every item has its sidecar.
        assert len(list(root.rglob("*.xmp"))) == 6
    # The census counts assets, not files: an edit, a RAW, an .AAE are their asset's.
    items = json.loads(ws.run("status", "--json", now=NOW).out)["census"]["items"]
    assert {k: n for k, n in items.items() if n} == {"removed": 6}


def test_no_removal_while_a_target_lacks_the_sidecar(
    ws: Workspace, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.filesystem import FilesystemStore

    real = FilesystemStore.put_sidecar

    def failing(self: FilesystemStore, rel_path: str, data: bytes, **kw: Any) -> Any:
        if self.id == "usb":
            raise OSError("usb refuses sidecars")
        return real(self, rel_path, data, **kw)

    monkeypatch.setattr(FilesystemStore, "put_sidecar", failing)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    # All 11 files are on both targets, but no item is whole without its sidecar.
    assert len(media_under(ws.target("usb"))) == 11
    assert account.deleted_assets() == []
    monkeypatch.setattr(FilesystemStore, "put_sidecar", real)

    # The gate itself counts the sidecar: one vanishes between plan and removal.
    import reconciler.gate as gate_module

    real_gate = gate_module.RemovalGate.check

    def losing_gate(self: gate_module.RemovalGate, a: Any, side: Any = None) -> list[str]:
        for xmp in ws.target("usb").rglob("IMG_0003.JPG.xmp"):
            xmp.unlink()
        return real_gate(self, a, side)

    monkeypatch.setattr(gate_module.RemovalGate, "check", losing_gate)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 3, r.out
    assert "refused remove-from-source icloud:IMG_0003.JPG: IMG_0003.JPG.xmp: 1 of 2" in r.out
    assert [a.master.filename for a in account.live_assets()] == ["IMG_0003.JPG"]
    monkeypatch.setattr(gate_module.RemovalGate, "check", real_gate)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.deleted_assets()) == 6


def test_an_edit_made_after_archiving_is_archived_before_removal(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    raw = next(a for a in account.live_assets() if a.master.filename == "IMG_0003.JPG")
    edit = _jpeg(tmp_path / "late", 33)
    account.edit_asset(raw, edit, adjustments=b"<plist>late: black and white</plist>")
    ws.removal(on=True)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert raw.deleted
    for store in TARGETS:
        held = _by_name(ws.target(store))
        assert held["IMG_0003-edited.JPG"] == edit
        assert held["IMG_0003.AAE"] == raw.master.sidecar.data  # type: ignore[union-attr]


def test_a_favourite_added_after_archiving_rewrites_only_the_sidecars(
    ws: Workspace, account: Account
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    stores = (*TARGETS, "library")

    def media_stats() -> dict[str, tuple[int, int]]:
        out = {}
        for store in stores:
            for rel in media_under(ws.target(store)):
                st = (ws.target(store) / rel).stat()
                out[f"{store}/{rel}"] = (st.st_ino, st.st_mtime_ns)
        return out

    before = media_stats()
    movie = next(a for a in account.live_assets() if a.master.filename == "IMG_0002.MOV")
    account.update_asset(movie, {"isFavorite": 1})
    plan = ws.run("plan", "--detail", now=NOW).out
    assert plan.count("write-sidecar") == 3, plan
    assert "copy-to-target" not in plan and "download" not in plan
    assert ws.run("apply", "--yes", now=NOW).code == 0
    for store in stores:
        (xmp,) = ws.target(store).rglob("IMG_0002.MOV.xmp")
        assert _exiftool(xmp)["XMP-xmp:Rating"] == 5
    assert media_stats() == before  # no media file rewritten
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_lost_state_db_downloads_and_copies_nothing_the_sidecars_prove(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    for db in (ws.root / "state").glob("*.db*"):
        db.unlink()
    emu.server.inject("download", status=500, times=None)  # nothing may be downloaded
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0, r.out
    ws.removal(on=True)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.deleted_assets()) == 6


def test_a_nas_filled_by_another_tool_is_proven_by_hash_and_not_copied_again(
    ws: Workspace, account: Account
) -> None:
    # icloudpd's default layout is ours: YYYY/MM/DD/<name>.
    for asset in account.live_assets():
        for name, data in _resources(asset).items():
            for store in TARGETS:
                path = ws.target(store) / "2021/06/01" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    before = {store: media_under(ws.target(store)) for store in TARGETS}
    plan = ws.run("plan", "--detail", now=NOW).out
    assert "copy-to-target" not in plan, plan
    assert plan.count("+ download") == 11  # proven once, by hash
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert {store: media_under(ws.target(store)) for store in TARGETS} == before
    # Proven: the next run removes them, still without a copy.
    plan = ws.run("plan", now=NOW).out
    assert "copy-to-target" not in plan and "download" not in plan, plan
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.deleted_assets()) == 6
    assert {store: media_under(ws.target(store)) for store in TARGETS} == before


def test_duplicates_sharing_an_original_keep_a_sidecar_each_and_converge(
    ws: Workspace, account: Account
) -> None:
    photo = next(a for a in account.live_assets() if a.master.filename == "IMG_0001.JPG")
    twin = account.add_duplicate(photo)
    account.update_asset(twin, {"isFavorite": 0})
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0  # no tug of war
    for store in (*TARGETS, "library"):
        xmps = sorted(ws.target(store).rglob("IMG_0001.JPG*.xmp"))
        assert len(xmps) == 2, xmps
        ratings = sorted(_exiftool(x)["XMP-xmp:Rating"] for x in xmps)
        assert ratings == [0, 5]
    ws.removal(on=True)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []


def test_a_saved_plan_with_sidecars_applies(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    assert '"write-sidecar"' in saved.read_text()
    r = ws.run("apply", str(saved), "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(account.deleted_assets()) == 6
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
