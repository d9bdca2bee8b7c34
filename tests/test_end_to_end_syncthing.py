"""The whole tool with the phone as a backup target, on two real Syncthing
instances on 127.0.0.1 (one plays the Pixel)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing.pair import SyncthingInstance, SyncthingPair
from tests.helpers import Run, Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "syncthing") as pair:
        yield pair


def workspace(
    root: Path, pair: SyncthingPair, *, free_local: bool, removal: bool, liveness_s: float = 10
) -> Workspace:
    options = f"delete_local_copy = {str(free_local).lower()}\nliveness_timeout_s = {liveness_s}\n"
    return phone_workspace(root, pair, removal=removal, phone_options=options)


@pytest.fixture
def env(pair: SyncthingPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)


def until(ws: Workspace, predicate: str, timeout: float = 20.0) -> Run:
    """Plan until ``predicate`` shows in the plan (the phone confirms in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=NOW)
        if predicate in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_removal_waits_for_the_phone_then_the_staging_copy_is_freed(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=True, removal=True)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()

    first = ws.run("apply", "--yes", now=NOW)
    assert first.code == 0, first.err
    assert (
        "  … waiting incoming:IMG_1.JPG: 0 of 2 verified copies; phone must confirm the copy "
        "made this run; kept in the source"
    ) in first.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]  # not removed yet

    r = until(ws, "- remove-from-source incoming:IMG_1.JPG")
    assert "- remove-from-source incoming:IMG_1.JPG (" in r.out
    assert "): archived (2 verified copies)" in r.out
    assert "- free-staging-copy phone:2022/03/04/IMG_1.JPG" in r.out

    second = ws.run("apply", "--yes", now=NOW)
    assert second.code == 0, second.out + second.err
    assert files_under(ws.incoming) == {}
    assert list(files_under(pair.local_folder)) == [".stignore"]  # the staging copy is freed…
    assert phone_files(pair) == {"2022/03/04/IMG_1.JPG": photo}  # …the phone keeps it
    final = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (final.code, final.out) == (0, "No changes. The library matches desired_state.toml.\n")


def test_phone_offline_is_waiting_not_an_error_and_confirms_after_it_returns(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=False, removal=True)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    pair.stop_phone()

    assert ws.run("apply", "--yes", now=NOW).code == 0
    r = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert r.code == 0
    assert r.out.startswith(
        "Not done this run:\n"
        "  … waiting target phone: not proven alive this run: phone offline since "
    )
    assert r.out.endswith(
        "; none of its copies counts for a removal\n"
        "  … waiting incoming:IMG_1.JPG: 1 of 2 verified copies; waiting for phone to confirm; "
        "kept in the source\n"
        "\n"
        "No changes. The library matches desired_state.toml. (2 waiting)\n"
    )
    status = ws.run("status").out
    assert "phone: phone offline, last seen " in status
    assert "% synced" not in status  # never "100% synced" while it is away
    assert "phone: last canary FAILED at " in status
    assert "phone: 1 file(s) waiting for confirmation since " in status
    census = json.loads(ws.run("status", "--json").out)["census"]
    assert census["items"]["waiting_phone"] == 1  # on the NAS; the phone's copy on its way
    assert list(census["waiting_since"]) == ["phone"]

    pair.start_phone()
    until(ws, "- remove-from-source")
    assert ws.run("apply", "--yes", now=NOW).code == 0
    census = json.loads(ws.run("status", "--json").out)["census"]
    assert census["items"]["removed"] == 1
    assert census["targets"]["phone"]["files"] == 1
    assert files_under(ws.incoming) == {}


def test_a_copy_changed_on_the_phone_does_not_count_at_removal_time(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=False, removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    deadline = time.monotonic() + 20
    phone_copy = pair.phone_folder / "2022/03/04/IMG_1.JPG"
    while not phone_copy.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    until(ws, "No changes.")  # confirmed and recorded

    phone_copy.write_bytes(b"edited on the phone")
    pair.scan_phone("2022/03/04/IMG_1.JPG")
    time.sleep(0.5)
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))

    r = ws.run("apply", "--yes", now=NOW)
    # Every run asks the phone again: the plan no longer counts it (an old
    # confirmation alone never counts), and the gate would refuse it too.
    assert r.code == 0, r.out + r.err
    assert (
        "  … waiting incoming:IMG_1.JPG: 1 of 2 verified copies; waiting for phone to confirm"
    ) in r.out
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]


# ------------------------------------------------------------ issue 15


def apply_checked(ws: Workspace, pair: SyncthingPair) -> Run:
    """``apply --yes``, then the invariant: every source file it removed has a
    byte-identical copy on the NAS *and* in the phone instance's folder."""
    before = files_under(ws.incoming)
    r = ws.run("apply", "--yes", now=NOW)
    after = files_under(ws.incoming)
    nas = set(files_under(ws.target("nas")).values())
    phone = set(phone_files(pair).values())
    for name, data in before.items():
        if name not in after:
            assert data in nas, f"{name} removed without a copy on the NAS"
            assert data in phone, f"{name} removed without a copy on the phone"
    return r


