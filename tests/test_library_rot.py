"""The library's own file goes bad behind the tool's back, as a disk's bit
rot leaves it: same size, mtime, inode and ctime (``tests.helpers.rot_unseen``).
Re-verification, or an encode's read, finds its bytes are not the ones
recorded. Most likely damage, though an edit made through a memory mapping
moves no time stamp either: the changed file is kept and archived as it is
(never encoded), and its item's version from before is put back beside it
from a target's copy."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.media import read_lineage
from reconciler.observe import library as observe_library
from tests.helpers import (
    KEEP_ORIGINALS,
    Workspace,
    apply_killed_at,
    files_under,
    make_jpeg,
    make_workspace,
    media_under,
    rot_unseen,
)
from tests.media.conftest import make_jpeg as make_camera_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)
#: past ``reverify_after_days`` (180, spread to 360): every file is read again
LATER = NOW + timedelta(days=1000)
T1 = datetime(2021, 12, 1, tzinfo=UTC)  # camera samples are of 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older
DAMAGED = (
    "changed with no write seen (its bytes, not its size, times or inode: bit rot, "
    "a failing disk, or an edit made through a memory mapping)"
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rotten(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 0x40
    return bytes(b)


def _offloaded_original(tmp_path: Path) -> tuple[Workspace, Path, bytes]:
    """Originals kept; one photo archived on nas and usb, off-loaded from its
    folder: the library's file and the targets' are its only copies."""
    ws = make_workspace(tmp_path, removal=True, extra=KEEP_ORIGINALS)
    good = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1, size=256).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}
    (lib,) = ws.library.rglob("IMG_1.JPG")
    return ws, lib, good


def _both_kept(ws: Workspace, good: bytes, changed: bytes) -> None:
    """The bytes from before back in the library beside the changed ones,
    and both on every target."""
    back = f"2024/09/16/IMG_1~{_sha(good)[:10]}.JPG"
    assert media_under(ws.library) == {"2024/09/16/IMG_1.JPG": changed, back: good}
    for t in ("nas", "usb"):
        assert sorted(media_under(ws.target(t)).values()) == sorted([good, changed]), t


def test_bytes_changed_with_no_write_seen_are_kept_and_the_version_before_put_back(
    tmp_path: Path,
) -> None:
    """Re-verification reads a file whose bytes changed while nothing of
    its stat did. Taken for the person's edit saved over the file, it was
    archived and the version before was never put back (the library lost
    it, and status said every item is archived). It is most likely rot;
    but an edit made through a memory mapping moves no time stamp either,
    so the tool keeps both: these bytes archived as they are (never
    encoded), the version before put back beside them, and says so."""
    ws, lib, good = _offloaded_original(tmp_path)
    changed = _rotten(good)
    rot_unseen(lib, changed, ws.root / "state")

    plan = ws.run("plan", now=LATER)
    assert plan.code == 0, plan.out + plan.err
    subject = "library:2024/09/16/IMG_1.JPG"
    assert (
        f"  + copy-to-library {subject}: {DAMAGED}; its good version put back beside it "
        "from a target's copy\n"
    ) in plan.out
    note = (
        f"  · skipped {subject}: {DAMAGED}: kept as it is and archived, never encoded; the "
        "version from before is put back beside it from a target's copy; delete the one you "
        "do not want\n"
    )
    assert note in plan.out
    assert f"copy-to-target[nas] {subject}" in plan.out

    applied = ws.run("apply", "--yes", now=LATER)
    assert applied.code == 0, applied.out + applied.err
    _both_kept(ws, good, changed)

    # Converged, and stays so however often the files are read again, the
    # change still said.
    for when in (LATER, LATER + timedelta(days=1000)):
        again = ws.run("plan", "--detailed-exitcode", now=when)
        assert again.code == 0, again.out + again.err
        assert note in again.out
    applied = ws.run("apply", "--yes", now=LATER + timedelta(days=1000))
    assert applied.code == 0 and "copy-to" not in applied.out, applied.out
    _both_kept(ws, good, changed)

    status = ws.run("status", now=LATER).out
    assert "every item is archived (2 copies required) or off-loaded\n" in status, status
    assert (
        "changed in the library with no write seen: 1 file(s) whose bytes changed while "
        "their size, times and inode did not (bit rot, a failing disk, or an edit made "
        "through a memory mapping); each is kept and archived as it is, the version from "
        "before put back beside it from a target's copy; delete the one you do not want\n"
        f"  x {subject}\n"
    ) in status

    doc = json.loads(ws.run("status", "--json", now=LATER).out)
    assert doc["damaged_in_library"] == ["2024/09/16/IMG_1.JPG"]

    # Deleted by the person: forgotten, nothing put back in its place.
    lib.unlink()
    done = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert done.code == 0 and done.out.startswith("No changes."), done.out
    assert "with no write seen" not in ws.run("status", now=LATER).out
    assert "damaged_in_library" not in json.loads(ws.run("status", "--json", now=LATER).out)


@pytest.mark.parametrize("point", ["changed-found", "changed-aside", "changed-recorded"])
def test_a_run_killed_as_it_records_a_change_with_no_write_seen_loses_nothing(
    tmp_path: Path, point: str
) -> None:
    """The run that found the change is killed (a power cut, the OOM
    killer) before, while or after it records it. The new hash was written
    to the cache as the file was read, the change kept in memory only: the
    next run trusted the changed bytes as read, took them for the person's
    edit, and the version before never came back; or the changed file's
    row replaced the good one before that was set aside (in neither table).
    The cache row is now written only once the change is recorded, and the
    row from before set aside before it is replaced."""
    ws, lib, good = _offloaded_original(tmp_path)
    changed = _rotten(good)
    rot_unseen(lib, changed, ws.root / "state")
    apply_killed_at(ws, f"{point}:1", now=LATER)
    for _ in range(2):
        r = ws.run("apply", "--yes", now=LATER + timedelta(hours=1))
        assert r.code == 0, r.out + r.err
    _both_kept(ws, good, changed)
    done = ws.run("plan", "--detailed-exitcode", now=LATER + timedelta(hours=1))
    assert done.code == 0, done.out + done.err


def test_other_bytes_with_no_real_ctime_stay_the_persons_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem without a ctime of its own (exFAT, FAT: the kernel
    shows the mtime), an edit saved in place with size and mtime put back
    looks like rot: the new bytes are the person's version, archived, as
    before; nothing is taken for damage."""
    ws, lib, good = _offloaded_original(tmp_path)
    monkeypatch.setattr(observe_library, "_REAL_CTIME", frozenset())
    edit = _rotten(good)
    rot_unseen(lib, edit, ws.root / "state")
    applied = ws.run("apply", "--yes", now=LATER)
    assert applied.code == 0, applied.out + applied.err
    assert "damaged" not in applied.out
    assert media_under(ws.library) == {"2024/09/16/IMG_1.JPG": edit}
    for t in ("nas", "usb"):
        assert edit in media_under(ws.target(t)).values()


