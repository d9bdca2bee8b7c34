"""An iCloud item with a rendered edit, off-loaded, its library lost (a
disk replaced): put back from the targets as what each file was (the edit
never encoded: its role is recorded when it is written, not learned later
from a sidecar that may be gone), its sidecar with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from tests.helpers import Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
AAE = b"<plist>v1: crop 4:3</plist>"


@pytest.fixture
def account() -> Account:
    return Account()


@pytest.fixture
def tiered(tmp_path: Path, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """As tests/conftest.py's ``ws``, with the default tiers (encodes run)."""
    root = tmp_path / "ws"
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
    retries = "[apply]\nretries = 2\nbackoff_base_s = 0\n"
    ws = make_workspace(root, sources=icloud, extra=retries)
    seed_trusted_session(emu, root / "state" / "icloud-session")
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    return ws


def _jpeg(tmp: Path, seed: int, size: int = 256) -> bytes:
    return make_jpeg(tmp / f"src{seed}.jpg", OLD, seed=seed, size=size).read_bytes()


def _offloaded_edited(ws: Workspace, account: Account, tmp: Path) -> tuple[bytes, dict[str, bytes]]:
    photo = account.add_asset(_jpeg(tmp, 1), "IMG_0001.JPG", asset_date=OLD)
    edit = _jpeg(tmp, 2)
    account.edit_asset(photo, edit, adjustments=AAE)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted
    before = files_under(ws.library)
    assert edit in before.values()
    return edit, before


def _disk_replaced(ws: Workspace) -> None:
    for folder in [p for p in ws.library.iterdir() if p.is_dir()]:
        shutil.rmtree(folder)


def test_a_rendered_edit_put_back_is_never_encoded(
    tiered: Workspace, account: Account, tmp_path: Path
) -> None:
    """The library disk dies after the night's run that off-loaded the item
    (before any later run read the item's sidecar in the library)."""
    ws = tiered
    edit, _ = _offloaded_edited(ws, account, tmp_path)
    _disk_replaced(ws)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    after = files_under(ws.library)
    assert edit in after.values(), ("the person's rendered edit was encoded", r.out)


def test_the_item_s_sidecar_is_put_back_with_its_files(
    tiered: Workspace, account: Account, tmp_path: Path
) -> None:
    """DESIGN: an item is its files plus its metadata in an XMP sidecar;
    the library holds every item, with its metadata intact."""
    ws = tiered
    _edit, before = _offloaded_edited(ws, account, tmp_path)
    xmps = sorted(k for k in before if k.endswith(".xmp"))
    assert xmps == ["2021/06/01/IMG_0001.JPG.xmp"]
    assert ws.run("apply", "--yes", now=NOW).code == 0  # a night later: converged
    _disk_replaced(ws)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    after = files_under(ws.library)
    assert sorted(k for k in after if k.endswith(".xmp")) == xmps, (r.out, sorted(after))


# A library file gone, its row set aside (library_gone), then back at its
# path by other hands than the tool's put-back (the person restores it from
# the trash; or the run putting it back is killed before its outcome is
# recorded): what the file is in its item must not be forgotten, or the
# person's edit is re-encoded for a tier.


def _the_edit(ws: Workspace, edit: bytes) -> Path:
    (path,) = [ws.library / rel for rel, data in files_under(ws.library).items() if data == edit]
    return path


def test_an_edit_restored_from_the_trash_is_never_encoded(
    tiered: Workspace, account: Account, tmp_path: Path
) -> None:
    ws = tiered
    edit, _ = _offloaded_edited(ws, account, tmp_path)
    path = _the_edit(ws, edit)
    path.unlink()  # deleted by mistake (into the trash)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)  # the night's cron check
    assert p.code == 2 and "gone from the library" in p.out, p.out + p.err
    path.write_bytes(edit)  # restored from the trash, the next morning
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert path.read_bytes() == edit, ("the person's rendered edit was encoded", r.out)


def test_an_edit_put_back_by_a_run_killed_before_recording_is_never_encoded(
    tiered: Workspace, account: Account, tmp_path: Path
) -> None:
    ws = tiered
    edit, _ = _offloaded_edited(ws, account, tmp_path)
    path = _the_edit(ws, edit)
    path.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["RECONCILE_TEST_KILL_AT"] = "finish-before:copy-to-library:1"
    cmd = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"]
    killed = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stdout.decode() + killed.stderr.decode()
    assert path.read_bytes() == edit  # put back, its outcome not recorded
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert path.read_bytes() == edit, ("the person's rendered edit was encoded", r.out)
