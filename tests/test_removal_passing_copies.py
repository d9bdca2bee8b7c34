"""Copies that will not last are no backup, and nothing leaves a source on
their strength (each case removed the source's file before):

- a copy in a disk's or a NAS's recycle bin at its top (a Synology's
  ``#recycle`` or ``#snapshot``, a QNAP's ``@Recycle``, old Windows'
  ``RECYCLER``, chkdsk's ``FOUND.000``): the bin is emptied on its own
  schedule. It is copied again where it belongs;
- an iCloud item's sidecar, which the tool rewrites on every target when
  the item's metadata changes, standing as the only copies of a folder
  source's file holding the same bytes (the person copied a backup folder
  back into the import folder): the file stays in its folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

WHEN = datetime(2021, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
RECENT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # the asset stays in iCloud
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "bin_",
    [
        "#recycle",
        "@Recycle",
        "RECYCLER",
        "FOUND.000",
        "#snapshot/GMT+00_2021.12.01-00.00",
        "trashbox",
        "Network Trash Folder",
    ],
)
def test_a_copy_in_a_nas_recycle_bin_is_no_backup(tmp_path: Path, bin_: str) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    nas = ws.target("nas")
    (rel,) = [k for k in files_under(nas) if k.endswith(".JPG")]
    (nas / bin_ / rel).parent.mkdir(parents=True)
    (nas / rel).rename(nas / bin_ / rel)  # deleted over SMB: in the NAS's bin
    ws.removal(True)
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 0, r.out + r.err
    shutil.rmtree(nas / bin_)  # the NAS empties its bin
    assert (nas / rel).exists() or (ws.incoming / "IMG_1.JPG").exists(), r.out


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "s1.jpg", RECENT, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=RECENT, caption="Dawn")
    return account


def test_a_file_whose_only_copies_are_an_items_sidecar_stays(
    ws: Workspace, account: Account
) -> None:
    ws.config.write_text(
        ws.config.read_text() + '\n[sources.incoming]\nkind = "folder"\npath = "incoming"\n'
    )
    assert ws.run("apply", "--yes", now=NOW).code == 0
    old = (ws.target("nas") / "2026/11/20/IMG_0001.JPG.xmp").read_bytes()
    xmp = ws.incoming / "IMG_0001.JPG.xmp"  # a backup folder copied back in
    xmp.write_bytes(old)
    os.utime(xmp, (OLD.timestamp(), OLD.timestamp()))
    r = ws.run("apply", "--yes", now=NOW)
    assert xmp.exists(), r.out
    assert "its bytes are a sidecar this tool writes for an item" in r.out, r.out
    (asset,) = account.live_assets()
    account.describe(asset, caption="Dusk")  # the item's sidecars are rewritten
    ws.run("apply", "--yes", now=NOW)
    roots = (ws.target("nas"), ws.target("usb"), ws.library, ws.incoming)
    held = {hashlib.sha256(b).hexdigest() for r in roots for b in files_under(r).values()}
    assert hashlib.sha256(old).hexdigest() in held


@pytest.mark.parametrize("bin_", ["Recycled", "#recycle"])
def test_status_counts_no_copy_in_a_target_s_bin(tmp_path: Path, bin_: str) -> None:
    """The NAS's dated folder deleted into its bin: plan plans a copy, and
    status must not call the item archived twice meanwhile (it counted the
    bin's file from the hash cache, which the walk had filled)."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    nas = ws.target("nas")
    (nas / bin_).mkdir()
    (nas / "2021").rename(nas / bin_ / "2021")
    p = ws.run("plan", "--detailed-exitcode", now=WHEN)
    assert p.code == 2 and "copy-to-target[nas]" in p.out, p.out + p.err
    items = json.loads(ws.run("status", "--json", now=WHEN).out)["census"]["items"]
    assert (items["archived_2plus"], items["archived_1"]) == (0, 1), items


@pytest.mark.parametrize("name", ["Recycled", "FOUND.000"])
def test_a_copy_named_like_a_bin_below_a_targets_top_is_listed(tmp_path: Path, name: str) -> None:
    """A photo whose whole name is a bin's, placed at YYYY/MM/DD/<name>:
    only a target's top folders are bins. Skipped at every depth, the copy
    was never seen and made again every run, never converging."""
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(tmp_path / "x.jpg", OLD, seed=3).rename(ws.incoming / name)
    assert ws.run("apply", "--yes", now=WHEN).code == 0
    assert f"2021/06/01/{name}" in files_under(ws.target("nas"))
    p = ws.run("plan", "--detailed-exitcode", now=WHEN)
    assert p.code == 0, p.out + p.err


def test_a_target_inside_a_recycle_bin_is_refused(tmp_path: Path) -> None:
    """A target's path inside a NAS's #recycle: every copy there is thrown
    away on the NAS's schedule, after the card's photo was removed on it."""
    targets = (
        '[targets.nas]\nkind = "filesystem"\npath = "nas/#recycle/photos"\nsame_disk_ok = true\n'
        '[targets.usb]\nkind = "filesystem"\npath = "usb"\nsame_disk_ok = true\n'
    )
    ws = make_workspace(
        tmp_path / "ws", extra=KEEP_ORIGINALS, targets=targets, stores=("library", "usb")
    )
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    r = ws.run("apply", "--yes", now=WHEN)
    assert r.code == 1 and "lies inside '#recycle'" in r.err, r.out + r.err
    assert (ws.incoming / "IMG_1.JPG").exists()
