"""A new machine: the state directory and the library disk both lost, only
desired_state.toml and the targets left. The targets are the archive of the
library's items (README "The library holds every item"; "State": deleting
the state DB "loses no data: the next run re-observes and converges"), so
the library is rebuilt from them: each item's files put back where they
were, as what they were in their item, never downloaded again. Plans and
applies used to say "No changes" for ever over an empty library."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import write_marker
from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from reconciler.media import read_lineage
from tests.helpers import Workspace, files_under, make_jpeg, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def _new_machine(ws: Workspace) -> None:
    """The state directory and the library disk lost; the new library disk
    marked, as the quick start says (``init-target --id library``)."""
    shutil.rmtree(ws.root / "state")
    shutil.rmtree(ws.library)
    write_marker(ws.library, "library")


def _roles(ws: Workspace) -> dict[str, str]:
    with sqlite3.connect(ws.root / "state" / "state.db") as db:
        return dict(db.execute("select path, role from library"))


def _rebuilt(ws: Workspace, before: dict[str, bytes]) -> None:
    """Plan says each file comes back, status counts the items meanwhile,
    one apply puts them back, and the next plan is converged."""
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out + p.err
    for path in before:
        assert f"library:{path}" in p.out and "gone from the library" in p.out, p.out
    status = ws.run("status", now=NOW).out
    # each item still stands meanwhile, counted by its targets' copies
    assert f"{len(before)} on 2+ targets" in status, status
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert media_under(ws.library) == before
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (p.code, p.out) == (0, NO_CHANGES), p.out + p.err


@pytest.fixture
def account() -> Account:
    return Account()


def test_a_new_machine_puts_back_the_icloud_items_off_loaded(
    tmp_path: Path, ws: Workspace, emu: RunningEmulator, account: Account
) -> None:
    for i in (1, 2):
        data = make_jpeg(tmp_path / f"{i}.jpg", OLD, seed=i, size=256).read_bytes()
        account.add_asset(data, f"IMG_000{i}.JPG", asset_date=OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.deleted_assets()) == 2  # off-loaded: only the targets hold them
    before = media_under(ws.library)
    assert len(before) == 2

    _new_machine(ws)
    seed_trusted_session(emu, ws.root / "state" / "icloud-session")  # `reconcile login icloud`
    downloads = emu.server.hits["download"]
    _rebuilt(ws, before)
    assert emu.server.hits["download"] == downloads  # from the targets, never from iCloud


def test_a_new_machine_puts_back_an_edit_as_an_edit(
    tmp_path: Path, ws: Workspace, emu: RunningEmulator, account: Account
) -> None:
    """The item's sidecar on the targets says what each of its files is: the
    rendered edit and its adjustment data come back as such, never encoded;
    the original is encoded for its tier as any."""
    photo = make_jpeg(tmp_path / "1.jpg", OLD, seed=1, size=256).read_bytes()
    edit = make_jpeg(tmp_path / "2.jpg", OLD, seed=2, size=256).read_bytes()
    asset = account.add_asset(photo, "IMG_0001.JPG", asset_date=OLD)
    account.edit_asset(asset, edit, adjustments=b"<plist>crop 4:3</plist>")
    ws.config.write_text(ws.config.read_text().replace('keep = "original"', "jpeg_quality = 60"))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []
    before = files_under(ws.library)
    edited = "2021/06/01/IMG_0001-edited.JPG"
    assert before[edited] == edit

    _new_machine(ws)
    seed_trusted_session(emu, ws.root / "state" / "icloud-session")
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "encode library:2021/06/01/IMG_0001.JPG" in r.out, r.out
    assert f"encode library:{edited}" not in r.out, r.out
    after = files_under(ws.library)
    assert after.keys() >= before.keys()
    assert after[edited] == edit  # the person's edit, as they made it
    assert after["2021/06/01/IMG_0001.JPG"] != photo  # the original encoded for its tier
    roles = _roles(ws)
    assert roles[edited] == "edited" and roles["2021/06/01/IMG_0001.JPG.xmp"] == "sidecar"
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (p.code, p.out) == (0, NO_CHANGES), p.out + p.err


def test_a_new_machine_puts_back_a_card_s_items(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}  # off-loaded from the card
    before = media_under(ws.library)
    # The person's own files on a target, outside the tool's layout: theirs.
    (ws.target("nas") / "Scans").mkdir()
    (ws.target("nas") / "Scans" / "tax.pdf").write_bytes(b"%PDF-1.4 the person's")

    _new_machine(ws)
    _rebuilt(ws, before)
    assert not (ws.library / "Scans").exists()


def test_a_card_still_holding_its_items_places_them_once(tmp_path: Path) -> None:
    """Content a source still holds is placed from it, as ever: never a
    second time from a target."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    before = media_under(ws.library)

    _new_machine(ws)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0 and "gone from the library" not in r.out, r.out + r.err
    assert media_under(ws.library) == before


