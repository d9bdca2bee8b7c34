"""Nothing silently ignored: every file a folder source holds is archived,
whatever its type (MPO, DNG, an unknown extension), and removed only once
archived; only junk (.DS_Store, AppleDouble ``._*``, Thumbs.db) stays put."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_every_kind_of_file_is_archived_and_junk_is_left(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    kept = {
        "DSC_0001.MPO": b"\xff\xd8MPO stereo pair" * 50,
        "DSC_0002.DNG": b"II*\x00 raw sensor data" * 50,
        "scan.xyz": b"a format nobody knows" * 50,
        "anim.gif": b"GIF89a" + b"\x00" * 200,
    }
    junk = {
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        "._DSC_0001.MPO": b"\x00\x05\x16\x07",
        "Thumbs.db": b"x",
    }
    for name, data in {**kept, **junk}.items():
        (ws.incoming / name).write_bytes(data)
    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    for p in ws.incoming.iterdir():
        os.utime(p, (old, old))
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted(kept.values())
    assert sorted(files_under(ws.incoming)) == sorted(junk)  # archived ones left, junk stays
