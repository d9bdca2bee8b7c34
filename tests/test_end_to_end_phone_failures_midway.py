"""The phone's target failing half-way, against a real loopback pair.

Before: a run killed between a freeing's ignore line and the deletion of
the staging copy left that copy ignored here for ever (the phone's copy
never shown held again: waiting, exit 0, never freed); the phone's folder
paused on the phone after the canary made the removal gate refuse (exit 3)
and forget the copy, and a freeing say "refused"; and a fault of this
machine's (the shared folder's disk full, an ``.stignore`` Syncthing here
cannot load) was reported as the phone waiting, exit 0, run after run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from providers.syncthing import ignores
from providers.syncthing.pair import SyncthingPair
from reconciler import gate
from reconciler.apply import removals
from reconciler.apply.outcomes import Skip
from reconciler.model import FreeStagingCopy, RemoveFromSource
from tests.helpers import Workspace, files_under, make_jpeg, mounted, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
CONVERGED = (0, "No changes. The library matches desired_state.toml.\n")
REL = "2022/03/04/IMG_1.JPG"

#: The CLI, SIGKILLed (as a power cut would stop it) right after a freeing's
#: ignore line was written and scanned, before the staging copy is deleted.
KILLED_AFTER_THE_LINE = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from providers.syncthing import ignores
    from providers.syncthing.client import SyncthingClient
    from reconciler.cli import main

    real_scan = SyncthingClient.scan
    folder = Path(os.environ["FOLDER"])

    def scan(self, folder_id, sub=None):
        real_scan(self, folder_id, sub)
        if sub and (folder / sub).is_file() and sub in ignores.decisive(folder):
            os.kill(os.getpid(), signal.SIGKILL)

    SyncthingClient.scan = scan
    sys.exit(main(sys.argv[1:], now=datetime(2026, 11, 25, 12, tzinfo=UTC)))
    """
)


def _pause_on_phone(pair: SyncthingPair) -> None:
    """The phone's folder paused on the phone: the connection stays up."""
    r = requests.patch(
        f"{pair.phone.url}/rest/config/folders/{pair.folder_id}",
        json={"paused": True},
        headers={"X-API-Key": pair.phone.api_key},
        timeout=15,
    )
    r.raise_for_status()
    time.sleep(1.5)  # the phone's cluster config reaches this machine


def _confirmed(ws: Workspace, timeout: float = 25) -> None:
    """Applied until the phone confirmed everything (nothing waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        r = ws.run("plan", "--detailed-exitcode", now=NOW)
        if r.code == 0 and "waiting" not in r.out:
            return
        assert time.monotonic() < deadline, r.out
        time.sleep(0.3)


def _ready(tmp_path: Path, pair: SyncthingPair, options: str = "") -> tuple[Workspace, bytes]:
    """IMG_1 archived on the NAS and confirmed by the phone; removal on."""
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=False, phone_options="liveness_timeout_s = 2\n" + options
    )
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    _confirmed(ws)
    ws.removal(True)
    return ws, photo


def _census(ws: Workspace) -> dict[str, Any]:
    items: dict[str, Any] = json.loads(ws.run("status", "--json").out)["census"]["items"]
    return items


def _freed_converges(ws: Workspace, pair: SyncthingPair, photo: bytes) -> None:
    """The next runs take the half-done freeing back and free it anew."""
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "freed on this machine; the phone keeps its copy" in r.out, r.out
    assert not (pair.local_folder / REL).exists()
    assert photo in phone_files(pair).values()
    final = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (final.code, final.out) == CONVERGED, final.out
    census = _census(ws)
    assert census["waiting_phone"] == 0 and census["removed"] == 1, census


def test_a_run_killed_between_the_freed_line_and_the_delete_converges(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws, photo = _ready(tmp_path, pair, "delete_local_copy = true\n")
    p = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_THE_LINE, "-c", str(ws.config), "apply", "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FOLDER": str(pair.local_folder)},
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert p.returncode == -9, (p.returncode, p.stdout, p.stderr)
    assert files_under(ws.incoming) == {}  # removed before the kill
    assert (pair.local_folder / REL).is_file()  # the staging copy is still here ...
    assert REL in ignores.decisive(pair.local_folder)  # ... under its freed line
    _freed_converges(ws, pair, photo)


def test_a_staging_copy_left_under_its_freed_line_is_taken_back(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same state left otherwise: the take-back of the line failed, or
    Syncthing rescanned on its own between the line and the delete."""
    ws, photo = _ready(tmp_path, pair, "delete_local_copy = true\n")

    def not_yet(self: removals.Remover, a: FreeStagingCopy) -> Any:
        raise Skip("waiting", "not freed in this run")

    with monkeypatch.context() as m:
        m.setattr(removals.Remover, "_free", not_yet)
        assert ws.run("apply", "--yes", now=NOW).code == 0  # removed; not freed
    # the line written and scanned, the staging copy still here
    ignores.ensure(pair.local_folder, f"/{REL}", ignores.FREED_COMMENT)
    requests.post(
        f"{pair.local.url}/rest/db/scan",
        params={"folder": pair.folder_id, "sub": REL},
        headers={"X-API-Key": pair.local.api_key},
        timeout=15,
    ).raise_for_status()
    _freed_converges(ws, pair, photo)


