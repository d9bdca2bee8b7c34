"""What a person sees when the Syncthing target cannot be used, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.syncthing.client import (
    SyncthingAuthError,
    SyncthingClient,
    SyncthingUnreachableError,
    UnknownDeviceError,
    UnknownFolderError,
)
from providers.syncthing.pair import SyncthingInstance, SyncthingPair, free_port
from providers.syncthing.target import SyncthingTarget

pytestmark = pytest.mark.syncthing

# A well-formed device id this Syncthing has never heard of.
STRANGER = "AIR6LPZ-7K4PTTV-UXQSMUU-CPQ5YWH-OEDFIIQ-JUG777G-2YQXXR5-YD6AWQR"


def _target(pair: SyncthingPair, **changes: object) -> SyncthingTarget:
    fields: dict[str, object] = {
        "id": "pixel",
        "folder_path": pair.local_folder,
        "folder_id": pair.folder_id,
        "device_id": pair.phone.device_id,
        "url": pair.local.url,
        "api_key": pair.local.api_key,
        "timeout": 5.0,
    }
    fields.update(changes)
    return SyncthingTarget(**fields)  # type: ignore[arg-type]


def _reason(pair: SyncthingPair, **changes: object) -> str:
    with _target(pair, **changes) as t:
        a = t.availability()
    assert not a.available
    return a.reason


def test_wrong_api_key(syncthing_pair: SyncthingPair) -> None:
    reason = _reason(syncthing_pair, api_key="not-the-key")
    assert reason == (
        f"syncthing: Syncthing at {syncthing_pair.local.url} rejected the API key (HTTP 403); "
        "copy the key from Syncthing's Settings > General > API Key"
    )


def test_syncthing_down(syncthing_pair: SyncthingPair) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    reason = _reason(syncthing_pair, url=url)
    assert reason == (
        f"syncthing: Syncthing is not running or not reachable at {url}; start it, or fix the url"
    )


def test_unknown_folder(syncthing_pair: SyncthingPair) -> None:
    reason = _reason(syncthing_pair, folder_id="no-such-folder")
    assert reason == (
        f"syncthing: Syncthing at {syncthing_pair.local.url} has no folder with id "
        "'no-such-folder'; check the folder id in Syncthing's folder settings"
    )


@pytest.mark.parametrize("device", [STRANGER, "NOT-A-DEVICE-ID"])
def test_unknown_device(syncthing_pair: SyncthingPair, device: str) -> None:
    reason = _reason(syncthing_pair, device_id=device)
    assert reason == (
        f"syncthing: Syncthing at {syncthing_pair.local.url} has no device {device}; "
        "add the phone as a remote device in Syncthing, or fix the device id"
    )


def test_folder_path_missing(syncthing_pair: SyncthingPair, tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    assert _reason(syncthing_pair, folder_path=missing) == f"{missing}: no such directory"


def test_folder_path_is_not_the_shared_one(syncthing_pair: SyncthingPair, tmp_path: Path) -> None:
    reason = _reason(syncthing_pair, folder_path=tmp_path)
    assert reason == (
        f"Syncthing folder {syncthing_pair.folder_id!r} is at {syncthing_pair.local_folder}, "
        f"not {tmp_path}; fix the path"
    )


def test_device_known_but_folder_not_shared_with_it(
    syncthing_pair: SyncthingPair, tmp_path: Path
) -> None:
    other = SyncthingInstance.generate(tmp_path / "other", name="tablet")
    with syncthing_pair.local.client() as client:
        client.add_device(device_id=other.device_id, name="tablet", address=other.address)
    reason = _reason(syncthing_pair, device_id=other.device_id)
    assert reason == (
        f"Syncthing folder {syncthing_pair.folder_id!r} is not shared with the phone "
        f"({other.device_id}); share it"
    )


def test_own_device_id_is_not_the_phone(syncthing_pair: SyncthingPair) -> None:
    own = syncthing_pair.local.device_id
    assert _reason(syncthing_pair, device_id=own) == (
        f"{own} is this machine's own device id; use the phone's"
    )


def test_client_raises_distinct_errors(syncthing_pair: SyncthingPair) -> None:
    url = syncthing_pair.local.url
    with (
        SyncthingClient(url=url, api_key="wrong", timeout=5) as bad,
        pytest.raises(SyncthingAuthError),
    ):
        bad.my_id()
    with SyncthingClient(url=url, api_key=syncthing_pair.local.api_key, timeout=5) as good:
        assert good.my_id() == syncthing_pair.local.device_id
        with pytest.raises(UnknownFolderError):
            good.scan("no-such-folder", "x.jpg")
        with pytest.raises(UnknownFolderError):
            good.file("no-such-folder", "x.jpg")
        with pytest.raises(UnknownDeviceError):
            good.device(STRANGER)
    down = f"http://127.0.0.1:{free_port()}"
    with (
        SyncthingClient(url=down, api_key="k", timeout=5) as gone,
        pytest.raises(SyncthingUnreachableError) as info,
    ):
        gone.ping()
    assert info.value.transient
    assert info.value.provider == "syncthing"


def test_confirm_raises_when_syncthing_is_down(syncthing_pair: SyncthingPair) -> None:
    with (
        _target(syncthing_pair, url=f"http://127.0.0.1:{free_port()}") as t,
        pytest.raises(SyncthingUnreachableError),
    ):
        t.confirm("anything.jpg")


def test_status_summary_when_down(syncthing_pair: SyncthingPair) -> None:
    with _target(syncthing_pair, api_key="wrong") as t:
        status = t.status_summary()
    assert not status.reachable
    assert "rejected the API key" in status.problem
    assert status.completion is None
