"""An item that left iCloud lives on in the library, and each of its files
stays what it was in the item: the rendered edit, a RAW alternative and the
edit's adjustment data are never encoded for a tier (only the original is),
and its XMP sidecar is kept on every target as its files are. Through the
whole tool, the real pyicloud and the emulator: the plan right after the
apply that off-loads the item is converged, with the state DB kept, lost, or
from before the library remembered roles."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from reconciler import sidecar
from reconciler.layout import dated_path
from tests.helpers import Workspace, files_under, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
TARGETS = ("nas", "usb")
AAE = b"<plist>crop 4:3</plist>"
#: A Samsung NX RAW (a TIFF container), as Photos tags it.
SRW = b"II*\x00\x08\x00\x00\x00 samsung raw sensor data" * 300
SIDECAR = dated_path(OLD, "IMG_0001.JPG") + sidecar.SUFFIX
THEIRS = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><darktable:history/></x:xmpmeta>'


def _jpeg(tmp: Path, seed: int) -> bytes:
    return make_jpeg(tmp / f"src{seed}.jpg", OLD, seed=seed, size=256).read_bytes()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """An edited photo (its rendered edit and adjustment data), and a JPEG
    with its RAW alternative: both old enough to leave iCloud at once."""
    account = Account()
    photo = account.add_asset(_jpeg(tmp_path, 1), "IMG_0001.JPG", asset_date=OLD, caption="Dawn")
    account.edit_asset(photo, _jpeg(tmp_path, 2), adjustments=AAE)
    account.add_asset(
        _jpeg(tmp_path, 3),
        "SAM_0001.JPG",
        asset_date=OLD,
        alternative=SRW,
        alternative_uti="com.samsung.raw-image",
    )
    return account


def _compressing(ws: Workspace) -> None:
    ws.config.write_text(ws.config.read_text().replace('keep = "original"', "jpeg_quality = 60"))


def _offloaded(ws: Workspace, account: Account) -> dict[str, bytes]:
    """Apply once (import, archive, encode the originals, off-load): the
    library's files by name, as they are then."""
    kept = {a.edit.data for a in account.live_assets() if a.edit is not None}
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []
    lib = {Path(k).name: v for k, v in media_under(ws.library).items()}
    assert lib["IMG_0001-edited.JPG"] in kept  # the edit as the person made it
    return lib


def _converged(ws: Workspace) -> None:
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out + p.err


def _lose_state_db(ws: Workspace) -> None:
    for f in (ws.root / "state").glob("state.db*"):
        f.unlink()


def _unchanged_by_another_apply(ws: Workspace, lib: dict[str, bytes]) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "encode" not in r.out, r.out
    now = {Path(k).name: v for k, v in media_under(ws.library).items()}
    for name in ("IMG_0001-edited.JPG", "IMG_0001.AAE"):
        assert now[name] == lib[name], f"{name} was changed"
    assert SRW in now.values()  # the RAW, byte for byte


def test_the_plan_after_the_offload_encodes_neither_an_edit_nor_a_raw(
    ws: Workspace, account: Account
) -> None:
    _compressing(ws)
    lib = _offloaded(ws, account)
    _converged(ws)
    _unchanged_by_another_apply(ws, lib)


def test_a_lost_state_db_still_never_encodes_the_edit(ws: Workspace, account: Account) -> None:
    """The library's own sidecars say what each file of their item is
    (``reconcile:Files``): a fresh state DB learns it from them."""
    _compressing(ws)
    lib = _offloaded(ws, account)
    _lose_state_db(ws)
    p = ws.run("plan", now=NOW)
    assert "encode" not in p.out, p.out
    _unchanged_by_another_apply(ws, lib)


