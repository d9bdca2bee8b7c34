"""``import-legacy`` over files that cannot all be read, and an import
stopped half-way: one unreadable file (a permission, a bad sector) is
named and left out while the rest is imported (exit 1, as an unreadable
source file in a run), and what was hashed is kept in batches, so the next
import reads only what it had not. Found by a bug hunt: one such file
failed the whole import, every hash of it lost."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import legacy
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace
from tests.test_import_legacy import OLD, seed_media_db

RECONCILE = Path(sys.executable).parent / "reconcile"


def _ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)


def _unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user for whom a file of mode 000 cannot be read: as
    root, without the capabilities that bypass file permissions."""
    cmd = [str(RECONCILE), *args]
    if os.geteuid() == 0:
        # (make apt installs it: libcap2-bin)
        assert shutil.which("capsh"), "capsh is needed to drop root's file-permission bypass"
        drop = "--drop=cap_dac_override,cap_dac_read_search"
        cmd = ["capsh", drop, "--", "-c", shlex.join(cmd)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _hashed_at(ws: Workspace) -> dict[str, float]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return dict(db.conn.execute("select path, hashed_at from hash_cache").fetchall())
    finally:
        db.close()


def test_one_unreadable_file_is_named_and_the_rest_imported(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    good = make_jpeg(ws.library / "IMG_1.JPG", OLD, seed=1)
    bad = make_jpeg(ws.target("nas") / "backup" / "IMG_2.JPG", OLD, seed=2)
    rows = [
        {"filename": p.name, "icloud_id": f"A{n}", "local_path": str(p)}
        | {"initial_size": p.stat().st_size}
        for n, p in enumerate((good, bad))
    ]
    media_db = seed_media_db(tmp_path / "media.db", rows)
    bad.chmod(0)

    r = _unprivileged("-c", str(ws.config), "import-legacy", str(media_db))

    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        f"imported 2 row(s) from {media_db}: 1 item(s) adopted (1 file(s) hashed where they "
        "are; 1 item(s) still the size the seed downloaded), 0 recorded as deleted from "
        "iCloud by the seed pipeline",
        f"  x unreadable: {bad}: Permission denied",
        "Nothing imported counts as a copy until reconcile reads it; run: reconcile plan",
    ]
    assert r.stderr == (
        "error: 1 file(s) could not be read (x unreadable above) and were left out; "
        "everything else was imported. Fix them (permissions, a failing disk), then run "
        "reconcile import-legacy again: what was read is not read again\n"
    )
    first = _hashed_at(ws)
    assert list(first) == [str(good)]

    bad.chmod(0o644)  # fixed: the next import reads only that file
    r = _unprivileged("-c", str(ws.config), "import-legacy", str(media_db))

    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(
        f"imported 2 row(s) from {media_db}: 2 item(s) adopted (2 file(s) hashed where they "
        "are, 1 of them known from an earlier read; 2 item(s) still the size"
    ), r.stdout
    assert _hashed_at(ws)[str(good)] == first[str(good)]
    db = StateDB.in_dir(ws.root / "state")
    try:
        assert db.legacy_counts() == {"rows": 2, "adopted": 2, "deleted_from_icloud": 0}
    finally:
        db.close()


def test_an_import_stopped_half_way_keeps_what_it_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C at the 8th of 12 files, with hashes written 5 at a time: the
    # first 5 are kept, and the next import reads the 7 others only.
    ws = _ws(tmp_path)
    files = []
    for n in range(12):
        f = ws.target("nas") / "seed" / f"file{n:02}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(os.urandom(1000 + n))
        files.append(f)
    media_db = seed_media_db(
        tmp_path / "media.db",
        [{"filename": f.name, "icloud_id": f.name, "local_path": str(f)} for f in files],
    )
    monkeypatch.setattr(legacy, "BATCH_FILES", 5)
    real = legacy.sha256_file
    read: list[str] = []

    def stopped_at_the_8th(path: str) -> str:
        if len(read) == 7:
            raise KeyboardInterrupt
        read.append(path)
        return real(path)

    monkeypatch.setattr(legacy, "sha256_file", stopped_at_the_8th)
    r = ws.run("import-legacy", str(media_db))

    assert r.code == 130, r.out + r.err
    assert sorted(_hashed_at(ws)) == sorted(str(f) for f in files[:5])

    read.clear()
    monkeypatch.setattr(legacy, "sha256_file", lambda path: read.append(path) or real(path))
    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.out + r.err
    assert sorted(read) == sorted(str(f) for f in files[5:])
    assert r.out.startswith(
        f"imported 12 row(s) from {media_db}: 12 item(s) adopted (12 file(s) hashed where "
        "they are, 5 of them known from an earlier read;"
    ), r.out


def test_a_cache_row_read_at_no_time_up_to_now_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row kept "in the future" (the clock was ahead) or marked wrong by a
    # reader (below zero) is no earlier read: observation reads it again, so
    # does the import.
    ws = _ws(tmp_path)
    photo = make_jpeg(ws.library / "IMG_1.JPG", OLD, seed=1)
    media_db = seed_media_db(
        tmp_path / "media.db", [{"filename": photo.name, "local_path": str(photo)}]
    )
    assert ws.run("import-legacy", str(media_db)).code == 0
    real = legacy.sha256_file
    read: list[str] = []
    monkeypatch.setattr(legacy, "sha256_file", lambda path: read.append(path) or real(path))
    for when in (4e9, -1.0):
        db = StateDB.in_dir(ws.root / "state")
        try:
            with db.transaction():
                db.conn.execute("update hash_cache set hashed_at = ?", [when])
        finally:
            db.close()
        read.clear()

        r = ws.run("import-legacy", str(media_db))

        assert r.code == 0, r.err
        assert read == [str(photo)]
        assert "1 file(s) hashed where they are;" in r.out, r.out