def test_a_new_machine_with_a_target_unplugged_puts_back_from_the_other(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    original = files_under(ws.target("nas"))
    _new_machine(ws)
    shutil.move(ws.target("usb"), tmp_path / "usb-away")  # unplugged

    r = ws.run("apply", "--yes", now=NOW)
    assert "lost" not in r.out and "failed" not in r.out, r.out
    # the original back, kept until both copies are read again
    assert media_under(ws.library) == original


@pytest.mark.parametrize("state_lost", [True, False])
def test_a_library_lost_gets_back_the_encode_of_an_original_lost(
    tmp_path: Path, state_lost: bool
) -> None:
    """The library's encode, archived tagged ``.encoded`` in place of an
    original lost everywhere, goes back where it was, on a new machine and
    with the state kept alike: made from that original (it says so), never
    encoded again."""
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    when = datetime(2021, 12, 1, tzinfo=UTC)  # the sample's tier is "recent": encoded
    assert ws.run("apply", "--yes", now=when).code == 0
    for t in ("nas", "usb"):  # new disks: the original lost
        shutil.rmtree(ws.target(t))
        write_marker(ws.target(t), t)
    assert ws.run("apply", "--yes", now=when).code == 1  # x lost; its encode archived
    encoded = files_under(ws.target("nas"))["2021/06/01/IMG_1.encoded.JPG"]

    if state_lost:
        _new_machine(ws)
    else:  # the library disk alone replaced
        shutil.rmtree(ws.library)
        write_marker(ws.library, "library")
    r = ws.run("apply", "--yes", now=when)
    assert files_under(ws.library) == {"2021/06/01/IMG_1.JPG": encoded}, r.out + r.err
    assert "failed" not in r.out and "encode library" not in r.out, r.out
    lib = ws.library / "2021/06/01/IMG_1.JPG"
    assert read_lineage(lib)[0] == hashlib.sha256(original).hexdigest()
    for now in (when, datetime(2023, 1, 1, tzinfo=UTC)):  # a heavier tier finds nothing to do
        r = ws.run("apply", "--yes", now=now)
        assert "Nothing to run, but the library does not match" in r.out, r.out
        assert r.out.count("x lost library:2021/06/01/IMG_1.JPG") == 1, r.out
    assert files_under(ws.library) == {"2021/06/01/IMG_1.JPG": encoded}


def test_photos_deleted_the_night_the_state_was_lost_come_back_beside_their_sidecars(
    tmp_path: Path, ws: Workspace, emu: RunningEmulator, account: Account
) -> None:
    """Off-loaded, then in one night the person deleted the library's photos
    (their sidecars, the tool's, stayed) and the state directory was lost:
    the sidecars made the library look in use, so nothing came back while
    plan said the library matched."""
    for i in (1, 2):
        data = make_jpeg(tmp_path / f"{i}.jpg", OLD, seed=i, size=256).read_bytes()
        account.add_asset(data, f"IMG_000{i}.JPG", asset_date=OLD, caption="Dawn")
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.deleted_assets()) == 2
    before = media_under(ws.library)
    for rel in before:
        (ws.library / rel).unlink()
    assert [p for p in files_under(ws.library) if p.endswith(".xmp")]  # the sidecars stay
    shutil.rmtree(ws.root / "state")
    seed_trusted_session(emu, ws.root / "state" / "icloud-session")
    _rebuilt(ws, before)
