"""One unreadable source file is that item's error, not the run's end.

The tests run as root, which reads a mode-000 file anyway: the run is made
in a subprocess whose bounding set lacks the two capabilities that let root
ignore file permissions (``setpriv``, from util-linux)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

OLD = datetime.now(UTC) - timedelta(days=800)


def _apply_without_root_overrides(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            "-dac_override,-dac_read_search",
            sys.executable,
            "-m",
            "reconciler.cli",
            "-c",
            str(config),
            "apply",
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_mode_000_source_file_waits_and_the_rest_is_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photos = {
        i: make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i).read_bytes() for i in range(3)
    }
    locked = ws.incoming / "IMG_1.JPG"
    locked.chmod(0)

    r = _apply_without_root_overrides(ws.config)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        f"  x unreadable incoming:IMG_1.JPG: cannot read {locked}: Permission denied; "
        "the item stays; the next run retries\n"
    ) in r.stdout
    assert r.stderr == (
        "error: 1 source file(s) could not be read (see 'x' above); the rest was done; "
        "fix them and the next run picks them up\n"
    )
    assert "internal error" not in r.stdout + r.stderr
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted([photos[0], photos[2]])
    assert [p.name for p in ws.incoming.iterdir()] == ["IMG_1.JPG"]  # only it stays

    locked.chmod(0o644)  # the person fixes it; the next run picks it up
    r = _apply_without_root_overrides(ws.config)
    assert r.returncode == 0, r.stdout + r.stderr
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted(photos.values())
    assert files_under(ws.incoming) == {}
