"""The whole tool against the iCloud emulator, through the real pyicloud.

Each icloudpd failure mode (shared/reference/icloud.md) is shown not to
happen here, and the removal gate is shown to hold at apply time.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import (
    RunningEmulator,
)
from reconciler.cli import main
from tests.helpers import (
    KEEP_ORIGINALS,
    Workspace,
    files_under,
    make_jpeg,
    make_workspace,
    media_under,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


def jpeg_bytes(tmp: Path, seed: int) -> bytes:
    return make_jpeg(tmp / f"src{seed}.jpg", OLD, seed=seed).read_bytes()


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    src = tmp_path / "src"
    account.add_asset(jpeg_bytes(src, 1), "IMG_0001.JPG", asset_date=OLD)
    account.add_asset(
        jpeg_bytes(src, 2), "IMG_0002.JPG", asset_date=OLD, live_video=b"live-mov" * 999
    )
    # Same name, same size, different bytes: two photos, both must survive.
    account.add_asset(b"A" * 5000, "IMG_1234.PNG", asset_date=OLD)
    account.add_asset(b"B" * 5000, "IMG_1234.PNG", asset_date=OLD)
    account.add_asset(jpeg_bytes(src, 3), "RECENT.JPG", asset_date=NOW)
    return account


def test_icloud_is_archived_then_offloaded_and_a_second_plan_is_empty(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    originals = sorted(
        [a.master.original.data or b"" for a in account.live_assets()]
        + [a.master.live_video.data or b"" for a in account.live_assets() if a.master.live_video]
    )
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert ws.run("plan", "--detailed-exitcode", now=NOW).out == (
        "No changes. The library matches desired_state.toml.\n"
    )
    for target in ("nas", "usb", "library"):
        assert sorted(media_under(ws.target(target)).values()) == originals
        # One sidecar per item beside its original (both IMG_1234.PNG too).
        assert len(files_under(ws.target(target))) - len(originals) == 5
    # Old items went to Recently Deleted; the recent one stays in iCloud.
    assert [a.master.filename for a in account.live_assets()] == ["RECENT.JPG"]
    assert len(account.deleted_assets()) == 4
    # The Live Photo's two files sit side by side; both IMG_1234.PNG survive.
    names = sorted(p.name for p in (ws.library / "2021/06/01").iterdir() if p.suffix != ".xmp")
    assert names[:4] == ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0002.MOV", "IMG_1234.PNG"]
    assert len(names) == 5 and names[4].startswith("IMG_1234~")
    # The census: the Live Photo is one item, the two IMG_1234.PNG are two.
    census = json.loads(ws.run("status", "--json", now=NOW).out)["census"]
    assert census["items"] == {
        "source_only": 0,
        "library_only": 0,
        "archived_1": 0,
        "archived_2plus": 1,
        "waiting_phone": 0,
        "removed": 4,
        "failed": 0,
    }
    [recent] = account.live_assets()
    assert census["bytes"]["icloud"] == len(recent.master.original.data or b"")


def test_failed_downloads_never_lead_to_a_removal(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    emu.server.inject("download", status=500, times=None)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert "error: some actions failed" in r.err
    assert len(account.live_assets()) == 5
    assert account.deleted_assets() == []
    assert files_under(ws.target("nas")) == {}
    # Nothing half-written is left behind by the failed streams.
    leftovers = [p for p in ws.library.rglob("*") if p.is_file()]
    assert [p.name for p in leftovers] == [".reconcile-target.json"]


def test_a_truncated_body_is_detected_and_retried(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    emu.server.inject_truncation(fraction=0.5, mode="lie", times=3)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    originals = {a.master.original.data for a in account.deleted_assets()}
    assert originals <= set(files_under(ws.target("nas")).values())


def test_a_503_storm_ends_the_run_cleanly_and_the_next_run_completes(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    # One stream: the first download spends its retries, and the others,
    # which would all be running at once, are not started against the storm.
    ws.config.write_text(
        ws.config.read_text().replace("retries = 2\n", "retries = 2\ndownload_streams = 1\n")
    )
    emu.server.inject("download", status=503, retry_after=0, times=None)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert "throttling this run; next run" in r.out
    assert account.deleted_assets() == []
    emu.server.clear_faults()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert len(account.deleted_assets()) == 4


def test_removal_gate_with_a_copy_corrupt_at_apply_time(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    ws.config.write_text(ws.config.read_text().replace("enabled = true", "enabled = false"))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))
    # Between observation and removal, the usb copy of one photo goes bad.
    victim = next(ws.target("usb").rglob("IMG_0001.JPG"))
    import reconciler.gate as gate_module

    real_gate = gate_module.RemovalGate.check

    def corrupting_gate(self: gate_module.RemovalGate, a: object, side: object = None) -> list[str]:
        if victim.exists():
            victim.write_bytes(b"bit rot")
        return real_gate(self, a, side)  # type: ignore[arg-type]

    gate_module.RemovalGate.check = corrupting_gate  # type: ignore[method-assign]
    try:
        r = ws.run("apply", "--yes", now=NOW)
    finally:
        gate_module.RemovalGate.check = real_gate  # type: ignore[method-assign]
    assert r.code == 3
    assert (
        "  ! refused remove-from-source icloud:IMG_0001.JPG: IMG_0001.JPG: 1 of 2 verified" in r.out
    )
    assert "IMG_0001.JPG" in [a.master.filename for a in account.live_assets()]
    # The next plan says why it is still there, and repairs the copy.
    p = ws.run("plan", now=NOW)
    assert "+ copy-to-target[usb] icloud:IMG_0001.JPG: no verified copy on usb" in p.out


def test_an_expired_login_stops_before_doing_anything(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    emu.server.revoke_trust()
    emu.server.expire_sessions()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 3
    assert r.err.count("\n") == 1 and "reconcile login icloud" in r.err
    assert files_under(ws.target("nas")) == {}
    assert account.deleted_assets() == []


def test_hostile_and_odd_filenames_stay_inside_and_never_overwrite(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    names = [
        "../escape.jpg",
        "../../../../etc/passwd",
        "/",
        "a\x00b.jpg",
        "x" * 300 + ".jpg",
        "caf\u00e9.jpg",  # NFC
        "cafe\u0301.jpg",  # NFD: the same name to a person, and after normalising
        "..",
        "dir/inner.jpg",
    ]
    for n, name in enumerate(names):
        account.add_asset(f"hostile {n}".encode() * 100, name, asset_date=OLD)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    expected = {a.master.original.data for a in account.deleted_assets()}
    assert len(expected) == 4 + len(names)  # all old items off-loaded
    for store in ("library", "nas", "usb"):
        root = ws.target(store).resolve()
        held = files_under(root)
        # Every original is there once, under its own name: nothing overwritten.
        assert set(held.values()) >= expected
        for rel in held:
            path = (root / rel).resolve()
            assert path.is_relative_to(root)
            assert len(path.name.encode()) <= 255
    assert not (tmp_path / "escape.jpg").exists()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_staging_album_records_what_was_offloaded(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    ws.config.write_text(
        ws.config.read_text().replace(
            'kind = "icloud"\n', 'kind = "icloud"\nstaging_album = "DeletePending"\n'
        )
    )
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (album,) = account.albums_named("DeletePending")
    removed = {a.asset_id for a in account.deleted_assets()}
    assert len(removed) == 4
    assert set(album.asset_ids) == removed


class _CodeFromThePhone(io.StringIO):
    """stdin for `reconcile login icloud`: the person types the code the
    emulator just sent (known only once the prompt is shown)."""

    def __init__(self, emu: RunningEmulator) -> None:
        super().__init__()
        self.emu = emu

    def readline(self, size: int | None = -1) -> str:
        return f"{self.emu.server.last_sms_code}\n"

    def isatty(self) -> bool:
        return True


def test_login_icloud_then_unattended_runs_and_status_shows_the_session_age(
    tmp_path: Path, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\n'
    ws = make_workspace(tmp_path / "fresh", sources=icloud, extra=KEEP_ORIGINALS)
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)

    r = ws.run("plan", now=NOW)  # no session yet: a person is needed
    assert r.code == 3
    assert r.err.startswith("error: ") and "reconcile login icloud" in r.err

    monkeypatch.setenv("ICLOUD_PASSWORD", emu.password)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["-c", str(ws.config), "login", "icloud"],
        stdout=out,
        stderr=err,
        stdin=_CodeFromThePhone(emu),
    )
    assert (code, err.getvalue()) == (0, "")
    session = ws.root / "state" / "icloud-session"
    assert out.getvalue().endswith(
        f"Logged in to iCloud as {emu.username}; the trusted session is in {session}.\n"
    )
    for f in session.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f  # secrets: owner only

    monkeypatch.delenv("ICLOUD_PASSWORD")  # cron has no password
    assert ws.run("apply", "--yes", now=NOW).code == 0
    status = ws.run("status").out
    [session_line] = [line for line in status.splitlines() if line.startswith("icloud: ")]
    due = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    assert session_line.startswith("icloud: trusted iCloud session is 0 day(s) old, last used ")
    assert session_line.endswith(
        f" UTC (run 2); 2FA is due again about {due} (in 29 day(s): Apple asks after about "
        "30 days, estimated from the login's date)"
    )


def test_emulator_serve_prints_where_and_how_to_log_in(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "emulator",
            "serve",
            "--port",
            "0",
            "--generate",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(4)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert lines[0].startswith("iCloud emulator listening on http://127.0.0.1:")
    assert lines[1:] == [
        "username: user@example.com",
        "password: correct horse battery staple",
        "assets: 3",
    ]


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ({"status": 503}, "iCloud is busy or throttling (HTTP 503)"),
        (
            {"status": 429, "retry_after": 0},
            "iCloud is busy or throttling (HTTP 429); retry after 0s",
        ),
        ({"delay": 2.0}, "iCloud could not be reached (timeout or connection error)"),
    ],
)
def test_a_transient_answer_at_sign_in_is_exit_1_not_a_login_request(
    ws: Workspace, account: Account, emu: RunningEmulator, fault: dict[str, float], why: str
) -> None:
    ws.config.write_text(ws.config.read_text().replace("timeout_s = 5", "timeout_s = 1"))
    emu.server.inject("setup", times=None, **fault)  # type: ignore[arg-type]
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert r.err == "error: source icloud could not be read (see '!' above); the rest was done\n"
    assert (
        "  ! unavailable source icloud: listing failed: icloud: iCloud is unavailable, the next "
        f"run retries (sign-in: {why}); nothing is removed from it this run\n"
    ) in r.out
    assert "login" not in r.out + r.err
    assert account.deleted_assets() == []
    emu.server.clear_faults()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_status_says_when_apple_refused_the_session(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    emu.server.revoke_trust()
    emu.server.expire_sessions()
    assert ws.run("apply", "--yes", now=NOW).code == 3
    lines = ws.run("status").out.splitlines()
    refused = [line for line in lines if line.startswith("icloud: ")]
    assert len(refused) == 1
    assert refused[0].startswith("icloud: Apple refused the session in run 1 (20")
    assert refused[0].endswith("); run: reconcile login icloud")
    assert lines[1].startswith("last run: apply needs a person, finished ")
