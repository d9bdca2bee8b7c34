"""The library compressed by age, through the whole tool, on real files:
Pillow, pillow-heif and ffmpeg, from the original every time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import connect
from reconciler.media import encode_file, read_lineage
from reconciler.model import EncodeForTier
from reconciler.observe import observe
from reconciler.state import StateDB
from tests.helpers import FILESYSTEM_TARGETS, files_under, make_workspace, rot_unseen
from tests.media.conftest import make_clip, make_heic
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the samples were taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # 1.6 years later: tier older


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_aging_reencodes_from_the_original_never_from_the_compressed_file(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()

    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (sha(original), "recent")
    recent_bytes = lib.read_bytes()
    assert len(recent_bytes) < len(original)
    assert files_under(ws.incoming) == {}  # archived twice, then off-loaded
    again = ws.run("apply", "--yes", now=T1)
    assert (again.code, again.out) == (0, "No changes. The library matches desired_state.toml.\n")

    p = ws.run("plan", now=T2)
    assert p.out.splitlines()[1] == (
        "  ~ encode library:2021/06/01/IMG_1.JPG (captured 2021-06-01, 1.6 years ago): "
        "tier older (quality 75), library has recent"
    )
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert read_lineage(lib) == (sha(original), "older")
    # Byte for byte what encoding the original gives (the original now comes
    # from a backup target: the import folder no longer has it).
    src, expected = tmp_path / "original.jpg", tmp_path / "expected.jpg"
    src.write_bytes(original)
    encode_file(
        src,
        expected,
        quality=75,
        crf=None,
        original_sha256=sha(original),
        tier="older",
        replaces_size=len(recent_bytes),
    )
    assert lib.read_bytes() == expected.read_bytes()
    assert ws.run("plan", "--detailed-exitcode", now=T2).code == 0


#: HEICs are re-encoded only where a tier sets heic_quality (by default, the archive).
HEIC_TIER = """
[[policy.tiers]]
name = "recent"
max_age_days = 365
heic_quality = 60
"""


def test_heic_and_video_are_encoded_with_their_metadata(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False, extra=HEIC_TIER)
    heic = make_heic(ws.incoming / "IMG_2.HEIC", size=(512, 384)).read_bytes()
    clip = make_clip(ws.incoming / "MOV_3.MOV").read_bytes()

    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    (lib_heic,) = list(ws.library.rglob("IMG_2.HEIC"))
    (lib_clip,) = list(ws.library.rglob("MOV_3.MOV"))
    assert read_lineage(lib_heic) == (sha(heic), "recent")
    assert read_lineage(lib_clip) == (sha(clip), "recent")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of", "json", str(lib_clip)],
        check=True,
        capture_output=True,
        text=True,
    )
    tags = json.loads(probe.stdout)["format"]["tags"]
    assert tags["creation_time"] == "2021-06-01T12:34:56.000000Z"
    # The originals on the targets are untouched.
    assert sorted(files_under(ws.target("nas")).values()) == sorted([heic, clip])
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0


def test_a_corrupt_input_is_reported_kept_as_is_and_the_run_continues(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    good = make_camera_jpeg(ws.incoming / "GOOD.JPG", size=(640, 480)).read_bytes()
    broken = good[: len(good) // 3]
    (ws.incoming / "BROKEN.JPG").write_bytes(broken)

    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 1
    failed = [line for line in r.out.splitlines() if " failed " in line]
    assert len(failed) == 1
    # The message names where the original lives, not a library or temporary path.
    assert failed[0].startswith(
        "  x failed encode incoming:BROKEN.JPG: cannot encode: incoming:BROKEN.JPG "
        f"(sha256 {sha(broken)[:12]}, also nas:2021/06/01/BROKEN.JPG, "
        "usb:2021/06/01/BROKEN.JPG): truncated JPEG"
    )
    assert failed[0].endswith("; not retried, the library keeps the file")
    assert r.err == (
        "error: some originals cannot be decoded (see 'failed' above); the library keeps "
        "them as they are and they are not retried\n"
    )
    assert read_lineage(next(ws.library.rglob("GOOD.JPG"))) == (sha(good), "recent")
    # The original is untouched everywhere, and archived like any other file.
    assert (ws.incoming / "BROKEN.JPG").read_bytes() == broken
    assert broken in files_under(ws.target("nas")).values()
    assert broken in files_under(ws.library).values()

    # Not retried every night: the next plan lists it as an error, nothing to do.
    p = ws.run("plan", "--detailed-exitcode", now=T1)
    assert p.code == 0
    assert "  x error incoming:BROKEN.JPG: cannot encode: incoming:BROKEN.JPG (sha256 " in p.out

    # Aged into the next tier it is tried once more, and no longer fails the run.
    aged = ws.run("apply", "--yes", now=T2)
    assert aged.code == 0, aged.out + aged.err
    assert "  ~ encode incoming:BROKEN.JPG (" in aged.out  # planned: a new tier
    (line,) = [line for line in aged.out.splitlines() if line.startswith("  - skipped encode")]
    assert line.startswith("  - skipped encode incoming:BROKEN.JPG: cannot encode: ")
    assert line.endswith("; known bad input, the library keeps the file")
    again = ws.run("plan", "--detailed-exitcode", now=T2)
    assert again.code == 0
    assert "  x error incoming:BROKEN.JPG: cannot encode: " in again.out
    assert broken in files_under(ws.library).values()


def test_encoder_pool_times_threads_never_exceeds_the_cores(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    try:
        world = observe(desired, db, conn, now=T1)
        applier = Applier(desired, db, conn, world, run_id=db.start_run("test"))
        cores = os.cpu_count() or 1
        for encodes in (1, 2, 3, 100):
            processes = applier._worker_count(EncodeForTier, encodes)
            threads = applier.encoders.threads
            assert processes == min(cores, encodes)
            assert processes * threads <= cores
            # One long video alone gets the whole machine.
            assert encodes > 1 or threads == cores
    finally:
        conn.close()
        db.close()


#: The library keeps originals for a year, then compresses them.
KEEP_A_YEAR = """
[[policy.tiers]]
name = "fresh"
max_age_days = 365
keep = "original"
[[policy.tiers]]
name = "older"
jpeg_quality = 75
"""


def test_the_library_keeps_its_original_until_the_targets_hold_it_now(tmp_path: Path) -> None:
    """Off-loaded, then both targets' copies rot (same size and mtime: the
    hash cache cannot tell). When the photo ages into a compressed tier,
    the library's file is the only original left: the encode reads the
    targets' copies first, keeps the original, and the next run copies it
    to the targets again before compressing."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_A_YEAR)
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert lib.read_bytes() == original and files_under(ws.incoming) == {}
    for target in ("nas", "usb"):
        (copy,) = ws.target(target).rglob("IMG_1.JPG")
        rotten = bytearray(original)
        rotten[len(rotten) // 2] ^= 0x40
        rot_unseen(copy, bytes(rotten), ws.root / "state")

    first = ws.run("apply", "--yes", now=T2)
    assert "encode library:2021/06/01/IMG_1.JPG" in first.out
    assert "0 of 2 verified copies now (none)" in first.out, first.out
    assert "the library keeps its original" in first.out
    assert lib.read_bytes() == original  # not replaced: it is the only original

    second = ws.run("apply", "--yes", now=T2)
    assert second.code == 0, second.out + second.err
    for target in ("nas", "usb"):
        assert original in files_under(ws.target(target)).values()  # copied again
    assert read_lineage(lib) == (sha(original), "older")  # then compressed
    assert ws.run("plan", "--detailed-exitcode", now=T2).code == 0


def test_an_encoded_file_keeps_its_capture_time_as_mtime_and_a_lost_db_its_tier(
    tmp_path: Path,
) -> None:
    """A scan with no date of its own is dated by its mtime; once encoded,
    the library file had the encode's own time as mtime: photo apps showed
    an old photo as new, and after a lost state DB its capture time fell
    back to its folder's midnight, hours off: a photo an hour short of
    turning one was encoded again, at the next tier, too early."""
    from PIL import Image

    ws = make_workspace(tmp_path / "ws")
    scan = ws.incoming / "SCAN.JPG"
    Image.effect_noise((320, 240), 60).convert("RGB").save(scan, quality=98)
    captured = datetime(2021, 6, 1, 23, 30, tzinfo=UTC)
    os.utime(scan, (captured.timestamp(), captured.timestamp()))
    now = captured.replace(year=2022) - timedelta(hours=1)  # tier recent for an hour more
    assert ws.run("apply", "--yes", now=now).code == 0
    (lib,) = ws.library.rglob("SCAN.JPG")
    lineage = read_lineage(lib)
    assert lineage is not None and lineage[1] == "recent"
    assert lib.stat().st_mtime == captured.timestamp()
    shutil.rmtree(ws.root / "state")
    again = ws.run("plan", "--detailed-exitcode", now=now)
    assert again.code == 0, again.out


def test_a_copy_found_wrong_before_an_encode_is_forgotten_even_when_enough_are_right(
    tmp_path: Path,
) -> None:
    """Three targets, two copies asked for, one copy rotten (same size and
    mtime). The encode reads them, finds two right, and goes on; the rotten
    one was dropped with the check's result, so it stayed trusted until the
    next re-verification. Now it is forgotten, and the next run repairs it."""
    targets = FILESYSTEM_TARGETS + '[targets.usb2]\nkind = "filesystem"\npath = "usb2"\n'
    targets += "same_disk_ok = true\n"
    stores = ("library", "nas", "usb", "usb2")
    ws = make_workspace(tmp_path / "ws", extra=KEEP_A_YEAR, targets=targets, stores=stores)
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    (copy,) = ws.target("usb2").rglob("IMG_1.JPG")
    rotten = bytearray(original)
    rotten[len(rotten) // 2] ^= 0x40
    rot_unseen(copy, bytes(rotten), ws.root / "state")

    assert ws.run("apply", "--yes", now=T2).code == 0  # encoded: nas and usb are right
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib) == (sha(original), "older")
    repair = ws.run("plan", "--detail", now=T2)
    assert "copy-to-target[usb2]" in repair.out, repair.out
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert original in files_under(ws.target("usb2")).values()