def test_a_phone_folder_paused_there_before_the_gate_is_unavailable_not_wrong(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = _ready(tmp_path, pair)
    real = gate.RemovalGate.check
    done: list[int] = []

    def check(self: gate.RemovalGate, a: RemoveFromSource, side: Any = None) -> list[str]:
        if not done:
            done.append(1)
            _pause_on_phone(pair)
        return real(self, a, side)

    monkeypatch.setattr(gate.RemovalGate, "check", check)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert (
        "skipped remove-from-source incoming:IMG_1.JPG: IMG_1.JPG: 1 of 2 verified copies now "
        "(nas); unavailable now: phone; kept"
    ) in r.out, r.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
    assert _census(ws)["archived_2plus"] == 1  # the phone's copy is not forgotten


def test_a_phone_folder_paused_there_before_a_free_is_waiting_not_refused(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = _ready(tmp_path, pair, "delete_local_copy = true\n")
    real: Callable[..., Any] = removals.Remover._free
    done: list[int] = []

    def free(self: removals.Remover, a: FreeStagingCopy) -> Any:
        if not done:
            done.append(1)
            _pause_on_phone(pair)
        return real(self, a)

    monkeypatch.setattr(removals.Remover, "_free", free)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}  # removed: the phone was there at the gate
    assert "refused" not in r.out and "safety gate" not in r.out + r.err, r.out
    assert f"waiting free-staging-copy phone:{REL}" in r.out, r.out
    assert (pair.local_folder / REL).is_file()  # kept


@pytest.fixture
def small_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    """A pair whose shared folder here is on a small disk of its own."""
    base = tmp_path / "syncthing"
    with (
        mounted(base / "local-folder", "-t", "tmpfs", "-o", "size=2m", "tmpfs"),
        SyncthingPair.create(base) as pair,
    ):
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def test_a_full_outbox_is_this_machine_s_error_not_a_phone_waiting(
    tmp_path: Path, small_pair: SyncthingPair
) -> None:
    ws, _ = _ready(tmp_path, small_pair, "delete_local_copy = true\n")
    filler = small_pair.local_folder / ".stversions" / "filler"
    filler.parent.mkdir(exist_ok=True)
    with open(filler, "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1, r.out + r.err
    assert (
        "! unavailable target phone: syncthing: cannot write the canary "
        f"{small_pair.local_folder}/.reconcile-canary: [Errno 28] No space left on device: "
        "this machine's disk holding the shared folder is full; free space on it (staging "
        "copies are freed only once the phone is proven alive, which needs this small test "
        "file written there)"
    ) in r.out, r.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]  # the phone unavailable: kept
    filler.unlink()
    r = ws.run("apply", "--yes", now=NOW)  # space made: it goes on
    assert r.code == 0, r.out + r.err
    assert "freed on this machine; the phone keeps its copy" in r.out, r.out


def test_a_stignore_syncthing_here_cannot_load_is_this_machine_s_error(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws, _ = _ready(tmp_path, pair)
    st = pair.local_folder / ".stignore"
    st.write_text(st.read_text() + "#include no-such-file.txt\n")
    r = ws.run("apply", "--yes", now=NOW)
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (r.code, p.code) == (1, 1), (r.out, p.out)
    said = (
        "! unavailable target phone: syncthing: Syncthing cannot read the ignore patterns of "
        f"folder {pair.folder_id!r}: parse error: failed to load include file "
        f"no-such-file.txt: open {pair.local_folder}/no-such-file.txt: no such file or "
        "directory; fix it on this machine"
    )
    assert said in r.out and said in p.out, r.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]