def test_a_rotten_library_rendition_fails_its_encode_once_then_is_put_back(
    tmp_path: Path,
) -> None:
    """The library's compressed file rots (same size, mtime, ctime), and the
    photo ages into the next tier: the encode finds the file is not the one
    recorded and fails. Its cached hash was kept, so every following run
    planned the same encode and failed the same way (exit 1) until
    re-verification came round. Now the file is read again by the next run,
    found damaged, and the original put back from a target and encoded."""
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    (lib,) = ws.library.rglob("IMG_1.JPG")
    assert read_lineage(lib) == (_sha(original), "recent")
    rot = _rotten(lib.read_bytes())
    rot_unseen(lib, rot, ws.root / "state")

    first = ws.run("apply", "--yes", now=T2)
    assert first.code == 1, first.out + first.err
    assert "is not the file the tool recorded there" in first.out

    second = ws.run("apply", "--yes", now=T2)
    assert "is not the file the tool recorded there" not in second.out, second.out
    assert second.code == 0, second.out + second.err
    assert "it is kept as it is; it is read again next run\n" in first.out
    back = f"2021/06/01/IMG_1~{_sha(original)[:10]}.JPG"
    assert f"copied to {back}\n" in second.out
    assert lib.read_bytes() == rot  # kept as it is, and archived as it is
    assert read_lineage(ws.library / back) == (_sha(original), "older")
    for t in ("nas", "usb"):
        assert sorted(media_under(ws.target(t)).values()) == sorted([original, rot])
    third = ws.run("plan", "--detailed-exitcode", now=T2)
    assert third.code == 0, third.out + third.err
