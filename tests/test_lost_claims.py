"""An original is said lost only when it truly is: every store read (a
phone read this run included: it lists what it holds) and every source
file's content known. Else it waits, and nothing is archived in its place."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.filesystem import write_marker
from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from providers.syncthing.pair import SyncthingPair
from tests.helpers import FOLDER_SOURCE, Workspace, files_under, make_jpeg, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
WHEN = datetime(2021, 12, 1, tzinfo=UTC)  # the camera sample's tier is "recent": encoded


@pytest.fixture
def account() -> Account:
    return Account()


def _new_disks(ws: Workspace) -> None:
    """Both targets replaced by new marked disks: every copy gone."""
    for t in ("nas", "usb"):
        shutil.rmtree(ws.target(t))
        write_marker(ws.target(t), t)


def test_an_original_still_in_icloud_not_downloaded_yet_is_not_lost(
    tmp_path: Path, emu: RunningEmulator, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library holds the asset encoded, iCloud still holds it; the state
    directory is lost and both targets replaced. This run downloads the
    asset (its content unknown until then): its original is not lost, and
    no copy of the encode is archived beside the original."""
    root = tmp_path / "ws"
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
    ws = make_workspace(root, sources=icloud, extra="[apply]\nretries = 2\nbackoff_base_s = 0\n")
    seed_trusted_session(emu, root / "state" / "icloud-session")
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    recent = NOW - timedelta(days=5)
    data = make_jpeg(tmp_path / "1.jpg", recent, seed=1, size=512).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=recent)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert data not in files_under(ws.library).values()  # encoded (set-up)
    assert account.live_assets()  # (still in iCloud: recent)

    shutil.rmtree(root / "state")
    _new_disks(ws)
    seed_trusted_session(emu, root / "state" / "icloud-session")
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, r.err) == (0, ""), r.out + r.err
    assert "lost" not in r.out, r.out
    for t in ("nas", "usb"):
        held = files_under(ws.target(t))
        assert data in held.values(), r.out
        assert not [p for p in held if ".encoded" in p], sorted(held)
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert again.code == 0, again.out


def test_a_lost_original_s_encode_is_archived_with_a_phone_read_this_run(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    """The card wiped by the person (its photo archived), both disks
    replaced (the originals lost), and a phone target added: the phone was
    read this run and holds no copy of the original, so it is lost, and the
    library's encode, the only copy of the photo left, is archived (as
    without a phone), not waiting for ever."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320))  # (the card not emptied)
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    assert (
        files_under(ws.library)["2021/06/01/IMG_1.JPG"] != (ws.incoming / "IMG_1.JPG").read_bytes()
    )  # encoded (set-up)
    (ws.incoming / "IMG_1.JPG").unlink()
    _new_disks(ws)
    ws.config.write_text(
        ws.config.read_text()
        + textwrap.dedent(
            f"""
            [targets.phone]
            kind = "syncthing"
            path = "{pair.local_folder}"
            folder_id = "{pair.folder_id}"
            device_id = "{pair.phone.device_id}"
            url = "{pair.local.url}"
            """
        )
    )
    r = ws.run("apply", "--yes", now=WHEN)
    assert "x lost library:2021/06/01/IMG_1.JPG: its original is on no store any more" in r.out
    assert "waiting library:2021/06/01/IMG_1.JPG" not in r.out, r.out
    for t in ("nas", "usb"):
        assert "2021/06/01/IMG_1.encoded.JPG" in files_under(ws.target(t)), r.out


def test_an_icloud_asset_older_than_max_age_days_keeps_no_lost_original_waiting(
    tmp_path: Path, emu: RunningEmulator, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An iCloud source with max_age_days lists assets older than that which
    the tool never downloads: their content is never known, and a lost
    original 'waited' on them for ever, the only copy of the photo left (the
    library's encode) never backed up. Only what a run will read may hold it."""
    root = tmp_path / "ws"
    icloud = (
        f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
        "max_age_days = 30\n"
    )
    ws = make_workspace(
        root,
        removal=False,
        sources=FOLDER_SOURCE + icloud,
        extra="[apply]\nretries = 2\nbackoff_base_s = 0\n",
    )
    seed_trusted_session(emu, root / "state" / "icloud-session")
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    old = WHEN - timedelta(days=2000)
    account.add_asset(
        make_jpeg(tmp_path / "old.jpg", old, seed=3).read_bytes(), "IMG_9.JPG", asset_date=old
    )
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320))  # (no empty card: no guard)
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    (ws.incoming / "IMG_1.JPG").unlink()  # gone from the card
    _new_disks(ws)  # both disks replaced
    for _ in range(2):
        r = ws.run("apply", "--yes", now=WHEN)
    for t in ("nas", "usb"):
        assert "2021/06/01/IMG_1.encoded.JPG" in files_under(ws.target(t)), r.out
