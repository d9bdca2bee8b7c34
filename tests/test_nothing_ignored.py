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


def test_a_symbolic_link_is_named_not_followed_and_stops_nothing(tmp_path: Path) -> None:
    """A link in a folder source is never read through (its target may be
    anywhere; removing the link would free nothing), but it is not passed
    over in silence either: every plan names it and says what to do."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "IMG_9.JPG").write_bytes(b"\xff\xd8 a photo kept elsewhere" * 40)
    (ws.incoming / "IMG_1.JPG").write_bytes(b"\xff\xd8 a photo of its own" * 40)
    (ws.incoming / "IMG_9.JPG").symlink_to(elsewhere / "IMG_9.JPG")
    (ws.incoming / "trip").symlink_to(elsewhere)
    (ws.incoming / "gone.JPG").symlink_to(tmp_path / "nowhere.JPG")

    plan = ws.run("plan", "--detail", now=NOW)
    assert plan.code == 0, plan.err
    for name in ("IMG_9.JPG", "trip", "gone.JPG"):
        assert f"skipped incoming:{name}: a symbolic link" in plan.out
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert [Path(p).name for p in files_under(tmp_path / "usb")] == ["IMG_1.JPG"]
    assert (elsewhere / "IMG_9.JPG").read_bytes().startswith(b"\xff\xd8 a photo kept")
    assert os.path.islink(ws.incoming / "IMG_9.JPG")
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert again.code == 0
    assert "skipped (3): a symbolic link" in again.out
