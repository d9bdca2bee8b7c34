"""Faults of this machine's, and a phone folder stopped there, against a
real loopback pair: said as such, never as a phone running late or a copy
it lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from providers.syncthing.pair import SyncthingPair
from reconciler.errors import ProviderError
from tests.providers.syncthing.support import wait_for

pytestmark = pytest.mark.syncthing

MakeFile = Callable[[str, bytes], tuple[Path, str]]


def test_syncthing_s_error_text_is_said_whole(pair: SyncthingPair) -> None:
    """Before: cut at 200 characters, mid-word ("no such file o")."""
    (pair.local_folder / ".stignore").write_text("#include no-such-file.txt\n")
    with pair.target(timeout=5.0) as run, pytest.raises(ProviderError) as e:
        run._client.scan(pair.folder_id, "x")
    assert str(e.value).endswith(
        f"HTTP 500: loading ignores: parse error: failed to load include file "
        f"no-such-file.txt: open {pair.local_folder}/no-such-file.txt: no such file or directory"
    ), str(e.value)


def test_a_phone_folder_paused_there_is_away_not_a_no(
    pair: SyncthingPair, make_file: MakeFile
) -> None:
    """Its folder paused on the phone, Syncthing here drops the phone from
    every file's availability while the connection stays up."""
    src, sha = make_file("IMG_1.JPG", b"held, then the phone's folder paused")
    with pair.target(timeout=5.0, liveness_timeout=2.0) as run:
        copy = run.put(src, "p/IMG_1.JPG", sha)
        assert wait_for(lambda: run.confirm(copy.path), held=True).held
        assert run.prove_alive().alive
        requests.patch(
            f"{pair.phone.url}/rest/config/folders/{pair.folder_id}",
            json={"paused": True},
            headers={"X-API-Key": pair.phone.api_key},
            timeout=15,
        ).raise_for_status()
        time.sleep(1.5)
        with pytest.raises(ProviderError) as e:
            run.verify(copy)
        assert e.value.transient, str(e.value)
        assert "did not receive a fresh test file" in str(e.value)
        assert not run.prove_alive().alive  # waiting, this run
        with pytest.raises(ProviderError) as e:
            run.confirm_freed(copy.path, "any")  # never a "no" a copy is forgotten on
        assert e.value.transient
