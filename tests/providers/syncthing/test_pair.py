"""The loopback pair: configured offline before its first start, loopback only."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing.client import parse_time
from providers.syncthing.pair import SyncthingInstance, SyncthingPair

pytestmark = pytest.mark.syncthing


def _pids(pair: SyncthingPair) -> set[int]:
    pids = {*pair.local.pids(), *pair.phone.pids()}
    assert len(pids) >= 2
    return pids


def test_nothing_listens_outside_loopback(syncthing_pair: SyncthingPair) -> None:
    ss = shutil.which("ss")
    assert ss is not None, "ss (iproute2) is needed to check the listening sockets"
    out = subprocess.run([ss, "-tulnpH"], capture_output=True, text=True, check=True).stdout
    ours = [
        line.split()
        for line in out.splitlines()
        if any(f"pid={pid}," in line for pid in _pids(syncthing_pair))
    ]
    # Two TCP listeners each (GUI/REST and sync), no UDP at all (discovery off).
    assert sorted(f"{cols[4]}" for cols in ours) == sorted(syncthing_pair.addresses())
    assert {cols[0] for cols in ours} == {"tcp"}


def test_config_is_offline(syncthing_pair: SyncthingPair) -> None:
    for inst in (syncthing_pair.local, syncthing_pair.phone):
        root = ET.parse(inst.home / "config.xml").getroot()
        options = root.find("options")
        assert options is not None
        values = {child.tag: (child.text or "") for child in options}
        for key in (
            "globalAnnounceEnabled",
            "localAnnounceEnabled",
            "relaysEnabled",
            "natEnabled",
            "crashReportingEnabled",
            "startBrowser",
        ):
            assert values[key] == "false", (inst.name, key)
        assert values["urAccepted"] == "-1"
        assert values["autoUpgradeIntervalH"] == "0"
        assert [e.text or "" for e in options.findall("globalAnnounceServer")] == [""]
        assert [e.text for e in options.findall("listenAddress")] == [inst.address]
        gui_address = root.findtext("gui/address")
        assert gui_address == f"127.0.0.1:{inst.gui_port}"
        # Every configured device address is explicit loopback, never "dynamic".
        for device in root.findall("device"):
            for address in device.findall("address"):
                assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", address.text or ""), address.text


def test_folders_are_sendonly_here_and_receiveonly_on_the_phone(
    syncthing_pair: SyncthingPair,
) -> None:
    with syncthing_pair.local.client() as lc, syncthing_pair.phone.client() as pc:
        here = lc.folder(syncthing_pair.folder_id)
        phone = pc.folder(syncthing_pair.folder_id)
    assert here.type == "sendonly"
    assert syncthing_pair.phone.device_id in here.device_ids
    assert phone.type == "receiveonly"
    assert phone.ignore_delete


def test_parse_time() -> None:
    assert parse_time("2024-05-01T10:20:30.123456789+02:00") == datetime(
        2024, 5, 1, 8, 20, 30, 123456, tzinfo=UTC
    )
    assert parse_time("2024-05-01T10:20:30Z") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None
    assert parse_time("garbage") is None


def test_a_port_taken_before_the_start_is_moved_away_from(tmp_path: Path) -> None:
    """Between finding a port free and Syncthing binding it, someone else may
    take it (another test run): the instance moves to free ports and starts."""
    inst = SyncthingInstance.generate(tmp_path / "home", name="busy")
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.bind(("127.0.0.1", inst.gui_port))
        squatter.listen()
        taken = inst.gui_port
        inst.start()
        inst.wait_ready(timeout=30)
        assert inst.gui_port != taken
        with inst.client() as c:
            c.ping()
        listen = ET.parse(tmp_path / "home" / "config.xml").getroot().find("options/listenAddress")
        assert listen is not None and listen.text == f"tcp://127.0.0.1:{inst.listen_port}"
    finally:
        squatter.close()
        inst.stop()
