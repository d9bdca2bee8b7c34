"""``reconcile import-legacy``: a person who ran the seed pipeline keeps its
history: what it downloaded and copied to the NAS is adopted where it lies
(never written or copied again), what it deleted from iCloud is recorded,
and nothing imported counts as a copy until reconcile reads it. The seed's
word never tells what an iCloud asset holds: each is read from iCloud once."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account, EmulatedAsset
from providers.icloud.emulator.testing import RunningEmulator
from reconciler.state import StateDB
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)

#: The seed pipeline's table, as it created it.
SEED_SCHEMA = """
create table media (
    id integer primary key autoincrement,
    filename text not null,
    icloud_id text unique,
    created_date timestamp,
    local_path text,
    status text default 'pending',
    synced_google boolean default 0,
    synced_nas boolean default 0,
    album_moved boolean default 0,
    deleted_icloud boolean default 0,
    initial_size integer,
    current_size integer,
    last_compressed timestamp,
    error_count integer default 0,
    last_error text,
    last_updated timestamp default current_timestamp,
    created_at timestamp default current_timestamp
)
"""


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    for n in (1, 2):
        photo = make_jpeg(tmp_path / "src" / f"IMG_000{n}.JPG", OLD, seed=n)
        account.add_asset(photo.read_bytes(), photo.name, asset_date=OLD)
    return account


def seed_media_db(path: Path, rows: list[dict[str, object]]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(SEED_SCHEMA)
    for row in rows:
        cols = ", ".join(row)
        conn.execute(
            f"insert into media ({cols}) values ({', '.join('?' * len(row))})", [*row.values()]
        )
    conn.commit()
    conn.close()
    return path


def planned(ws: Workspace) -> list[tuple[str, str, str]]:
    """(type, target, subject) of every planned action but sidecar writes."""
    r = ws.run("plan", "--json", now=NOW)
    assert r.code == 0, r.err
    return sorted(
        (a["type"], a.get("target_id", ""), a["subject"])
        for a in json.loads(r.out)["actions"]
        if a["type"] != "write-sidecar"
    )


def test_the_seeds_downloads_and_nas_copies_are_adopted_not_written_again(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    first, second = account.live_assets()
    data = first.master.original.data or b""
    # The seed downloaded IMG_0001 into what is now the library and copied it
    # to the NAS; it compressed nothing. IMG_0002 it never got to. An older
    # photo it deleted from iCloud is on the NAS only.
    local = ws.library / "Photos" / "IMG_0001.JPG"
    local.parent.mkdir(parents=True)
    local.write_bytes(data)
    (ws.target("nas") / "backup").mkdir()
    shutil.copy(local, ws.target("nas") / "backup" / "IMG_0001.JPG")
    gone = make_jpeg(ws.target("nas") / "backup" / "IMG_0000.JPG", OLD, seed=9)
    media_db = seed_media_db(
        tmp_path / "media.db",
        [
            {
                "filename": "IMG_0001.JPG",
                "icloud_id": first.asset_id,
                "created_date": OLD.isoformat(),
                "local_path": str(local),
                "status": "synced",
                "synced_nas": 1,
                "initial_size": len(data),
                "current_size": len(data),
            },
            {"filename": "IMG_0002.JPG", "icloud_id": second.asset_id, "status": "pending"},
            {
                "filename": "IMG_0000.JPG",
                "icloud_id": "GONE-FROM-ICLOUD",
                "local_path": "/old/photos/IMG_0000.JPG",
                "status": "deleted",
                "synced_nas": 1,
                "deleted_icloud": 1,
                "initial_size": gone.stat().st_size,
                "current_size": gone.stat().st_size,
            },
        ],
    )

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == (
        f"imported 3 row(s) from {media_db}: 2 item(s) adopted (3 file(s) hashed where they "
        "are; 2 item(s) still the size the seed downloaded), 1 recorded as deleted from "
        "iCloud by the seed pipeline"
    )
    db = StateDB.in_dir(ws.root / "state")
    try:
        nas_copy = ws.target("nas") / "backup" / "IMG_0001.JPG"
        assert sorted(db.cached_hashes([str(local), str(nas_copy), str(gone)])) == sorted(
            [str(local), str(nas_copy), str(gone)]
        )
    finally:
        db.close()
    actions = planned(ws)
    # Both assets are read from iCloud: the seed's file of IMG_0001's name
    # and size may be another photo. Applied, its bytes are found where the
    # seed put them: nothing is written a second time.
    assert ("download", "", "icloud:IMG_0001.JPG") in actions
    assert ("download", "", "icloud:IMG_0002.JPG") in actions
    db = StateDB.in_dir(ws.root / "state")
    try:
        assert db.legacy_counts() == {"rows": 3, "adopted": 2, "deleted_from_icloud": 1}
        # The seed's word is no copy of this tool's: nothing became a
        # download record or a tombstone.
        assert db.known_sha256() == {}
        assert db.tombstone_count() == 0
    finally:
        db.close()
    # Applied: the adopted files stay where the seed put them, no second
    # copy of them appears, and the removal gate still reads both copies.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    photos = sorted(
        str(p.relative_to(ws.root)) for p in ws.root.rglob("IMG_0001.JPG") if "state" not in p.parts
    )
    assert photos == [
        "library/Photos/IMG_0001.JPG",
        "nas/backup/IMG_0001.JPG",
        "usb/2021/06/01/IMG_0001.JPG",
    ]
    assert account.live_assets() == []


def test_a_file_the_seed_compressed_is_adopted_but_never_taken_for_the_original(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    first, _ = account.live_assets()
    data = first.master.original.data or b""
    local = ws.library / "IMG_0001.JPG"
    make_jpeg(local, OLD, seed=7, size=32)  # the seed's smaller re-encode
    media_db = seed_media_db(
        tmp_path / "media.db",
        [
            {
                "filename": "IMG_0001.JPG",
                "icloud_id": first.asset_id,
                "local_path": str(local),
                "initial_size": len(data),
                "current_size": local.stat().st_size,
                "last_compressed": "2024-01-01T00:00:00",
            }
        ],
    )
    r = ws.run("import-legacy", str(media_db))
    assert r.code == 0, r.err
    assert "1 item(s) adopted (1 file(s) hashed where they are; 0 item(s) still the size" in r.out
    assert ("download", "", "icloud:IMG_0001.JPG") in planned(ws)


def test_a_file_that_is_not_the_seeds_database_is_refused(ws: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.close()
    r = ws.run("import-legacy", str(other))
    assert r.code == 1
    assert r.err == (f"error: {other}: no table 'media'; is this the seed pipeline's media.db?\n")
    r = ws.run("import-legacy", str(tmp_path / "missing.db"))
    assert r.code == 1
    assert "no such file; give the seed pipeline's media.db" in r.err
    for there in (tmp_path, Path("/dev/zero")):
        r = ws.run("import-legacy", str(there))
        assert r.code == 1
        assert r.err == (
            f"error: {there}: not a file (a folder, a pipe or a device); give the seed "
            "pipeline's media.db\n"
        )


def _seed_one(
    ws: Workspace,
    account: Account,
    tmp_path: Path,
    body: bytes,
    asset: EmulatedAsset | None = None,
) -> Path:
    """The seed's download of ``asset`` (the first), in the library: ``body``
    of the original's name and size, as the seed's media.db records it."""
    first = asset or account.live_assets()[0]
    data = first.master.original.data or b""
    assert len(body) == len(data)
    name = first.master.filename
    local = ws.library / "Photos" / name
    local.parent.mkdir(parents=True)
    local.write_bytes(body)
    row = {
        "filename": name,
        "icloud_id": first.asset_id,
        "local_path": str(local),
        "status": "synced",
        "initial_size": len(data),
        "current_size": len(data),
    }
    r = ws.run("import-legacy", str(seed_media_db(tmp_path / "media.db", [row])))
    assert r.code == 0, r.err
    return local


def _archived(ws: Workspace, data: bytes) -> list[str]:
    """Where ``data`` lies, byte for byte, in the library and on the targets."""
    return sorted(
        str(p.relative_to(ws.root))
        for p in ws.root.rglob("*")
        if p.is_file() and "state" not in p.relative_to(ws.root).parts and p.read_bytes() == data
    )


def test_a_seed_file_of_the_originals_name_and_size_but_other_bytes_is_never_taken_for_it(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    # A reused IMG_ number, or a file rewritten in place keeping its length:
    # the seed's file is another photo. Taken for the original, its copies
    # passed the gate and the asset left iCloud unarchived.
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    other = bytearray(data)
    for i in range(len(other) // 2, len(other) // 2 + 64):
        other[i] ^= 0x5A
    _seed_one(ws, account, tmp_path, bytes(other))

    r = ws.run("apply", "--yes", now=NOW)

    assert r.code == 0, r.out + r.err
    assert first.asset_id not in [a.asset_id for a in account.live_assets()]
    # Its own bytes were downloaded and archived before it left; the seed's
    # photo stays where it was, and is archived as a photo of the library.
    assert [p.split("/")[0] for p in _archived(ws, data)] == ["library", "nas", "usb"]
    assert [p.split("/")[0] for p in _archived(ws, bytes(other))] == ["library", "nas", "usb"]
    assert "library/Photos/IMG_0001.JPG" in _archived(ws, bytes(other))


def test_a_seed_file_with_the_originals_bytes_is_read_from_icloud_once_and_never_written_again(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    _seed_one(ws, account, tmp_path, data)
    # While its original cannot be read, nothing is removed on the seed's
    # word.
    emu.server.inject(
        "download", status=503, retry_after=0, times=None, path_contains="/IMG_0001.JPG"
    )
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1, r.out + r.err
    assert first.asset_id in [a.asset_id for a in account.live_assets()]
    emu.server.clear_faults()
    downloads = emu.server.hits["download"]

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "downloaded; same content as Photos/IMG_0001.JPG" in r.out
    r = ws.run("apply", "--yes", now=NOW)  # its copies proven by their bytes

    assert r.code == 0, r.out + r.err
    assert first.asset_id not in [a.asset_id for a in account.live_assets()], r.out
    assert emu.server.hits["download"] - downloads == 1  # read once
    # Written nowhere a second time: the library keeps the seed's file.
    assert _archived(ws, data) == [
        "library/Photos/IMG_0001.JPG",
        "nas/2021/06/01/IMG_0001.JPG",
        "usb/2021/06/01/IMG_0001.JPG",
    ]


def test_the_sidecars_name_the_assets_own_bytes_and_a_lost_state_db_learns_them(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    # Removal off, then a lost state DB (the import's rows gone with it): a
    # sidecar that named the seed's file as the original would teach it
    # back, and the asset would leave iCloud on copies of another photo.
    first = account.live_assets()[0]
    data = first.master.original.data or b""
    other = bytes(
        b ^ 0x5A if len(data) // 2 <= i < len(data) // 2 + 64 else b for i, b in enumerate(data)
    )
    ws.removal(on=False)
    _seed_one(ws, account, tmp_path, other)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool is needed (apt install libimage-exiftool-perl; make apt)"
    for xmp in ws.target("nas").rglob("IMG_0001*.xmp"):
        said = json.loads(
            subprocess.run(
                [exiftool, "-j", "-G1", str(xmp)], capture_output=True, check=True
            ).stdout
        )[0]
        assert said["XMP-reconcile:OriginalSHA256"] == hashlib.sha256(data).hexdigest()
    for db in (ws.root / "state").glob("*.db*"):
        db.unlink()
    ws.removal(on=True)

    assert ws.run("apply", "--yes", now=NOW).code == 0

    assert first.asset_id not in [a.asset_id for a in account.live_assets()]
    assert [p.split("/")[0] for p in _archived(ws, data)] == ["library", "nas", "usb"]
