"""`reconcile validate`: the machine checked against the file, one line per check."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import running_emulator, seed_trusted_session
from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ICLOUD_USERNAME", "ICLOUD_PASSWORD", "SYNCTHING_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_a_valid_workspace_passes_every_check(tmp_path: Path, no_secrets: None) -> None:
    ws = make_workspace(tmp_path)
    r = ws.run("validate")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        f"ok    {ws.config}: valid (1 source(s), 2 target(s), 2 copies required)\n"
        f"ok    library.path: {tmp_path / 'library'} is marked as 'library'\n"
        f"ok    state.dir: {tmp_path / 'state'} will be created\n"
        f"ok    sources.incoming.path: {tmp_path / 'incoming'} exists\n"
        f"ok    targets.nas.path: {tmp_path / 'nas'} is marked as 'nas'\n"
        f"ok    targets.usb.path: {tmp_path / 'usb'} is marked as 'usb'\n"
    )
    assert not (tmp_path / "state").exists()  # validate writes nothing


def test_what_fails_at_once_is_caught_offline(tmp_path: Path, no_secrets: None) -> None:
    """The seed's mistakes: placeholders, unmounted paths, unset variables,
    a Syncthing url ending in /rest, an emulator endpoint off this machine."""
    sources = textwrap.dedent(
        """
        [sources.icloud]
        kind = "icloud"
        endpoint = "http://photos.example.com:8765"
        [sources.card]
        kind = "folder"
        path = "card"
        """
    )
    targets = textwrap.dedent(
        """
        [targets.nas]
        kind = "filesystem"
        path = "mnt/nas"
        [targets.usb]
        kind = "filesystem"
        path = "usb"
        [targets.phone]
        kind = "syncthing"
        path = "sync"
        folder_id = "pixel-photos"
        device_id = "PHONE-DEVICE-ID"
        url = "http://127.0.0.1:8384/rest"
        """
    )
    ws = make_workspace(tmp_path, sources=sources, targets=targets, stores=("usb",))
    (tmp_path / "library").mkdir()
    (tmp_path / "sync").mkdir()
    r = ws.run("validate")
    assert r.code == 1
    t = tmp_path
    assert r.out.splitlines()[1:] == [
        f"FAIL  library.path: {t / 'library'} has no marker (not mounted?); if it is the right "
        f"folder, run: reconcile init-target {t / 'library'} --id library",
        f"ok    state.dir: {t / 'state'} will be created",
        "FAIL  sources.icloud: ICLOUD_USERNAME is not set in the environment; export it "
        "(your Apple ID)",
        "FAIL  sources.icloud.endpoint: 'http://photos.example.com:8765' is not an emulator on "
        "this machine; use http://127.0.0.1:PORT (the emulator listens on loopback only), or "
        "leave it empty for Apple",
        f"FAIL  sources.card.path: {t / 'card'} does not exist (card not inserted?)",
        f"FAIL  targets.nas.path: {t / 'mnt/nas'} does not exist; mount the disk, or fix the "
        f"path, or run: reconcile init-target {t / 'mnt/nas'} --id nas --create",
        f"ok    targets.usb.path: {t / 'usb'} is marked as 'usb'",
        f"FAIL  targets.phone.path: {t / 'sync'} has no .stfolder: it is not a Syncthing folder "
        "yet (add it in Syncthing)",
        "FAIL  targets.phone.device_id: 'PHONE-DEVICE-ID' is the example's placeholder; put the "
        "phone's id (on the phone: Syncthing > Settings > Show device ID)",
        "FAIL  targets.phone.url: 'http://127.0.0.1:8384/rest' ends in /rest; use "
        "http://127.0.0.1:8384 (reconcile adds /rest/...)",
        "FAIL  targets.phone: SYNCTHING_API_KEY is not set in the environment; export it",
        # on the library's own disk, as the plan would say (shared-disk)
        "warn  targets.usb: not a backup: on the library's own disk: its copies are written "
        "but are not a backup (put it on another disk, or set same_disk_ok = true)",
    ]
    assert r.err == (
        "error: 9 of 13 checks failed (FAIL above); fix them, then run reconcile validate again\n"
    )


def test_a_marked_target_on_an_unmounted_mount_point_is_a_warning(
    tmp_path: Path, no_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmp_path plays /mnt: nas is a plain folder of the same filesystem."""
    monkeypatch.setattr("reconciler.preflight.MOUNT_BASES", (str(tmp_path),))
    ws = make_workspace(tmp_path)
    r = ws.run("validate")
    assert r.code == 0  # a warning, not a failure: special setups exist
    nas = tmp_path / "nas"
    assert f"warn  targets.nas.path: marked, but {nas} is on the same filesystem as " in r.out
    assert "is the disk mounted?" in r.out


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "syncthing") as pair:
        yield pair


