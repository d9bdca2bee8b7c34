"""A path the tool emptied is not 'done': a new photo there is a new item.

A camera whose counter reset, a reformatted card or a second import writes a
*different* photo at a path the tool already off-loaded. Tombstones mean "this
content, here, was removed by us" — never "this path is done".
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)
CARD = "DCIM/100CANON/IMG_0000.JPG"


def _held(root: Path) -> list[bytes]:
    return sorted(files_under(root).values())


def test_a_new_photo_at_an_offloaded_path_is_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    first = make_jpeg(ws.incoming / CARD, OLD, seed=1)
    first_bytes = first.read_bytes()
    first_mtime = first.stat().st_mtime_ns
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}  # archived twice, then off-loaded

    # The adversary: other bytes, the same path, the same size and mtime
    # (a camera clock reset), quite possibly the same inode.
    second = bytearray(first_bytes)
    second[len(second) // 2] ^= 0x5A
    (ws.incoming / CARD).write_bytes(bytes(second))
    os.utime(ws.incoming / CARD, ns=(first_mtime, first_mtime))

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out
    assert f"copy-to-target[nas] incoming:{CARD}: no verified copy on nas" in p.out
    assert f"copy-to-target[usb] incoming:{CARD}: no verified copy on usb" in p.out

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for target in ("nas", "usb"):
        assert _held(ws.target(target)) == sorted([first_bytes, bytes(second)])
    assert files_under(ws.incoming) == {}
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_the_same_bytes_coming_back_are_known_as_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / CARD, OLD, seed=3).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    before = {t: files_under(ws.target(t)) for t in ("nas", "usb", "library")}

    (ws.incoming / CARD).parent.mkdir(parents=True, exist_ok=True)
    (ws.incoming / CARD).write_bytes(photo)  # the same photo imported again

    p = ws.run("plan", now=NOW)
    assert p.code == 0
    assert "copy-to" not in p.out  # no duplicate copies anywhere
    assert f"- remove-from-source incoming:{CARD} (" in p.out
    assert "): archived (2 verified copies)" in p.out
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert {t: files_under(ws.target(t)) for t in ("nas", "usb", "library")} == before
    assert files_under(ws.incoming) == {}
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
