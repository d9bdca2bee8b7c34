"""The command line: exact output and exit codes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import render
from reconciler.cli import main
from reconciler.state import StateDB
from tests.helpers import files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def test_validate_ok_and_bad(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    r = ws.run("validate")
    assert (r.code, r.err) == (0, "")
    assert r.out.startswith(
        f"ok    {ws.config}: valid (1 source(s), 2 target(s), 2 copies required)\n"
    )
    ws.config.write_text("[library]\npath = 1\n[state]\n[oops]\n")
    r = ws.run("validate")
    assert r.code == 1
    assert r.out == ""
    assert r.err == (
        f"error: {ws.config}: library.path: expected a string, got 1\n"
        f"error: {ws.config}: state.dir: required\n"
        f"error: {ws.config}: oops: unknown key\n"
    )


def test_bad_config_touches_nothing(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    ws.config.write_text(ws.config.read_text() + "\n[guards]\nmax_shrink_fraction = 7\n")
    r = ws.run("apply", "--yes", now=NOW)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"error: {ws.config}: guards.max_shrink_fraction: must be in (0, 1]\n"
    assert not (tmp_path / "state").exists()
    assert [p.name for p in ws.target("nas").iterdir()] == [".reconcile-target.json"]


def test_plan_exact_output_and_detailed_exitcode(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    ws.config.write_text(
        ws.config.read_text() + '\n[[policy.tiers]]\nname = "all"\nkeep = "original"\n'
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("plan", now=NOW)
    assert (r.code, r.err) == (0, "")
    sha = json.loads(ws.run("plan", "--json", now=NOW).out)["actions"][0]["sha256"]
    assert r.out == (
        "reconcile will perform these actions:\n"
        "  + copy-to-library incoming:IMG_1.JPG: not in the library\n"
        "  + copy-to-target[nas] incoming:IMG_1.JPG: no verified copy on nas\n"
        "  + copy-to-target[usb] incoming:IMG_1.JPG: no verified copy on usb\n"
        "\n"
        "Plan: 1 to copy into the library, 2 to copy to targets.\n"
    )
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    size = (ws.incoming / "IMG_1.JPG").stat().st_size
    applied = ws.run("apply", "--yes", now=NOW)
    assert applied.code == 0
    # Outcomes are grouped in the plan's order, whatever order they finished in.
    assert applied.out.endswith(
        "  + changed copy-to-library incoming:IMG_1.JPG: copied to 2024/09/16/IMG_1.JPG\n"
        f"  + changed copy-to-target (2, {render.size_text(2 * size)})\n"
        "      incoming:IMG_1.JPG: copied to nas:2024/09/16/IMG_1.JPG\n"
        "      incoming:IMG_1.JPG: copied to usb:2024/09/16/IMG_1.JPG\n"
        "\n"
        "Apply: 3 changed.\n"
    )
    assert len(sha) == 64
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (r.code, r.out) == (0, "No changes. The library matches desired_state.toml.\n")


def test_plan_json_is_versioned(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    doc = json.loads(ws.run("plan", "--json", now=NOW).out)
    assert doc["format_version"] == 1
    assert [a["type"] for a in doc["actions"]] == [
        "copy-to-library",
        "copy-to-target",
        "copy-to-target",
        "encode",
        "remove-from-source",
    ]
    remove = doc["actions"][-1]
    assert remove["depends_on"] == [doc["actions"][1]["id"], doc["actions"][2]["id"]]
    assert doc["summary"] == {
        "copy-to-library": 1,
        "copy-to-target": 2,
        "encode": 1,
        "remove-from-source": 1,
    }


def test_apply_without_yes_and_without_a_terminal_refuses(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("apply", now=NOW)
    assert r.code == 1
    assert r.err == "error: apply needs --yes when there is no terminal to ask (cron: add --yes)\n"
    assert [p.name for p in ws.target("nas").iterdir()] == [".reconcile-target.json"]


def test_saved_plan_applies_and_refuses_what_moved(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    plan_file = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan_file), now=NOW).code == 0
    # The world moves: a new photo arrives, the planned one is replaced.
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    r = ws.run("apply", str(plan_file), "--yes", now=NOW)
    assert r.code == 0, r.err
    assert "IMG_2.JPG" not in "".join(line for line in r.out.splitlines() if " changed " in line)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2  # IMG_2 still to do

    make_jpeg(ws.incoming / "IMG_3.JPG", OLD, seed=3)
    assert ws.run("plan", "--out", str(plan_file), now=NOW).code == 0
    (ws.incoming / "IMG_3.JPG").unlink()
    r = ws.run("apply", str(plan_file), "--yes", now=NOW)
    assert r.code == 0
    assert (
        "  - stale copy-to-target (2)\n"
        "      incoming:IMG_3.JPG: the world changed since the plan was saved; not done (plan "
        "again)\n"
        "      incoming:IMG_3.JPG: the world changed since the plan was saved; not done (plan "
        "again)\n"
    ) in r.out


def test_saved_plan_from_another_config_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    plan_file = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(plan_file), now=NOW).code == 0
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    r = ws.run("apply", str(plan_file), "--yes", now=NOW)
    assert r.code == 1
    assert r.err == (
        f"error: {plan_file} was made from a different {ws.config}; "
        "run reconcile plan --out again\n"
    )


def test_second_concurrent_apply_exits_4_and_a_dead_holder_frees_the_lock(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    (tmp_path / "state").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from reconciler.lock import RunLock\n"
            "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        r = ws.run("apply", "--yes", now=NOW)
        assert time.monotonic() - started < 5  # immediately, not after a wait
        assert r.code == 4
        assert r.err == (
            f"error: another reconcile run (pid {holder.pid}) holds {tmp_path / 'state' / 'lock'}; "
            "wait for it to finish (cron: let runs not overlap)\n"
        )
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
    assert ws.run("apply", "--yes", now=NOW).code == 0


def test_status_after_a_run(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", NOW - timedelta(days=400))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    r = ws.run("status")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == f"state: {tmp_path / 'state' / 'state.db'}"
    assert lines[1].startswith("last run: apply worked, finished 20")
    assert lines[1].endswith(" (exit 0)")
    assert lines[2] == (
        "items: 0 in a source only, 0 in the library only, 0 archived on 1 target, "
        "0 on 2+ targets, 0 waiting on the phone, 1 removed from their source, 0 failed"
    )
    assert lines[3].startswith("library: ")
    assert "files by tier: older 1; compression saved " in lines[3]
    size = next(ws.target("nas").rglob("IMG_1.JPG")).stat().st_size
    kb = f"{size / 1000:.1f} kB"
    assert lines[4] == f"off-loaded from sources by this tool: 1 item(s), {kb}; incoming: 1 ({kb})"
    assert lines[5] == f"targets: nas 1 file(s), {kb}; usb 1 file(s), {kb}"
    assert lines[6] == "every item is archived (2 copies required) or off-loaded"
    assert lines[7] == "last runs:"
    assert lines[8].startswith("  run 1: apply done, exit 0, 20")
    doc = json.loads(ws.run("status", "--json").out)
    assert doc["runs"][0]["summary"] == {
        "changed": 5,
        "bytes_imported": size,
        "bytes_copied": 2 * size,
        "bytes_offloaded": size,
    }
    assert doc["removed"] == {"incoming": {"items": 1, "bytes": size}}
    assert doc["library_tiers"] == {"older": 1}
    assert doc["bytes_saved_by_compression"] > 0
    db = StateDB.in_dir(tmp_path / "state")
    try:  # the census's cheaper figure is the state database's own
        assert doc["bytes_saved_by_compression"] == db.figures()["bytes_saved_by_compression"]
    finally:
        db.close()
    assert doc["census"]["bytes"]["saved_by_compression"] == doc["bytes_saved_by_compression"]
    assert doc["census"]["bytes"]["offloaded"] == size
    assert doc["last_good_apply"] == doc["runs"][0]["finished_at"]
    assert ws.run("plan", now=NOW).code == 0  # a later plan does not hide the apply
    assert ws.run("status").out.splitlines()[1] == lines[1]


def test_init_target_refuses_to_remark_another_store(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    r = ws.run("init-target", str(ws.target("nas")), "--id", "usb")
    assert r.code == 1
    assert (
        r.err
        == f"error: usb: {ws.target('nas')} is already marked as 'nas'; refusing to re-mark it\n"
    )


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    assert ws.run("frobnicate").code == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_apply_asks_at_a_terminal_and_no_means_nothing_is_done(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    for answer, applied in (("n\n", False), ("y\n", True)):
        out = io.StringIO()
        code = main(
            ["-c", str(ws.config), "apply"],
            stdout=out,
            stderr=io.StringIO(),
            stdin=_Terminal(answer),
            now=NOW,
        )
        assert code == 0
        assert "\nApply these 5 actions? [y/N] " in out.getvalue()
        assert ("Nothing done." in out.getvalue()) is not applied
        nas = [p.name for p in ws.target("nas").rglob("*.JPG")]
        assert nas == (["IMG_1.JPG"] if applied else [])


def test_an_unexpected_exception_is_one_line_and_a_logged_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("reconciler.commands.common.make_plan", broken)
    r = ws.run("plan", now=NOW)
    log = tmp_path / "state" / "reconcile.log"
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"error: internal error (RuntimeError: boom); this is a bug. Traceback: {log}\n"
    )
    assert "Traceback (most recent call last)" in log.read_text()
    assert "RuntimeError: boom" in log.read_text()


# ------------------------------------------------- a person's mistakes, one line each

ICLOUD_AT = '[sources.icloud]\nkind = "icloud"\nendpoint = "{url}"\n'


def test_login_without_a_terminal_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(tmp_path, sources=ICLOUD_AT.format(url="http://127.0.0.1:9"))
    monkeypatch.setenv("ICLOUD_USERNAME", "user@example.com")
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    r = ws.run("login", "icloud")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: login asks for the password and a two-factor code: run it in a terminal "
        "(cron and pipes cannot answer)\n"
    )


def test_an_emulator_endpoint_off_this_machine_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, sources=ICLOUD_AT.format(url="http://192.0.2.1:8765"))
    monkeypatch.setenv("ICLOUD_USERNAME", "user@example.com")
    r = ws.run("plan", now=NOW)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: sources.icloud.endpoint: 'http://192.0.2.1:8765' is not an emulator on this "
        "machine; use http://127.0.0.1:PORT (the emulator listens on loopback only), or leave "
        "it empty for Apple\n"
    )


def test_emulator_serve_on_a_busy_port_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["emulator", "serve", "--port", str(port), "--generate", "0"], stdout=out, stderr=err
        )
    assert (code, out.getvalue()) == (1, "")
    assert err.getvalue() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (another emulator?); "
        "pick another --port, or --port 0 for any free one\n"
    )


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`reconcile plan | head -1`: the reader is gone before the plan is printed."""
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    read, write = os.pipe()
    os.close(read)  # the reader has gone: every write is EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "plan"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_path_the_person_chose_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    out = tmp_path / "no-such-folder" / "plan.json"
    r = ws.run("plan", "--out", str(out), now=NOW)
    assert r.code == 1
    assert r.err == f"error: {out}: No such file or directory; fix that, then run again\n"


