"""The README's cron line and contrib's systemd units work as written.

The cron line is taken from README.md itself and run under ``env -i`` with
only what cron provides (HOME, LOGNAME, SHELL, PATH=/usr/bin:/bin), against
the iCloud emulator; the units are checked by ``systemd-analyze verify``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import running_emulator, seed_trusted_session
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

REPO = Path(__file__).resolve().parents[1]
INSTALLED = "/opt/reconcile/.venv/bin/reconcile"  # the README's and contrib's example path
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


def _reconcile() -> str:
    """This checkout's installed command (the venv running the tests)."""
    path = Path(sys.executable).parent / "reconcile"
    assert path.is_file(), f"{path}: the console script is not installed (make venv)"
    return str(path)


def _readme_cron_command() -> str:
    (block,) = re.findall(r"```cron\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    fields = block.strip().split(None, 5)
    assert len(fields) == 6, block  # five schedule fields, then the command
    return fields[5]


def test_the_readme_cron_line_works_under_env_i(tmp_path: Path) -> None:
    home = tmp_path / "home"
    account = Account()
    photo = make_jpeg(tmp_path / "src.jpg", OLD, seed=3).read_bytes()
    account.add_asset(photo, "IMG_0001.JPG", asset_date=OLD)
    with running_emulator(account) as emu:
        icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\n'
        ws = make_workspace(home / "photos", sources=icloud, extra=KEEP_ORIGINALS)
        seed_trusted_session(emu, home / "photos" / "state" / "icloud-session")
        env_file = home / ".config" / "reconcile" / "env"
        env_file.parent.mkdir(parents=True)
        env_file.write_text(f"ICLOUD_USERNAME={emu.username}\n")
        env_file.chmod(0o600)
        command = _readme_cron_command()
        assert INSTALLED in command
        cron_env = [f"HOME={home}", "LOGNAME=root", "SHELL=/bin/sh", "PATH=/usr/bin:/bin"]
        run = subprocess.run(
            ["env", "-i", *cron_env, "/bin/sh", "-c", command.replace(INSTALLED, _reconcile())],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
        assert photo in files_under(ws.target("nas")).values()  # beside its XMP sidecar
        assert account.deleted_assets() != []  # archived twice, then off-loaded
        assert "apply exited 0" in (ws.root / "state" / "reconcile.log").read_text()


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("ICLOUD_USERNAME=you@example.com\n")
    for name in ("reconcile.service", "reconcile.timer"):
        text = (REPO / "contrib" / name).read_text()
        text = text.replace(INSTALLED, _reconcile()).replace("/etc/reconcile/env", str(env_file))
        text = text.replace("User=photos", "User=root")
        (tmp_path / name).write_text(text)
    service = (tmp_path / "reconcile.service").read_text()
    assert "Persistent=true" in (tmp_path / "reconcile.timer").read_text()
    assert "SuccessExitStatus=4" in service and "TimeoutStartSec=" in service
    run = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(tmp_path / "reconcile.service"),
            str(tmp_path / "reconcile.timer"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
