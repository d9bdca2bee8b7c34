"""How this machine's Syncthing shares the folder with the phone decides what
its copies are worth (real Syncthing pair): a share with another phone or
folder than the configured one counts nothing, an untrusted (encrypted)
share holds only ciphertext, and a device or folder paused here is said to
be paused here, not offline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from providers.syncthing.folder import PhoneFolder
from providers.syncthing.pair import SyncthingInstance, SyncthingPair
from reconciler import config
from reconciler.independence import confirmed_by
from tests.helpers import Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
ARCHIVED = "every item is archived"
#: A well-formed device id no Syncthing here knows: the reset phone's.
NEW_PHONE = "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA"


def _api(inst: SyncthingInstance, method: str, path: str, **kw: Any) -> Any:
    r = requests.request(
        method, f"{inst.url}{path}", headers={"X-API-Key": inst.api_key}, timeout=10, **kw
    )
    r.raise_for_status()
    return r.json() if r.text.strip() else None


def _until(ws: Workspace, done: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        r = ws.run("apply", "--yes", now=NOW)
        assert time.monotonic() < deadline, r.out + r.err
        time.sleep(0.3)


def _items(ws: Workspace) -> dict[str, int]:
    r = ws.run("status", "--json", now=NOW)
    items: dict[str, int] = json.loads(r.out)["census"]["items"]
    return {k: n for k, n in items.items() if n}


def _replaced(ws: Workspace, old: str, new: str) -> None:
    ws.config.write_text(ws.config.read_text().replace(f'"{old}"', f'"{new}"'))


def test_copies_confirmed_by_another_phone_or_folder_are_not_counted(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    options = "liveness_timeout_s = 10\ndelete_local_copy = true\n"
    ws = phone_workspace(tmp_path / "ws", pair, removal=True, phone_options=options)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    _until(ws, lambda: not files_under(ws.incoming) and not _jpegs(pair))
    assert _items(ws) == {"removed": 1}  # off-loaded, on the NAS and the phone
    assert ARCHIVED in ws.run("status", now=NOW).out

    # The phone is reset (a new device id): what the old one held is not on it.
    _replaced(ws, pair.phone.device_id, NEW_PHONE)
    assert ARCHIVED not in ws.run("status", now=NOW).out
    assert _items(ws) == {"archived_1": 1}  # the NAS's copy alone
    # Another folder on the same phone: the same.
    _replaced(ws, NEW_PHONE, pair.phone.device_id)
    _replaced(ws, pair.folder_id, "another-folder")
    assert _items(ws) == {"archived_1": 1}
    _replaced(ws, "another-folder", pair.folder_id)
    assert _items(ws) == {"removed": 1}


def _jpegs(pair: SyncthingPair) -> list[str]:
    """The photos still staged here (not freed yet)."""
    return [p for p in files_under(pair.local_folder) if p.endswith(".JPG")]


def test_a_trusted_conduits_deliveries_to_another_phone_are_not_counted(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    options = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\ncount_as_copy = true\n'
    ws = phone_workspace(tmp_path / "ws", pair, removal=False, phone_options=options)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    _until(ws, lambda: "1 delivered" in ws.run("status", now=NOW).out)
    assert _items(ws) == {"archived_2plus": 1}

    _replaced(ws, pair.phone.device_id, NEW_PHONE)
    assert _items(ws) == {"waiting_phone": 1}  # on the NAS; the new phone has none yet


def test_identity_is_the_phones_own(tmp_path: Path) -> None:
    cfg = config.SyncthingTarget(
        kind="syncthing", path=str(tmp_path), folder_id="photos", device_id=NEW_PHONE
    )
    with PhoneFolder(
        id="phone", folder_path=tmp_path, folder_id="photos", device_id=NEW_PHONE, api_key="k"
    ) as phone:
        assert confirmed_by(cfg.device_id, cfg.folder_id) == phone.identity


def _encrypted(pair: SyncthingPair) -> None:
    """The folder shared with the phone as an untrusted device: the phone's
    folder receive-encrypted, this machine's share of it with a password."""
    fid = pair.folder_id
    phone_cfg = _api(pair.phone, "GET", f"/rest/config/folders/{fid}")
    _api(pair.phone, "DELETE", f"/rest/config/folders/{fid}")
    phone_cfg["type"] = "receiveencrypted"
    _api(pair.phone, "PUT", f"/rest/config/folders/{fid}", json=phone_cfg)
    local_cfg = _api(pair.local, "GET", f"/rest/config/folders/{fid}")
    for d in local_cfg["devices"]:
        if d["deviceID"] == pair.phone.device_id:
            d["encryptionPassword"] = "correct horse battery staple"
    _api(pair.local, "PUT", f"/rest/config/folders/{fid}", json=local_cfg)
    pair.stop_phone()  # and back, connected (a hung reconnection is retried)
    pair.start_phone()


UNTRUSTED = (
    "is shared with the phone as an untrusted device (encrypted): the phone holds only "
    "ciphertext, no copy of the photos; share it without an encryption password"
)


def test_a_phone_holding_only_ciphertext_is_no_copy(tmp_path: Path, pair: SyncthingPair) -> None:
    _encrypted(pair)
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 10\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    # Before, this machine counted the phone as holding the file (it decrypts
    # the phone's index) after a run or two, and the source was emptied.
    for _ in range(3):
        r = ws.run("apply", "--yes", now=NOW)
        time.sleep(0.5)
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    where = f"Syncthing folder {pair.folder_id!r}"
    assert f"unavailable target phone: {where} {UNTRUSTED}" in r.out, r.out
    assert not [p for p in phone_files(pair) if p.endswith(".JPG")]  # nothing sent

    v = ws.run("validate", "--online", now=NOW)
    assert f"FAIL  targets.phone: {where} {UNTRUSTED}\n" in v.out, v.out
    # A conduit passing ciphertext on to Google Photos is no better.
    url = f'url = "{pair.local.url}"\n'
    ws.config.write_text(ws.config.read_text().replace(url, url + 'role = "conduit"\n'))
    assert f"unavailable target phone: {where} {UNTRUSTED}" in ws.run("plan", now=NOW).out


def test_a_phone_paused_here_is_said_paused_here(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 5\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    device = {"device": pair.phone.device_id}
    _api(pair.local, "POST", "/rest/system/pause", params=device)
    paused = "the phone is paused here (in this machine's Syncthing); resume it here"

    assert f"unavailable target phone: {paused}" in ws.run("plan", now=NOW).out
    status = ws.run("status", now=NOW).out
    assert "phone: phone paused here (in this machine's Syncthing), " in status, status
    assert "offline" not in status, status
    with pair.target(timeout=5.0) as target:
        assert target.prove_alive().reason == paused
    v = ws.run("validate", "--online", now=NOW).out
    assert f"FAIL  targets.phone: {paused}\n" in v, v

    _api(pair.local, "POST", "/rest/system/resume", params=device)
    _api(pair.local, "PATCH", f"/rest/config/folders/{pair.folder_id}", json={"paused": True})
    folder = f"Syncthing folder {pair.folder_id!r} is paused here (in this machine's Syncthing)"
    assert f"unavailable target phone: {folder}; resume it" in ws.run("plan", now=NOW).out
    status = ws.run("status", now=NOW).out
    assert f"phone: folder {pair.folder_id!r} paused here (in this machine's Syncthing), " in (
        status
    ), status
    assert (
        f"FAIL  targets.phone: {folder}; resume it\n" in ws.run("validate", "--online", now=NOW).out
    )
