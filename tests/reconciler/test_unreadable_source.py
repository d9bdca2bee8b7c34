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
        "error: 1 file(s) could not be read (see 'x' above); the rest was done; "
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


def test_status_says_no_every_item_is_archived_beside_a_file_never_read(tmp_path: Path) -> None:
    """The census knows nothing of a source file never read (never hashed,
    never copied): beside it, status said "every item is archived"."""
    headline = "every item is archived (2 copies required) or off-loaded"
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, removal=False)
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    assert ws.run("apply", "--yes").code == 0
    assert headline in ws.run("status").out
    locked = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    locked.chmod(0)
    assert _apply_without_root_overrides(ws.config).returncode == 1
    s = ws.run("status")
    assert headline not in s.out, s.out
    assert "unreadable 1" in s.out  # the run's line says what it could not read
    locked.chmod(0o644)
    assert ws.run("apply", "--yes").code == 0
    assert headline in ws.run("status").out