def test_validate_online_reaches_icloud_and_the_phone(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account()
    with running_emulator(account) as emu:
        sources = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\n'
        targets = textwrap.dedent(
            f"""
            [targets.nas]
            kind = "filesystem"
            path = "nas"
            [targets.phone]
            kind = "syncthing"
            path = "{pair.local_folder}"
            folder_id = "{pair.folder_id}"
            device_id = "{pair.phone.device_id}"
            url = "{pair.local.url}"
            """
        )
        ws = make_workspace(tmp_path / "ws", sources=sources, targets=targets)
        monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
        monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))

        r = ws.run("validate", "--online", now=NOW)
        assert r.code == 1  # no login yet
        assert (
            f"FAIL  sources.icloud: no saved iCloud session for {emu.username}; run: "
            "reconcile login icloud\n"
        ) in r.out

        session = ws.root / "state" / "icloud-session"
        seed_trusted_session(emu, session)
        trusted = (NOW - timedelta(days=3)).isoformat()
        marker = session / f"{emu.username.replace('@', '').replace('.', '')}.reconcile-login.json"
        marker.write_text(json.dumps({"trusted_at": trusted}))
        r = ws.run("validate", "--online", now=NOW)
        assert (r.code, r.err) == (0, "")
        assert r.out.splitlines()[-5:] == [
            f"ok    sources.icloud: signed in as {emu.username}; the trusted session is 3 day(s) "
            "old (Apple asks for 2FA again after about 30 days)",
            f"ok    targets.phone.url: Syncthing answers at {pair.local.url} with this key",
            f"ok    targets.phone.folder_id: Syncthing has the folder '{pair.folder_id}'",
            "ok    targets.phone.device_id: Syncthing knows the phone",
            "ok    targets.phone: the phone is connected now",
        ]

        monkeypatch.setenv("SYNCTHING_API_KEY", "wrong")
        emu.server.inject("setup", status=503, times=None)
        r = ws.run("validate", "--online", now=NOW)
        assert r.code == 1
        assert r.out.splitlines()[-2:] == [
            "FAIL  sources.icloud: iCloud is unavailable, the next run retries (sign-in: iCloud "
            "is busy or throttling (HTTP 503))",
            f"FAIL  targets.phone.url: Syncthing at {pair.local.url} rejected the API key "
            "(HTTP 403); copy the key from Syncthing's Settings > General > API Key",
        ]

        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        emu.server.clear_faults()
        ws.config.write_text(
            ws.config.read_text().replace(f'"{pair.folder_id}"', '"no-such-folder"')
        )
        pair.stop_phone()
        later = datetime.now(UTC) + timedelta(days=10)
        r = ws.run("validate", "--online", now=later)
        assert r.code == 1
        lines = r.out.splitlines()
        assert lines[-3:-1] == [
            f"FAIL  targets.phone.folder_id: Syncthing at {pair.local.url} has no folder with id "
            "'no-such-folder'; check the folder id in Syncthing's folder settings",
            "ok    targets.phone.device_id: Syncthing knows the phone",
        ]
        assert lines[-1].startswith("warn  targets.phone: the phone was last seen ")
        assert lines[-1].endswith(" UTC (10 days ago)")


def test_a_state_database_plan_would_stop_on_fails_validate(tmp_path: Path) -> None:
    """validate checked only that the state folder was writable: with a
    damaged state.db it said ok, and plan then stopped on it."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    assert ws.run("plan").code == 0  # the state database made
    ok = ws.run("validate")
    assert ok.code == 0 and "state.db reads" in ok.out, ok.out + ok.err
    db = tmp_path / "state" / "state.db"
    for companion in ("state.db-wal", "state.db-shm"):
        (tmp_path / "state" / companion).unlink(missing_ok=True)
    db.write_bytes(db.read_bytes()[:100] + b"\\0garbage" * 500)
    r = ws.run("validate")
    assert r.code == 1, r.out + r.err
    assert f"FAIL  state.dir: state database {db} is damaged" in r.out, r.out
    assert ws.run("plan").code == 1  # what validate now says beforehand
