"""Helpers for tests, end-to-end runs and the demo: a running emulator.

with running_emulator(account) as emu:
    source = ICloudSource("icloud", username=emu.username, password=None,
                          session_dir=d, endpoint=emu.url)
    seed_trusted_session(emu, d)   # skip the interactive 2FA login
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from providers.icloud.emulator.server import EmulatorServer
from providers.icloud.emulator.store import Account


@attrs.frozen
class RunningEmulator:
    url: str
    username: str
    password: str
    server: EmulatorServer
    account: Account


@contextmanager
def running_emulator(
    account: Account | None = None,
    *,
    port: int = 0,
    expired_url_status: int = 410,
    latency: float = 0.0,
) -> Iterator[RunningEmulator]:
    """Serve ``account`` (an empty one by default) on 127.0.0.1 until the
    block ends, adding ``latency`` seconds to every answer."""
    account = account if account is not None else Account()
    with EmulatorServer(
        account, port=port, expired_url_status=expired_url_status, latency=latency
    ) as server:
        yield RunningEmulator(
            url=server.url,
            username=account.username,
            password=account.password,
            server=server,
            account=account,
        )


def session_file_stem(username: str) -> str:
    """pyicloud's file name for an account's session files (word characters only)."""
    return "".join(c for c in username if c.isalnum() or c == "_")


def seed_trusted_session(emulator: RunningEmulator, session_dir: Path | str) -> None:
    """Write a session file as a completed 2FA login leaves it, so a client
    signs in through ``accountLogin`` without a password or a code."""
    directory = Path(session_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    session_token, trust_token = emulator.server.trusted_session()
    path = directory / f"{session_file_stem(emulator.username)}.session"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"session_token": session_token, "trust_token": trust_token}, fh)