def test_the_crash_log_never_lands_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    cwd, xdg = tmp_path / "cwd", tmp_path / "xdg"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_STATE_HOME", str(xdg))
    monkeypatch.setattr("reconciler.commands.status.status_command", broken)
    err = io.StringIO()
    code = main(["-c", str(tmp_path / "missing.toml"), "status"], stdout=io.StringIO(), stderr=err)
    log = xdg / "reconcile" / "reconcile.log"
    assert code == 1
    assert err.getvalue() == (
        f"error: internal error (RuntimeError: boom); this is a bug. Traceback: {log}\n"
    )
    assert "RuntimeError: boom" in log.read_text()
    assert list(cwd.iterdir()) == []


PHONE_WITHOUT_KEY = """
[targets.phone]
kind = "syncthing"
path = "phone"
folder_id = "pixel-photos"
device_id = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
"""


def test_a_phone_without_its_api_key_is_unavailable_and_the_rest_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCTHING_API_KEY", raising=False)
    ws = make_workspace(tmp_path, removal=False, extra=PHONE_WITHOUT_KEY + _KEEP)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1
    assert (
        "  ! unavailable target phone: SYNCTHING_API_KEY is not set in the environment; export "
        "it (Syncthing: Settings > General > API Key); nothing is written there\n"
    ) in r.out
    assert r.err == "error: target phone could not be read (see '!' above); the rest was done\n"
    assert [p.name for p in ws.target("nas").rglob("*.JPG")] == ["IMG_1.JPG"]
    assert "phone: SYNCTHING_API_KEY is not set" in ws.run("status").out


