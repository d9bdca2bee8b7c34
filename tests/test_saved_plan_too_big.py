"""A saved plan's size: the cap on what is read holds a plan of half a
million actions, and a file under it whose parse outgrows the memory the
process may take (a data export named by mistake) is one clear line, not
an internal error."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler import planfile
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize(
    ("head", "tail"),
    [(b"[", b"{}]"), (b'{"format_version": 1, "actions": [', b"{}]}")],
    ids=["an array", "shaped as a plan"],
)
def test_a_file_too_big_to_parse_is_one_clear_error(
    tmp_path: Path, head: bytes, tail: bytes
) -> None:
    ws = make_workspace(tmp_path / "w", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    big = tmp_path / "export.json"
    with open(big, "wb") as f:  # 60 MB of {}: some 1.5 GB once parsed
        f.write(head + b"{}," * (20 << 20) + tail)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ICLOUD_", "SYNCTHING_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", str(big), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr == (
        f"error: {big}: not a readable plan file: too big for the memory this process may "
        "take; run reconcile plan --out again\n"
    )
    assert os.listdir(ws.incoming) == ["IMG_1.JPG"]


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    jpeg = make_jpeg(tmp_path / "src" / "0.jpg", OLD, seed=0).read_bytes()
    account.add_asset(jpeg, "IMG_0000.JPG", asset_date=OLD, live_video=b"live-mov" * 999)
    return account


def test_the_cap_holds_a_plan_of_half_a_million_actions(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """iCloud's actions are the longest (ids of asset ids, origins, a
    Live Photo's two files): their bytes each, measured on a real plan."""
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    raw = json.loads(saved.read_text())
    n = len(raw["actions"])
    assert n >= 9  # two downloads, four copies, three sidecars, a removal
    whole = len(saved.read_text())
    per_action = (whole - len(json.dumps({**raw, "actions": []}, indent=2))) / n
    assert 500_000 * per_action * 1.5 < planfile.MAX_BYTES
