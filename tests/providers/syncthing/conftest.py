"""One real loopback Syncthing pair per test session, and helpers to use it.

The pair is started once (about 1.5 s) and shared; each test works on its own
file names so tests do not see each other's deliveries. Syncthing missing is
a failure, not a skip: the Makefile installs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingPair, find_syncthing
from providers.syncthing.target import SyncthingTarget


@pytest.fixture(scope="session")
def syncthing_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncthingPair]:
    find_syncthing()  # raises (fails every test) when syncthing is not installed
    with SyncthingPair.create(tmp_path_factory.mktemp("syncthing")) as pair:
        yield pair


@pytest.fixture
def target(syncthing_pair: SyncthingPair) -> Iterator[SyncthingTarget]:
    with syncthing_pair.target(id="pixel", timeout=5.0) as t:
        yield t


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[str, bytes], tuple[Path, str]]:
    """Write a source file outside the shared folder; return it and its SHA-256."""

    def make(name: str, data: bytes) -> tuple[Path, str]:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    return make
