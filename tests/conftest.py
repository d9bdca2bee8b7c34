"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``, a RAM-backed
temporary directory for tests that make thousands of small worlds, and the
iCloud workspace the end-to-end tests share (``emu`` serves the module's own
``account`` fixture; ``ws`` is a workspace whose source is that emulator).

``dev`` (the default): quick, for running tests while working. ``ci``: what
``make test`` selects, the safety and convergence property at depth (at
least 2,000 generated worlds; the whole suite stays well under 15 minutes).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, Workspace, make_workspace

settings.register_profile("dev", max_examples=40)
settings.register_profile("ci", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="module")
def ram_tempdir() -> Iterator[None]:
    """``tempfile`` on /dev/shm where there is one: each generated world
    fsyncs its files and its SQLite journal, which on a disk costs more
    than the whole property does."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield
        return
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(dir=shm, prefix="reconcile-tests-") as tmp:
        tempfile.tempdir = tmp
        try:
            yield
        finally:
            tempfile.tempdir = saved


@pytest.fixture
def emu(account: Account) -> Iterator[RunningEmulator]:
    with running_emulator(account) as emu:
        yield emu


@pytest.fixture
def ws(tmp_path: Path, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
    retries = "[apply]\nretries = 2\nbackoff_base_s = 0\n"
    ws = make_workspace(root, sources=icloud, extra=retries + KEEP_ORIGINALS)
    seed_trusted_session(emu, root / "state" / "icloud-session")
    monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
    monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
    return ws


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    """Two real Syncthing instances on loopback, one playing the phone, with
    this machine's API key in the environment as the tool reads it. A test
    file that needs another pair (a phone that keeps deletions) has its own."""
    with SyncthingPair.create(tmp_path / "syncthing") as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair
