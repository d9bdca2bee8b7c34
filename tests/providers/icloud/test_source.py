"""ICloudSource (the Source the core uses) against the emulator."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.base import Hashed, Source
from providers.icloud.emulator.testing import RunningEmulator, running_emulator
from providers.icloud.session import login_interactive, session_age
from providers.icloud.source import ICloudSource
from reconciler.errors import LoginRequiredError, ProviderError
from reconciler.model import SourceItem
from tests.providers.icloud.conftest import Library, make_library


class NoHasher:
    """A remote source never hashes local files."""

    def hash_entries(
        self, entries: object, *, dates: bool = False, tree: str | None = None
    ) -> list[Hashed]:
        raise AssertionError("the iCloud source must not hash")


def _gate_passes() -> None:
    """The removal gate, passing: these tests are the source's own."""


def items_by_name(source: ICloudSource) -> dict[str, list[SourceItem]]:
    out: dict[str, list[SourceItem]] = {}
    for item in source.list_items(NoHasher()):
        out.setdefault(item.files[0].name, []).append(item)
    return out


def key(asset: object) -> str:
    return f"{asset.asset_id}:{asset.master_id}"  # type: ignore[attr-defined]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_original(source: ICloudSource, item: SourceItem, dest: Path) -> str:
    source.fetch(item, item.files[0], dest)
    return sha(dest)


def test_is_a_source(source: ICloudSource) -> None:
    assert isinstance(source, Source)
    assert (source.kind, source.remote) == ("icloud", True)


def test_listing_maps_assets_to_items(source: ICloudSource, library: Library) -> None:
    items = {item.key: item for item in source.list_items(NoHasher())}
    everything = (library.jpeg, library.live, library.undated, library.video)
    everything += (library.twin_a, library.twin_b)
    assert set(items) == {key(a) for a in everything}
    live = items[key(library.live)]
    assert [(f.name, f.ref, f.role, f.size, f.sha256) for f in live.files] == [
        ("IMG_0002.HEIC", "original", "original", len(b"heic-still" * 3000), None),
        ("IMG_0002.MOV", "original_video", "live_video", len(b"mov-video" * 7000), None),
    ]
    assert live.captured_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert live.version == library.live.change_tag
    assert items[key(library.undated)].captured_at is None
    assert [f.role for f in items[key(library.video)].files] == ["original"]


def test_same_name_and_size_are_two_items(
    source: ICloudSource, library: Library, tmp_path: Path
) -> None:
    twins = items_by_name(source)["IMG_1234.JPG"]
    assert len(twins) == 2
    assert twins[0].key != twins[1].key
    assert twins[0].files[0].size == twins[1].files[0].size
    digests = {fetch_original(source, item, tmp_path / f"twin{i}") for i, item in enumerate(twins)}
    assert digests == {library.twin_a.master.original.sha256, library.twin_b.master.original.sha256}


def test_fetch_writes_verified_bytes_of_both_live_files(
    source: ICloudSource, library: Library, tmp_path: Path
) -> None:
    live = items_by_name(source)["IMG_0002.HEIC"][0]
    source.fetch(live, live.files[0], tmp_path / "still")
    source.fetch(live, live.files[1], tmp_path / "movie")
    assert sha(tmp_path / "still") == library.live.master.original.sha256
    assert library.live.master.live_video is not None
    assert sha(tmp_path / "movie") == library.live.master.live_video.sha256


@pytest.mark.parametrize("mode", ["cut", "lie"])
def test_truncated_body_is_resumed_never_accepted(
    source: ICloudSource, emulator: RunningEmulator, library: Library, tmp_path: Path, mode: str
) -> None:
    item = items_by_name(source)["IMG_0001.JPG"][0]
    emulator.server.inject_truncation(fraction=0.4, mode=mode, times=2)  # type: ignore[arg-type]
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in emulator.server.range_requests]
    if mode == "lie":
        # A 200 announcing fewer bytes than the file is not the file (an
        # error page looks just so): read again from byte 0, never resumed from.
        assert offsets == []
        return
    # Resumed where the short reads stopped, not restarted from byte 0.
    assert len(offsets) == 2
    assert 0 < offsets[0] < offsets[1] < library.jpeg.master.original.size