def converge(ws: Workspace, pair: SyncthingPair, timeout: float = 30.0) -> Run:
    """Apply as cron would until a plan has nothing to do."""
    deadline = time.monotonic() + timeout
    while True:
        r = apply_checked(ws, pair)
        assert r.code == 0, r.out + r.err
        final = ws.run("plan", "--detailed-exitcode", now=NOW)
        if (final.code == 0 and "waiting" not in final.out) or time.monotonic() > deadline:
            return final
        time.sleep(0.2)


def test_a_missing_phone_folder_removes_nothing_until_it_is_back(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=False, removal=False, liveness_s=2)
    for n in range(3):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n)
    assert converge(ws, pair).code == 0  # delivered and confirmed, nothing removed
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))
    aside = tmp_path / "unmounted"
    pair.phone_folder.rename(aside)  # the SD card goes, with the folder and .stfolder

    r = apply_checked(ws, pair)
    assert r.code == 0, r.out + r.err
    assert "waiting target phone: not proven alive this run: the phone is connected but" in r.out
    assert len(files_under(ws.incoming)) == 3  # nothing removed
    assert "phone: last canary FAILED at " in ws.run("status").out

    aside.rename(pair.phone_folder)  # and comes back
    pair.scan_phone()
    final = converge(ws, pair)
    assert final.out == "No changes. The library matches desired_state.toml.\n", final.out
    assert files_under(ws.incoming) == {}


def test_freeing_keeps_the_phone_copy_and_a_lost_or_colliding_one_is_handled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone folder that applies deletes; the phone later deletes a freed
    file; a same-name same-day photo arrives; a freed photo is imported again."""
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        ws = workspace(tmp_path / "ws", pair, free_local=True, removal=True)
        photos = {
            f"IMG_{n}.JPG": make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n).read_bytes()
            for n in range(3)
        }
        final = converge(ws, pair)
        assert final.out == "No changes. The library matches desired_state.toml.\n", final.out
        assert files_under(ws.incoming) == {}
        phone = phone_files(pair)
        for name, data in photos.items():
            assert phone[f"2022/03/04/{name}"] == data  # freed here, kept there
        assert not any(p.endswith(".JPG") for p in files_under(pair.local_folder))

        # The phone deletes a freed file: the next run sends it again.
        (pair.phone_folder / "2022/03/04/IMG_1.JPG").unlink()
        pair.scan_phone("2022/03/04/IMG_1.JPG")
        r = until(ws, "+ copy-to-target")
        assert "+ copy-to-target[phone] library:2022/03/04/IMG_1.JPG" in r.out, r.out
        assert converge(ws, pair).code == 0
        assert photos["IMG_1.JPG"] in phone_files(pair).values()

        # Same name, same day, another camera: a new name on the phone too.
        other = make_jpeg(ws.incoming / "cam2" / "IMG_0.JPG", OLD, seed=99).read_bytes()
        assert converge(ws, pair).code == 0
        on_phone = phone_files(pair)
        assert on_phone["2022/03/04/IMG_0.JPG"] == photos["IMG_0.JPG"]
        assert other in on_phone.values()

        # A freed photo imported again: its freed copy counts at the gate too.
        (ws.incoming / "again.JPG").write_bytes(photos["IMG_2.JPG"])
        r = apply_checked(ws, pair)
        assert r.code == 0, r.out + r.err
        assert files_under(ws.incoming) == {}


def _second_phone(pair: SyncthingPair, base: Path) -> tuple[SyncthingInstance, Path]:
    """Another real phone instance, paired with this machine and sharing the folder."""
    phone = SyncthingInstance.generate(base / "home", name="pixel-2", reconnect_s=2)
    folder = base / "folder"
    folder.mkdir(parents=True)
    phone.start()
    phone.wait_ready()
    with pair.local.client() as lc, phone.client() as pc:
        lc.add_device(device_id=phone.device_id, name="pixel-2", address=phone.address)
        lc.add_folder(
            folder_id=pair.folder_id,
            path=str(pair.local_folder),
            type="sendonly",
            device_ids=(pair.phone.device_id, phone.device_id),
            rescan_interval_s=86400,
        )
        pc.add_device(
            device_id=pair.local.device_id, name="this-machine", address=pair.local.address
        )
        pc.add_folder(
            folder_id=pair.folder_id,
            path=str(folder),
            type="receiveonly",
            device_ids=(pair.local.device_id,),
            rescan_interval_s=86400,
        )
        deadline = time.monotonic() + 30
        while not getattr(lc.connections().get(phone.device_id), "connected", False):
            assert time.monotonic() < deadline, "the second phone did not connect"
            time.sleep(0.1)
    return phone, folder


def test_a_new_device_id_after_freeing_gets_every_file(
    tmp_path: Path, pair: SyncthingPair, env: None
) -> None:
    ws = workspace(tmp_path / "ws", pair, free_local=True, removal=True)
    photos = [make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n).read_bytes() for n in range(2)]
    converge(ws, pair)
    assert files_under(ws.incoming) == {}
    new_phone, new_folder = _second_phone(pair, tmp_path / "pixel-2")
    try:
        ws.config.write_text(
            ws.config.read_text().replace(pair.phone.device_id, new_phone.device_id)
        )
        final = converge(ws, pair)
        assert final.out == "No changes. The library matches desired_state.toml.\n", final.out
        held = set(files_under(new_folder).values())
        assert all(p in held for p in photos)  # re-sent from the library or the NAS
    finally:
        new_phone.stop()
