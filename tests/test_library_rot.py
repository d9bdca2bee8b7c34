"""The library's own file goes bad behind the tool's back, as a disk's bit
rot leaves it: same size, mtime, inode and ctime (``tests.helpers.rot_unseen``).
Re-verification, or an encode's read, finds its bytes are not the ones
recorded. No program wrote it, so it is damage, not the person's edit: the
damaged file is kept as it is and never archived, and its item's good
version is put back beside it from a target's copy."""

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
DAMAGED = "damaged in place (its bytes changed with no write to it: bit rot, a failing disk)"


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


def test_a_rotten_library_original_is_put_back_beside_it_and_never_archived(
    tmp_path: Path,
) -> None:
    """Re-verification reads the rotten file. Taken for the person's edit
    saved over the file, it was archived twice as a new photo and the good
    bytes were never put back (the library held only the rot, and status
    said every item is archived)."""
    ws, lib, good = _offloaded_original(tmp_path)
    rot_unseen(lib, _rotten(good), ws.root / "state")

    plan = ws.run("plan", now=LATER)
    assert plan.code == 0, plan.out + plan.err
    subject = "library:2024/09/16/IMG_1.JPG"
    assert (
        f"  + copy-to-library {subject}: {DAMAGED}; its good version put back beside it "
        "from a target's copy\n"
    ) in plan.out
    note = (
        f"  · skipped {subject}: {DAMAGED}: kept as it is, never archived; its item's good "
        "version, from a target's copy, is kept beside it; delete this file once you have "
        "looked\n"
    )
    assert note in plan.out
    assert "copy-to-target" not in plan.out

    applied = ws.run("apply", "--yes", now=LATER)
    assert applied.code == 0, applied.out + applied.err
    back = f"2024/09/16/IMG_1~{_sha(good)[:10]}.JPG"
    assert f"copied to {back}\n" in applied.out
    # the damaged file is kept as it is; the good bytes are back beside it
    assert media_under(ws.library) == {"2024/09/16/IMG_1.JPG": _rotten(good), back: good}
    for t in ("nas", "usb"):
        assert media_under(ws.target(t)) == {"2024/09/16/IMG_1.JPG": good}

    # Converged, and stays so, the damage still said (and never archived)
    # however often the files are read again.
    for when in (LATER, LATER + timedelta(days=1000)):
        again = ws.run("plan", "--detailed-exitcode", now=when)
        assert again.code == 0, again.out + again.err
        assert note in again.out
    applied = ws.run("apply", "--yes", now=LATER + timedelta(days=1000))
    assert applied.code == 0 and "copy-to" not in applied.out, applied.out
    for t in ("nas", "usb"):
        assert _rotten(good) not in media_under(ws.target(t)).values()

    status = ws.run("status", now=LATER).out
    assert (
        "items: 0 in a source only, 0 in the library only, 0 archived on 1 target, "
        "0 on 2+ targets, 0 waiting on the phone, 1 removed from their source, 0 failed\n"
    ) in status
    assert (
        "every item is archived (2 copies required) or off-loaded\n"
        "damaged in the library: 1 file(s) whose bytes changed with no write to them "
        "(bit rot, a failing disk); each is kept as it is and never archived, its good "
        "version put back beside it from a target's copy; delete each once you have looked\n"
        f"  x {subject}\n"
    ) in status

    doc = json.loads(ws.run("status", "--json", now=LATER).out)
    assert doc["damaged_in_library"] == ["2024/09/16/IMG_1.JPG"]

    # Deleted by the person: forgotten, nothing put back in its place.
    lib.unlink()
    done = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert done.code == 0 and done.out.startswith("No changes."), done.out
    assert "damaged in the library" not in ws.run("status", now=LATER).out
    assert "damaged_in_library" not in json.loads(ws.run("status", "--json", now=LATER).out)


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
    assert lib.read_bytes() == rot  # kept as it is
    assert read_lineage(ws.library / back) == (_sha(original), "older")
    for t in ("nas", "usb"):
        assert media_under(ws.target(t)) == {"2021/06/01/IMG_1.JPG": original}
    third = ws.run("plan", "--detailed-exitcode", now=T2)
    assert third.code == 0, third.out + third.err
