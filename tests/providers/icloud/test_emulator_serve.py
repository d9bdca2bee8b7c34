"""``reconcile emulator serve`` as a person uses it: a real process that
prints where it listens, the account's username and password, and each
two-factor code it "sends"; the real pyicloud client logs in with them."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from providers.icloud.session import connect, login_interactive
from tests.helpers import make_jpeg

CODE_LINE = "2FA code sent to the trusted phone: "


def _lines(stream: object) -> queue.Queue[str]:
    """Each line the process prints, as it prints it (a reader thread, so a
    missing line fails the test after a timeout instead of hanging it)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _expect(lines: queue.Queue[str], prefix: str) -> str:
    seen = []
    while True:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"no line starting {prefix!r}; printed: {seen}") from None
        if line.startswith(prefix):
            return line.removeprefix(prefix)
        seen.append(line)


def test_serve_prints_the_2fa_code_a_person_logs_in_with(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    make_jpeg(photos / "IMG_0001.JPG", datetime(2020, 5, 1, tzinfo=UTC), seed=1)
    reconcile = Path(sys.executable).parent / "reconcile"  # what `make` installs
    with subprocess.Popen(
        [str(reconcile), "emulator", "serve", "--port", "0", "--seed-folder", str(photos)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            _log_in_as_printed(_lines(proc.stdout), tmp_path / "session")
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()  # the assertion below fails: Ctrl-C did not stop it
                proc.wait()
        assert (proc.returncode, proc.stderr.read()) == (0, "")


def _log_in_as_printed(lines: queue.Queue[str], session: Path) -> None:
    url = _expect(lines, "iCloud emulator listening on ")
    assert url.startswith("http://127.0.0.1:")
    username = _expect(lines, "username: ")
    password = _expect(lines, "password: ")
    assert _expect(lines, "assets: ") == "1"
    how = _expect(lines, "To log in, ")
    assert f'endpoint = "{url}"' in how and f"ICLOUD_USERNAME={username}" in how

    codes: list[str] = []

    def code_from_the_terminal(prompt: str) -> str:
        codes.append(_expect(lines, CODE_LINE))
        return codes[-1]

    login_interactive(username, password, session, code_from_the_terminal, url)
    assert len(codes) == 1 and codes[0].isdigit() and len(codes[0]) == 6
    # The trusted session it left signs in unattended, with no password.
    api = connect("icloud", username, None, session, endpoint=url)
    try:
        assert [p.filename for p in api.photos.all] == ["IMG_0001.JPG"]
    finally:
        api.session.close()