def test_a_state_db_from_before_roles_learns_them_from_the_librarys_sidecars(
    ws: Workspace, account: Account
) -> None:
    """An older reconcile off-loaded the items: no row says what a file is
    (schema 14 had no roles). The upgrade reads the library's sidecars."""
    _compressing(ws)
    lib = _offloaded(ws, account)
    with sqlite3.connect(ws.root / "state" / "state.db") as conn:
        conn.execute("alter table library drop column role")
        conn.execute("update meta set value = '14' where key = 'schema_version'")
    conn.close()
    _converged(ws)
    _unchanged_by_another_apply(ws, lib)


def _sidecars_on(ws: Workspace, store: str) -> dict[str, bytes]:
    return {p: b for p, b in files_under(ws.target(store)).items() if p.endswith(".xmp")}


def test_a_sidecar_lost_on_a_target_is_written_again_from_the_library(
    ws: Workspace, account: Account
) -> None:
    """The person deleted the usb copies of the edited photo's sidecar and
    adjustment data (or that disk was replaced): the next apply puts both
    back, the sidecar as the library holds it, and the plan converges."""
    _offloaded(ws, account)
    ours = (ws.library / SIDECAR).read_bytes()
    before = _sidecars_on(ws, "usb")
    assert before[SIDECAR] == ours
    for p in ws.target("usb").rglob("*"):
        if p.suffix in (".xmp", ".AAE"):
            p.unlink()
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "its item lives only in the library" in p.out, p.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _sidecars_on(ws, "usb") == before
    assert (ws.target("usb") / dated_path(OLD, "IMG_0001.AAE")).read_bytes() == AAE
    _converged(ws)


def test_an_older_sidecar_of_the_item_on_a_target_is_rewritten_in_place(
    ws: Workspace, account: Account
) -> None:
    """usb holds another version of the item's own sidecar (an old disk put
    back): it is rewritten where it is, never joined by a second one."""
    _offloaded(ws, account)
    ours = (ws.library / SIDECAR).read_bytes()
    older = ours.replace(b"Dawn", b"Dusk")
    assert sidecar.owner(older) == sidecar.owner(ours)
    (ws.target("usb") / SIDECAR).write_bytes(older)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    on_usb = _sidecars_on(ws, "usb")
    assert on_usb == _sidecars_on(ws, "nas") and on_usb[SIDECAR] == ours
    _converged(ws)


def test_another_programs_xmp_at_the_sidecars_name_is_kept(ws: Workspace, account: Account) -> None:
    """Our sidecar lost on usb, and darktable's file put at its very name:
    theirs stays byte for byte, ours goes beside it under the item's tag."""
    _offloaded(ws, account)
    ours = (ws.library / SIDECAR).read_bytes()
    (ws.target("usb") / SIDECAR).write_bytes(THEIRS)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    on_usb = _sidecars_on(ws, "usb")
    assert on_usb.pop(SIDECAR) == THEIRS
    [(tagged, data)] = [(p, b) for p, b in on_usb.items() if p.startswith(SIDECAR[:-4])]
    assert data == ours and tagged.endswith(sidecar.SUFFIX)
    _converged(ws)


def test_of_two_sidecars_of_one_item_in_the_library_the_plain_one_is_kept(
    ws: Workspace, account: Account
) -> None:
    """The library holds another version of the item's sidecar under its
    tagged name too (put there by hand, or by an older version), and usb lost
    its own: the plain one goes back there, nas keeps it, and the plan
    converges instead of writing the two in turn onto each target's one."""
    _offloaded(ws, account)
    ours = (ws.library / SIDECAR).read_bytes()
    found = sidecar.parse(ours)
    owner = sidecar.owner_of(found) if found is not None else None
    assert owner is not None
    tagged = sidecar.owner_names(owner, "")[1]
    (ws.library / dated_path(OLD, tagged)).write_bytes(ours.replace(b"Dawn", b"Dusk"))
    (ws.target("usb") / SIDECAR).unlink()
    for _ in range(2):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    for target in TARGETS:
        assert (ws.target(target) / SIDECAR).read_bytes() == ours
    assert _sidecars_on(ws, "usb") == _sidecars_on(ws, "nas")
    _converged(ws)
