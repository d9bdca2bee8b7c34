"""status when a target cannot be read now (a disk unplugged, two folders
of one disk unplugged) and with a conduit: it never claims more copies than
were proven, nor drops those last recorded. Found by a bug hunt."""

from __future__ import annotations

import hashlib
import json
import subprocess
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import MARKER, write_marker
from reconciler.state import StateDB
from tests.helpers import (
    FILESYSTEM_TARGETS,
    KEEP_ORIGINALS,
    Workspace,
    make_jpeg,
    make_workspace,
    mounted,
)

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
DEVICE = "-".join(["ABCDEFG"] * 8)


def _items(ws: Workspace) -> dict[str, int]:
    r = ws.run("status", "--json", now=NOW)
    assert r.code == 0, r.err
    items: dict[str, int] = json.loads(r.out)["census"]["items"]
    return {state: n for state, n in items.items() if n}


def test_status_json_says_which_target_is_not_proven_now(tmp_path: Path) -> None:
    """README: `--json` for scripts holds the same facts as the human
    output. The human output names a target that cannot be read now
    ('not proven now: nas cannot be read'); the JSON has no trace of it, so
    a script sees the same census as when every disk was mounted."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (ws.target("nas") / MARKER).unlink()  # unplugged
    human = ws.run("status", now=NOW).out
    assert "not proven now: nas cannot be read" in human
    doc = json.loads(ws.run("status", "--json", now=NOW).out)
    assert list(doc["not_proven_now"]) == ["nas"]
    assert "cannot be read" in doc["not_proven_now"]["nas"]


def test_an_unplugged_disk_keeps_its_copies_as_last_recorded(tmp_path: Path) -> None:
    """README: a target without its marker (not mounted) is named, 'its
    copies counted as last recorded'. With nas a real disk of its own, its
    bare mount point is on the library's disk once it is unplugged: the
    census then drops nas's copies as 'on the library's disk', and status
    says the item is archived on 1 target, names it as the oldest not yet
    archived, while saying the counts take nas's copies as last recorded."""
    root = tmp_path / "ws"
    with _disk(root / "nas") as nas, _disk(root / "usb"):
        targets = (
            '[targets.nas]\nkind = "filesystem"\npath = "nas"\n'
            '[targets.usb]\nkind = "filesystem"\npath = "usb"\n'
        )
        ws = make_workspace(root, extra=KEEP_ORIGINALS, targets=targets)
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        assert _items(ws) == {"removed": 1}
        subprocess.run(["umount", str(nas)], check=True)  # unplugged
        out = ws.run("status", now=NOW).out
        assert "not proven now: nas cannot be read" in out
        assert _items(ws) == {"removed": 1}, out
        assert "oldest not yet archived" not in out, out


def test_an_unplugged_shared_disk_does_not_turn_one_copy_into_two(tmp_path: Path) -> None:
    """nas and usb are folders of one disk (no same_disk_ok): one backup,
    as the gate counts them ('archived on 1 target'). Once that disk is
    unplugged (the folders are gone with it), the census takes each for a
    disk of its own and says '1 on 2+ targets' (and the metrics file after
    the next plan says so too): a copy count never true."""
    root = tmp_path / "ws"
    with _disk(root / "disk") as disk:
        targets = (
            '[targets.nas]\nkind = "filesystem"\npath = "disk/nas"\n'
            '[targets.usb]\nkind = "filesystem"\npath = "disk/usb"\n'
        )
        ws = make_workspace(root, extra=KEEP_ORIGINALS, targets=targets, stores=("library",))
        write_marker(disk / "nas", "nas")
        write_marker(disk / "usb", "usb")
        make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
        assert ws.run("apply", "--yes", now=NOW).code == 0
        assert _items(ws) == {"archived_1": 1}
        subprocess.run(["umount", str(disk)], check=True)  # unplugged
        assert _items(ws) == {"archived_1": 1}, ws.run("status", now=NOW).out
        ws.run("plan", now=NOW)
        prom = (root / "state" / "reconcile.prom").read_text()
        assert 'reconcile_items{state="archived_2plus"} 0' in prom, prom


def test_an_item_sent_to_a_conduit_is_not_waiting_on_the_phone(tmp_path: Path) -> None:
    """README: a conduit 'is not a backup' and its deliveries count as
    copies only with count_as_copy. The census still ranks an item with
    one copy (nas) and an unconfirmed conduit delivery as 'waiting on the
    phone' (the phone's copy 'on its way'), above 'archived on 1 target':
    the phone's confirmation will never bring it to 2; usb will."""
    phone = tmp_path / "phone"
    phone.mkdir()
    conduit = (
        f'[targets.phone]\nkind = "syncthing"\npath = "{phone}"\nfolder_id = "pics"\n'
        f'device_id = "{DEVICE}"\nurl = "http://127.0.0.1:9"\nrole = "conduit"\n'
    )
    ws = make_workspace(
        tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS, targets=FILESYSTEM_TARGETS + conduit
    )
    jpeg = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    r = ws.run("apply", "--yes", "--target", "nas", now=NOW)
    assert "copied to nas" in r.out, r.out + r.err
    assert _items(ws) == {"archived_1": 1}
    sha = hashlib.sha256(jpeg.read_bytes()).hexdigest()
    db = StateDB.in_dir(tmp_path / "ws" / "state")
    try:
        db.record_delivery("phone", "2021/06/01/IMG_1.JPG", sha, jpeg.stat().st_size)
    finally:
        db.close()
    assert _items(ws) == {"archived_1": 1}


def _disk(at: Path) -> AbstractContextManager[Path]:
    """A disk of its own at ``at`` (a tmpfs)."""
    return mounted(at, "-t", "tmpfs", "tmpfs")