_KEEP = '\n[[policy.tiers]]\nname = "all"\nkeep = "original"\n'


def test_init_target_refuses_a_missing_path_unless_told_to_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the NAS unmounted, /mnt/nas/photos does not exist: making it would
    put a "backup" on the system disk. Here tmp_path/mnt plays /mnt."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    monkeypatch.setattr("reconciler.preflight.MOUNT_BASES", (str(mnt),))
    ws = make_workspace(tmp_path / "ws")
    photos = mnt / "nas" / "photos"
    r = ws.run("init-target", str(photos), "--id", "nas")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"error: {photos} does not exist; is the disk mounted? "
        "To make a new folder there, add --create\n"
    )
    assert not (mnt / "nas").exists()

    r = ws.run("init-target", str(photos), "--id", "nas", "--create")
    assert r.code == 0
    assert r.err == (
        f"warning: {photos} is on the same filesystem as {_mount_point(mnt)} (nothing is mounted "
        f"under {mnt} there): is the disk mounted? If not, the folder is on the system disk "
        "and hidden once the disk is mounted\n"
    )
    assert r.out == f"{photos} is now the store 'nas' (.reconcile-target.json written)\n"


def test_init_target_on_a_mounted_disk_says_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real filesystem mounted under the mount folder (tests run as root)."""
    mnt = tmp_path / "mnt"
    disk = mnt / "nas"
    disk.mkdir(parents=True)
    monkeypatch.setattr("reconciler.preflight.MOUNT_BASES", (str(mnt),))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        ws = make_workspace(tmp_path / "ws")
        r = ws.run("init-target", str(disk / "photos"), "--id", "nas", "--create")
        assert (r.code, r.err) == (0, "")
        assert (disk / "photos" / ".reconcile-target.json").is_file()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _mount_point(path: Path) -> Path:
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def test_every_plan_and_apply_is_recorded_with_its_exit_code_and_why(tmp_path: Path) -> None:
    import sqlite3

    from reconciler.lock import RunLock

    ws = make_workspace(tmp_path, extra=_KEEP)
    size = make_jpeg(ws.incoming / "IMG_1.JPG", OLD).stat().st_size
    assert ws.run("plan", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    held = RunLock(tmp_path / "state")
    held.acquire()
    try:
        locked = ws.run("apply", "--yes", now=NOW)
    finally:
        held.release()
    assert locked.code == 4
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (ws.target("usb") / ".reconcile-target.json").unlink()  # the usb disk is gone
    assert ws.run("apply", "--yes", now=NOW).code == 1
    assert ws.run("validate").code == 1  # not a run: nothing recorded

    db = sqlite3.connect(tmp_path / "state" / "state.db")
    rows = db.execute("select command, status, exit_code, reason, summary from runs").fetchall()
    db.close()
    planned = '{"copy-to-library": 1, "copy-to-target": 2, "remove-from-source": 1}'
    assert rows == [
        ("plan", "ok", 0, "", planned),
        ("plan", "changes", 2, "", planned),
        ("apply", "locked", 4, locked.err.removeprefix("error: ").rstrip("\n"), "{}"),
        (
            "apply",
            "done",
            0,
            "",
            json.dumps(
                {
                    "changed": 4,
                    "bytes_imported": size,
                    "bytes_copied": 2 * size,
                    "bytes_offloaded": size,
                }
            ),
        ),
        (
            "apply",
            "error",
            1,
            "target usb could not be read (see '!' above); the rest was done",
            "{}",
        ),
    ]
    status = ws.run("status").out.splitlines()
    last_good = status[1].rsplit("; last apply that worked: ", 1)[1]
    assert status[1] == (
        f"last run: apply failed, finished {status[1].split('finished ')[1].split(' (')[0]} "
        "(exit 1): target usb could not be read (see '!' above); the rest was done; "
        f"last apply that worked: {last_good}"
    )
    assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", last_good)
    runs = status[status.index("last runs:") + 1 :]
    assert runs[0].startswith("  run 5: apply error, exit 1, 20")
    assert runs[0].endswith(" s")  # it did nothing: no figures
    assert runs[1] == "    target usb could not be read (see '!' above); the rest was done"


def test_runs_are_logged_in_the_state_dir_rotated_and_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotation = "\n[log]\nmax_file_size_mb = 0.002\nbackup_count = 2\n"
    ws = make_workspace(tmp_path, extra=_KEEP + rotation)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    # A secret that happens to equal a word of the output must still not be written.
    monkeypatch.setenv("SYNCTHING_API_KEY", "IMG_1.JPG")
    monkeypatch.setenv("ICLOUD_PASSWORD", "copy-to-library")
    r = ws.run("-q", "apply", "--yes", now=NOW)
    assert (r.code, r.out, r.err) == (0, "", "")  # -q: nothing on the terminal
    log = tmp_path / "state" / "reconcile.log"
    # One apply's log (its stage lines, every outcome) already rotates once.
    text = "".join(p.read_text() for p in sorted(log.parent.glob("reconcile.log*"), reverse=True))
    lines = text.splitlines()
    assert lines[0].endswith(f"INFO reconcile: reconcile apply (config {ws.config})")
    assert lines[0][:24].endswith("Z") and lines[0][10] == "T"  # a UTC timestamp
    assert "  + *** incoming:***: not in the library" in text
    assert "IMG_1.JPG" not in text and "copy-to-library" not in text
    assert lines[-1].endswith("INFO reconcile: apply exited 0")
    for _ in range(15):
        assert ws.run("-v", "plan", now=NOW).code == 0
    logs = sorted(p.name for p in log.parent.glob("reconcile.log*"))
    assert logs == ["reconcile.log", "reconcile.log.1", "reconcile.log.2"]
    assert all(p.stat().st_size < 4000 for p in log.parent.glob("reconcile.log*"))
    assert not any("IMG_1.JPG" in p.read_text() for p in log.parent.glob("reconcile.log*"))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"reconcile {version('reconcile')}\n"


def test_a_prometheus_textfile_is_rewritten_after_every_run(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ws = make_workspace(tmp_path, extra=_KEEP + '\n[log]\nmetrics_file = "metrics/r.prom"\n')
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    prom = tmp_path / "metrics" / "r.prom"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples[("reconcile_last_exit_code", (("command", "apply"),))] == 0
    assert samples[("reconcile_last_exit_code", (("command", "plan"),))] == 0
    assert samples[("reconcile_last_run_actions", (("command", "apply"), ("what", "changed")))] == 4
    assert samples[("reconcile_removed_items", ())] == 1
    states = {k[1][0][1]: v for k, v in samples.items() if k[0] == "reconcile_items"}
    assert states == {
        "source_only": 0,
        "library_only": 0,
        "archived_1": 0,
        "archived_2plus": 0,
        "waiting_phone": 0,
        "removed": 1,
        "failed": 0,
    }
    nas_bytes = samples[("reconcile_target_bytes", (("target", "nas"),))]
    assert samples[("reconcile_target_files", (("target", "nas"),))] == 1
    assert samples[("reconcile_bytes", (("what", "offloaded"),))] == nas_bytes
    copied = samples[("reconcile_last_run_bytes", (("command", "apply"), ("what", "copied")))]
    assert (
        copied == 2 * (ws.target("nas") / next(iter(files_under(ws.target("nas"))))).stat().st_size
    )
    ended = samples[("reconcile_last_run_timestamp_seconds", (("command", "apply"),))]
    assert abs(ended - time.time()) < 60
    # no temporary left; its writers' lock beside it (node_exporter reads *.prom)
    assert sorted(p.name for p in prom.parent.iterdir()) == [".r.prom.lock", "r.prom"]


def test_init_target_on_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    no_dac = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    cli = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config)]
    p = subprocess.run(
        [*no_dac, *cli, "init-target", str(locked), "--id", "nas"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == f"error: cannot mark {locked} as the store 'nas': Permission denied\n"


def test_tab_completion_still_answers_the_shell(tmp_path: Path) -> None:
    """argcomplete is loaded only when the shell asks for completions (its
    ``_ARGCOMPLETE`` variable), not on every run; asked, it completes."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "COMP_LINE": "reconcile pl",
        "COMP_POINT": "12",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text().split() == ["plan"]
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, reconciler.cli; print('argcomplete' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() == "False"


_LET_GO = """
import gc, sys, weakref
from reconciler import leftover
from reconciler.commands.common import Out, let_go

class Held:
    def __del__(self):
        print("freed", flush=True)

io = Out(sys.stdout, sys.stderr, sys.stdin)
io.ends_process = sys.argv[1] != "caller goes on"
value = Held()
alive = weakref.ref(value)
let_go(io, value)
del value
gc.collect()
if sys.argv[1] == "reclaimed":  # a census counted anew needs the memory
    leftover.reclaim()
print("kept" if alive() is not None else "gone", flush=True)
"""


@pytest.mark.parametrize(
    ("mode", "said"),
    [("process", "kept\n"), ("caller goes on", "freed\ngone\n"), ("reclaimed", "freed\ngone\n")],
)
def test_what_a_command_lets_go_is_freed_unless_the_process_ends_with_it(
    mode: str, said: str
) -> None:
    """The console script's plan leaves its world for the exit to reclaim:
    neither a collection nor the interpreter's teardown frees it (no
    ``freed`` after ``kept``); called from code that goes on, it is freed,
    and so it is when work that needs the memory reclaims it."""
    done = subprocess.run(
        [sys.executable, "-c", _LET_GO, mode], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == said


def test_a_converged_plan_as_the_program_leaves_its_world_unless_the_census_is_counted(
    tmp_path: Path,
) -> None:
    """The world stays to the exit only while nothing else needs its memory:
    a plan whose census must be counted again (the configuration changed
    since the last run) frees it first, so the run's peak is not the two
    together; the next plan, its census reused, leaves it; a plan with work
    frees it before showing that work."""
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2020, 5, 1, tzinfo=UTC))
    assert ws.run("apply", "--yes").code == 0
    for _ in range(2):  # settled: the census of the last run is this one's
        assert ws.run("plan").code == 0
    # Another configuration, the same plan: another census key.
    ws.config.write_text(ws.config.read_text() + "\n[log]\nbackup_count = 4\n")
    code = (
        "import sys\n"
        "from reconciler import leftover\n"
        "from reconciler.cli import main\n"
        f"sys.argv = ['reconcile', '-c', {str(ws.config)!r}, 'plan', '-q']\n"
        "assert main() == 0\n"
        "print('kept' if leftover._LEFT else 'freed')\n"
    )
    said = []
    # Then a photo to copy: its first plan hashes it (the census is counted
    # anew), the second reuses that census; neither leaves a world.
    for photo in (None, None, "IMG_2.JPG", None):
        if photo:
            make_jpeg(ws.incoming / photo, datetime(2020, 5, 2, tzinfo=UTC), seed=2)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        said.append(done.stdout)
    assert said == ["freed\n", "kept\n", "freed\n", "freed\n"]
