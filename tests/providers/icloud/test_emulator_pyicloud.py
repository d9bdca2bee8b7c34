"""The real, unmodified pyicloud client against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import srp._pysrp as _srp
from pyicloud import PyiCloudService

from providers.icloud.emulator import Account, generate_library
from providers.icloud.emulator.auth import AuthState, new_salt
from providers.icloud.emulator.testing import (
    RunningEmulator,
    running_emulator,
    seed_trusted_session,
)
from providers.icloud.transport import mount
from tests.providers.icloud.conftest import Library


@contextmanager
def client(emu: RunningEmulator, directory: Path, password: str | None) -> Iterator[Any]:
    api = PyiCloudService(
        emu.username, password, cookie_directory=str(directory), authenticate=False
    )
    mount(api.session, endpoint=emu.url, timeout=(5.0, 5.0))
    try:
        yield api
    finally:
        api.session.close()


def test_fresh_login_with_srp_and_sms_code_then_reuse(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    with client(emulator, tmp_path, emulator.password) as api:
        api.authenticate()
        assert api.requires_2fa
        code = emulator.server.last_sms_code
        assert code is not None
        assert api.validate_2fa_code("000000" if code != "000000" else "111111") is False
        assert api.validate_2fa_code(code) is True
        assert not api.requires_2fa
        assert api.is_trusted_session
    # The trusted session is reused without a password or a code.
    with client(emulator, tmp_path, None) as api:
        api.authenticate()
        assert api.is_trusted_session and not api.requires_2fa
    assert len(emulator.server.auth.sms_codes) == 1


def test_wrong_password_is_refused(emulator: RunningEmulator, tmp_path: Path) -> None:
    with (
        client(emulator, tmp_path, "wrong password") as api,
        pytest.raises(Exception, match="Invalid email/password"),
    ):
        api.authenticate()


def test_every_salt_the_emulator_issues_reads_the_same_to_pyiclouds_srp() -> None:
    """pyicloud's SRP (srp's OpenSSL module) takes the salt as a number: a
    salt starting with a zero byte loses it on that side, and the right
    password was refused (1 sign-in in 256, a flaky test). 10,000 salts
    hold ~39 such without the rule."""
    assert AuthState(account=Account(username="u@example.com", password="pw")).salt[0]
    for _ in range(10_000):
        salt = new_salt()  # what every AuthState of the emulator starts with
        assert len(salt) == 16
        assert _srp.long_to_bytes(_srp.bytes_to_long(salt)) == salt


def test_expired_session_with_trust_token_signs_in_again_without_a_code(
    emulator: RunningEmulator, session_dir: Path
) -> None:
    emulator.server.expire_sessions()
    with client(emulator, session_dir, emulator.password) as api:
        api.authenticate()
        assert api.is_trusted_session and not api.requires_2fa
    assert emulator.server.auth.sms_codes == []


def test_listing_5000_assets_pages_through_every_one(tmp_path: Path) -> None:
    account = Account()
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for i in range(5000):
        account.add_asset(
            i.to_bytes(4, "big") * 8,
            f"IMG_{i % 9999:04d}.JPG",
            asset_date=start + timedelta(hours=i),
        )
    with running_emulator(account) as emu:
        seed_trusted_session(emu, tmp_path)
        with client(emu, tmp_path, None) as api:
            api.authenticate()
            photos = api.photos
            ids = [photo.id for photo in photos.all]
    # Every page is read, none twice. (Speed is a benchmark's business, not a
    # test's: a timed assertion fails on a busy machine, not on slow code.)
    assert len(ids) == 5000 == len(set(ids))


def test_assets_as_pyicloud_sees_them(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    with client(emulator, session_dir, None) as api:
        api.authenticate()
        photos = {p.id: p for p in api.photos.all}
    assert len(photos) == 6
    live = photos[library.live.asset_id]
    assert live.is_live_photo and live.item_type == "image"
    assert live.master_id == library.live.master_id
    assert live.resources["original"].filename == "IMG_0002.HEIC"
    assert live.resources["original_video"].filename == "IMG_0002.MOV"
    assert live.resources["original_video"].size == len(b"mov-video" * 7000)
    assert photos[library.video.asset_id].item_type == "movie"
    assert photos[library.undated.asset_id].asset_date == datetime(1970, 1, 1, tzinfo=UTC)
    assert photos[library.jpeg.asset_id].asset_date == datetime(2019, 6, 1, 12, tzinfo=UTC)


def test_download_honours_range(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    with client(emulator, session_dir, None) as api:
        api.authenticate()
        photo = next(p for p in api.photos.all if p.id == library.jpeg.asset_id)
        url = photo.download_url("original")
        with api.session.get(url, stream=True, headers={"Range": "bytes=10-19"}) as response:
            assert response.status_code == 206
            assert response.content == (b"\xff\xd8jpeg" * 40000)[10:20]
            assert response.url == url


def test_soft_delete_moves_the_asset_to_recently_deleted(
    emulator: RunningEmulator, session_dir: Path, library: Library
) -> None:
    with client(emulator, session_dir, None) as api:
        api.authenticate()
        photos = api.photos
        cursor = photos.sync_cursor()
        photo = next(p for p in photos.all if p.id == library.twin_a.asset_id)
        assert photo.delete() is True
        assert library.twin_a.asset_id not in {p.id for p in photos.all}
        deleted = photos.albums["Recently Deleted"]
        assert [p.id for p in deleted] == [library.twin_a.asset_id]
        changed = {event.record_name for event in photos.iter_changes(since=cursor)}
        assert changed == {library.twin_a.asset_id}
        # The asset object still holds the old change tag: CONFLICT.
        with pytest.raises(Exception, match="CONFLICT"):
            photo.delete()


def test_shared_library_zone_is_discovered(tmp_path: Path) -> None:
    account = Account()
    zone = account.add_shared_library()
    account.add_asset(b"shared", "SHARED.JPG", asset_date=None, zone=zone)
    with running_emulator(account) as emu:
        seed_trusted_session(emu, tmp_path)
        with client(emu, tmp_path, None) as api:
            api.authenticate()
            libraries = api.photos.libraries
            shared = libraries[f"shared:{zone}"]
            assert [p.filename for p in shared.all] == ["SHARED.JPG"]
            assert len(api.photos.all) == 0


@pytest.mark.ffmpeg
def test_generated_library_seeds_an_account(tmp_path: Path) -> None:
    files = generate_library(tmp_path / "lib", count=20, years=3, seed=1)
    names = [f.name for f in files]
    assert sum(n.endswith(".MOV") for n in names) >= 3
    account = Account.from_folder(tmp_path / "lib")
    live = [a for a in account.live_assets() if a.is_live]
    assert len(live) == 2
    assert all(a.master.filename.endswith(".HEIC") for a in live)
    twins = [a for a in account.live_assets() if a.master.filename == "IMG_0001.JPG"]
    assert len(twins) == 2 and twins[0].master.original.sha256 != twins[1].master.original.sha256
    assert sum(a.asset_date_ms == 0 for a in account.live_assets()) == 1
    dated = [a for a in account.live_assets() if a.asset_date_ms]
    years = {datetime.fromtimestamp(a.asset_date_ms / 1000, UTC).year for a in dated}
    assert len(years) >= 2
    assert any(a.is_video and not a.is_live for a in account.live_assets())