def test_endless_truncation_fails_transiently(
    source: ICloudSource, emulator: RunningEmulator, tmp_path: Path
) -> None:
    item = items_by_name(source)["IMG_0001.JPG"][0]
    emulator.server.inject_truncation(fraction=0.0, mode="lie", times=None)
    with pytest.raises(ProviderError, match=r"stopped at 0 of 240000 bytes") as caught:
        source.fetch(item, item.files[0], tmp_path / "out")
    assert caught.value.transient
    assert caught.value.provider == "icloud"
    assert item.key in str(caught.value)


@pytest.mark.parametrize("status", [410, 403])
def test_expired_download_url_is_refreshed(library: Library, tmp_path: Path, status: int) -> None:
    from providers.icloud.emulator.testing import seed_trusted_session

    with running_emulator(library.account, expired_url_status=status) as emu:
        seed_trusted_session(emu, tmp_path / "s")
        with ICloudSource(
            "icloud", username=emu.username, session_dir=tmp_path / "s", endpoint=emu.url
        ) as source:
            item = items_by_name(source)["IMG_0003.MOV"][0]
            emu.server.expire_download_urls()
            assert (
                fetch_original(source, item, tmp_path / "out")
                == library.video.master.original.sha256
            )
            assert emu.server.hits["lookup"] == 1


def test_fetch_in_a_new_run_reads_the_asset_first(
    emulator: RunningEmulator,
    session_dir: Path,
    source: ICloudSource,
    library: Library,
    tmp_path: Path,
) -> None:
    item = items_by_name(source)["IMG_0003.MOV"][0]
    with ICloudSource(
        "icloud", username=emulator.username, session_dir=session_dir, endpoint=emulator.url
    ) as later:
        assert fetch_original(later, item, tmp_path / "out") == library.video.master.original.sha256


def test_remove_is_a_soft_delete_and_idempotent(
    emulator: RunningEmulator, session_dir: Path, source: ICloudSource, library: Library
) -> None:
    item = items_by_name(source)["IMG_0002.HEIC"][0]
    source.remove(item, _gate_passes)
    assert library.live.deleted
    assert library.live in emulator.account.deleted_assets()
    assert item.key not in {i.key for i in source.list_items(NoHasher())}
    source.remove(item, _gate_passes)
    with ICloudSource(
        "icloud", username=emulator.username, session_dir=session_dir, endpoint=emulator.url
    ) as later:
        later.remove(item, _gate_passes)
    assert emulator.account.deleted_assets() == [library.live]


def test_remove_retries_once_after_a_conflict(
    emulator: RunningEmulator, source: ICloudSource, library: Library
) -> None:
    item = items_by_name(source)["SCAN.JPG"][0]
    emulator.account.touch(library.undated)  # edited on the phone meanwhile
    source.remove(item, _gate_passes)
    assert library.undated.deleted


def test_remove_gives_up_after_a_second_conflict(
    emulator: RunningEmulator, source: ICloudSource, library: Library
) -> None:
    item = items_by_name(source)["SCAN.JPG"][0]
    emulator.server.inject_conflict(times=2)
    with pytest.raises(ProviderError, match="CONFLICT") as caught:
        source.remove(item, _gate_passes)
    assert item.key in str(caught.value)
    assert not library.undated.deleted


def test_throttling_is_transient_with_retry_after(
    emulator: RunningEmulator, source: ICloudSource
) -> None:
    emulator.server.inject("query", status=503, retry_after=7, times=None)
    with pytest.raises(ProviderError) as caught:
        list(source.list_items(NoHasher()))
    assert caught.value.transient and caught.value.retry_after == 7
    assert not isinstance(caught.value, LoginRequiredError)


def test_download_throttled_with_429(
    emulator: RunningEmulator, source: ICloudSource, tmp_path: Path
) -> None:
    item = items_by_name(source)["IMG_0001.JPG"][0]
    emulator.server.inject("download", status=429, retry_after=3, times=None)
    with pytest.raises(ProviderError) as caught:
        source.fetch(item, item.files[0], tmp_path / "out")
    assert (caught.value.transient, caught.value.retry_after) == (True, 3)
    assert item.key in str(caught.value)


