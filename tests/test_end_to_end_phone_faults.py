"""Syncthing misbehaving mid-run, against a real loopback pair: the phone is
unavailable (or waits) and the rest of the run goes on.

Before: Syncthing gone, or one answer too slow, after the phone proved
alive made the whole run fail (the new photo not even copied to the NAS);
and the scan that follows a delivery, which answers only once the file is
hashed (a large clip takes longer than the client waits), made a delivered
file a failed action."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

import providers.syncthing.folder as folder_module
from providers.base import Liveness
from providers.syncthing.pair import SyncthingPair
from tests.helpers import files_under, make_jpeg, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
REQUEST = requests.Session.request


@pytest.mark.parametrize("how", ["stopped", "slow"])
def test_syncthing_failing_after_the_canary_leaves_the_rest_of_the_run(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    ws = phone_workspace(tmp_path / "ws", pair, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0  # delivered to the phone
    if how == "stopped":
        real = getattr(folder_module, "prove_alive")  # noqa: B009 (not exported)

        def alive_then_gone(*args: Any, **kwargs: Any) -> Liveness:
            live: Liveness = real(*args, **kwargs)
            pair.local.stop()  # Syncthing stops right after the round trip
            return live

        monkeypatch.setattr(folder_module, "prove_alive", alive_then_gone)
    else:

        def slow(self: requests.Session, method: str, url: str, **kw: Any) -> Any:
            if url.endswith("/rest/db/file") and "IMG_1.JPG" in (kw.get("params") or {}).get(
                "file", ""
            ):
                raise requests.ReadTimeout("read timed out")
            return REQUEST(self, method, url, **kw)

        monkeypatch.setattr(requests.Session, "request", slow)
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1, r.out + r.err  # a target that could not be read: exit 1
    assert "confirming failed" in r.out + r.err, r.out + r.err
    assert "Traceback" not in r.err
    assert any(k.endswith("IMG_2.JPG") for k in files_under(ws.target("nas"))), r.out
    assert any(k.endswith("IMG_2.JPG") for k in files_under(ws.library)), r.out


def test_a_delivery_whose_scan_outlasts_the_client_is_delivered(
    tmp_path: Path, pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = phone_workspace(tmp_path / "ws", pair, removal=False)
    make_jpeg(ws.incoming / "BIG.JPG", OLD, seed=1)

    def scan_outlasts(self: requests.Session, method: str, url: str, **kw: Any) -> Any:
        if url.endswith("/rest/db/scan") and "BIG.JPG" in (kw.get("params") or {}).get("sub", ""):
            REQUEST(self, method, url, **kw)  # Syncthing hashes the file...
            raise requests.ReadTimeout("read timed out")  # ...after the client gave up
        return REQUEST(self, method, url, **kw)

    monkeypatch.setattr(requests.Session, "request", scan_outlasts)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert "failed" not in r.out, r.out
    assert any(k.endswith("BIG.JPG") for k in files_under(pair.local_folder)), r.out
