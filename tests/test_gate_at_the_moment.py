"""The copies a removal (or the encode that replaces a library's last
original) relies on are read at the moment the bytes go, not before some
slow step: a file hashed, an encode, a retry's wait. Each test loses the
copies during that step; the item must stay."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import providers.folder
from providers.fake import FakeSource
from providers.filesystem import MARKER
from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import connect
from reconciler.encoder_pool import EncoderPool
from reconciler.errors import ProviderError
from reconciler.model import SourceItem
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def _lose_the_copies(ws: Workspace, name: str) -> None:
    """The NAS's copy overwritten by a bad sync, the USB disk unplugged."""
    for p in ws.target("nas").rglob(name):
        p.write_bytes(b"\0" * p.stat().st_size)
    (ws.target("usb") / MARKER).unlink()


def test_copies_lost_while_the_source_file_is_hashed_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder source moves each file aside and hashes it before deleting
    (a 4K clip on a card reader: minutes)."""
    ws = make_workspace(tmp_path)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", "--only", "library,copy", now=NOW).code == 0
    real = providers.folder.sha256_file

    def slow_card(fd: int) -> str:
        _lose_the_copies(ws, "IMG_1.JPG")
        return real(fd)

    monkeypatch.setattr(providers.folder, "sha256_file", slow_card)
    r = ws.run("apply", "--yes", now=NOW)
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"], r.out
    assert "refused" in r.out or "skipped" in r.out, r.out


class _ThrottledOnce(FakeSource):
    """A source whose first removal is answered "try again later"."""

    def __init__(self, source_id: str) -> None:
        super().__init__(source_id)
        self.attempts = 0

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise ProviderError("throttled", provider=self.id, transient=True, retry_after=30.0)
        super().remove(item, proven)


def test_copies_lost_during_a_retrys_wait_keep_the_item(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    cloud = _ThrottledOnce("incoming")
    make_jpeg(tmp_path / "IMG_1.JPG", OLD, seed=1)
    cloud.add("asset-1", {"IMG_1.JPG": (tmp_path / "IMG_1.JPG").read_bytes()}, OLD)
    conn.sources = {"incoming": cloud}
    try:
        world = observe(desired, db, conn, now=NOW)
        first = plan(desired, world, NOW)
        Applier(desired, db, conn, world, run_id=db.start_run("test")).apply(
            first.__class__(
                actions=tuple(a for a in first.actions if a.kind != "remove-from-source"),
                notes=(),
                created_at=NOW,
                config_digest=first.config_digest,
            )
        )
        world = observe(desired, db, conn, now=NOW)
        second = plan(desired, world, NOW)
        assert [a.kind for a in second.actions] == ["remove-from-source"], second.actions
        result = Applier(
            desired,
            db,
            conn,
            world,
            run_id=db.start_run("test"),
            sleep=lambda _: _lose_the_copies(ws, "IMG_1.JPG"),
        ).apply(second)
    finally:
        db.close()
        conn.close()
    assert cloud.attempts == 2  # retried after the wait
    assert "asset-1" in cloud.items, result.outcomes
    (outcome,) = result.outcomes
    assert outcome.status in ("refused", "skipped"), outcome


def test_copies_lost_during_the_encode_keep_the_library_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off-loaded, the library holds its original for a tier that keeps it;
    then compression is turned on: the encode replaces the library's file,
    and the targets' copies are then the only original bytes."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    original = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.incoming) == {}
    ws.config.write_text(ws.config.read_text().replace(KEEP_ORIGINALS, ""))
    real = EncoderPool.result

    def slow_encode(self: EncoderPool, future: object) -> object:
        done = real(self, future)  # type: ignore[arg-type]
        _lose_the_copies(ws, "IMG_1.JPG")  # while the encoder ran
        return done

    monkeypatch.setattr(EncoderPool, "result", slow_encode)
    r = ws.run("apply", "--yes", now=NOW)
    assert "encode" in r.out, r.out
    assert original in files_under(ws.library).values(), r.out
    assert "the library keeps its original until then" in r.out, r.out


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD)
    return account


def test_copies_lost_while_icloud_throttles_the_delete_keep_the_asset(
    ws: Workspace, account: Account, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ws.run("apply", "--yes", "--only", "download,library,copy,sidecar", now=NOW).code == 0
    (asset,) = account.zones["PrimarySync"].assets.values()
    emu.server.inject("modify", status=503, retry_after=0, times=1)
    real = ICloudSource.remove
    calls: list[str] = []

    def remove(self: ICloudSource, item: SourceItem, proven: Callable[[], object]) -> None:
        calls.append(item.key)
        try:
            real(self, item, proven)
        except ProviderError:
            _lose_the_copies(ws, "IMG_0001.JPG")  # while the tool waits out Retry-After
            raise

    monkeypatch.setattr(ICloudSource, "remove", remove)
    r = ws.run("apply", "--yes", now=NOW)
    assert len(calls) >= 2, (calls, r.out)  # the delete was tried again
    assert not asset.deleted, r.out


def test_a_byte_budget_of_zero_removes_not_even_an_empty_file(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ws.config.write_text(
        ws.config.read_text().replace("pace_seconds = 0", "pace_seconds = 0\nmax_bytes_per_run = 0")
    )
    empty = ws.incoming / "IMG_0001.JPG"  # a file the camera never finished
    empty.write_bytes(b"")
    os.utime(empty, (OLD.timestamp(), OLD.timestamp()))
    r = ws.run("apply", "--yes", now=NOW)
    assert list(files_under(ws.incoming)) == ["IMG_0001.JPG"], r.out + r.err