@pytest.mark.parametrize("status", [421, 401])
def test_auth_statuses_need_a_login(
    emulator: RunningEmulator, source: ICloudSource, status: int
) -> None:
    emulator.server.inject("ckdatabase", status=status, times=None)
    with pytest.raises(LoginRequiredError, match="reconcile login icloud"):
        list(source.list_items(NoHasher()))


def test_access_denied_explains_the_fix(emulator: RunningEmulator, source: ICloudSource) -> None:
    emulator.account.web_access = False
    with pytest.raises(ProviderError) as caught:
        list(source.list_items(NoHasher()))
    message = str(caught.value)
    assert "Access iCloud Data on the Web" in message
    assert "Advanced Data Protection" in message
    assert not caught.value.transient and not isinstance(caught.value, LoginRequiredError)


def test_slow_download_times_out_transiently(
    emulator: RunningEmulator, source: ICloudSource, tmp_path: Path
) -> None:
    item = items_by_name(source)["IMG_0001.JPG"][0]
    emulator.server.inject("download", delay=2.5, times=None)
    with pytest.raises(ProviderError, match="could not be reached") as caught:
        source.fetch(item, item.files[0], tmp_path / "out")
    assert caught.value.transient


def test_expired_session_without_password_needs_a_person(
    emulator: RunningEmulator, source: ICloudSource
) -> None:
    emulator.server.expire_sessions()
    with pytest.raises(LoginRequiredError, match="reconcile login icloud"):
        list(source.list_items(NoHasher()))


def test_revoked_trust_needs_2fa_and_never_prompts(
    emulator: RunningEmulator, session_dir: Path
) -> None:
    emulator.server.revoke_trust()
    with (
        ICloudSource(
            "icloud",
            username=emulator.username,
            password=emulator.password,
            session_dir=session_dir,
            endpoint=emulator.url,
        ) as source,
        pytest.raises(LoginRequiredError, match="two-factor"),
    ):
        list(source.list_items(NoHasher()))


def test_interactive_login_then_unattended_runs(emulator: RunningEmulator, tmp_path: Path) -> None:
    directory = tmp_path / "fresh"
    prompts: list[str] = []

    def prompt_code(prompt: str) -> str:
        prompts.append(prompt)
        return "000000" if len(prompts) == 1 else str(emulator.server.last_sms_code)

    assert session_age(directory, emulator.username) is None
    login_interactive(
        emulator.username, emulator.password, directory, prompt_code, endpoint=emulator.url
    )
    assert len(prompts) == 2
    age = session_age(directory, emulator.username)
    assert age is not None and timedelta(0) <= age < timedelta(minutes=1)
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    with ICloudSource(
        "icloud", username=emulator.username, session_dir=directory, endpoint=emulator.url
    ) as source:
        assert len(list(source.list_items(NoHasher()))) == 6


def test_interactive_login_with_a_wrong_password(emulator: RunningEmulator, tmp_path: Path) -> None:
    with pytest.raises(LoginRequiredError, match="check the Apple ID and password"):
        login_interactive(emulator.username, "nope", tmp_path, lambda _: "", endpoint=emulator.url)


def test_shared_library_items_are_included_when_asked(tmp_path: Path) -> None:
    from providers.icloud.emulator.testing import seed_trusted_session

    library = make_library()
    zone = library.account.add_shared_library()
    shared = library.account.add_asset(b"family", "FAMILY.JPG", asset_date=None, zone=zone)
    with running_emulator(library.account) as emu:
        seed_trusted_session(emu, tmp_path)
        for include, expected in ((False, 6), (True, 7)):
            with ICloudSource(
                "icloud",
                username=emu.username,
                session_dir=tmp_path,
                endpoint=emu.url,
                include_shared=include,
            ) as source:
                items = list(source.list_items(NoHasher()))
                assert len(items) == expected
                if include:
                    family = next(i for i in items if i.files[0].name == "FAMILY.JPG")
                    assert family.key == key(shared)
                    source.remove(family, _gate_passes)
        assert shared.deleted
