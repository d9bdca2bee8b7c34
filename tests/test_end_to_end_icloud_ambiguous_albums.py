"""What the delete's change tag does not guard is read again after the
removal gate, right before the delete.

The removal reads the asset and its albums, stages it, asks the gate (which
re-reads every copy of the item: minutes for a large video on a NAS), then
deletes with the asset record's change tag. Every field the sidecar records
moves that tag (an edit, a favourite, a title, hiding, the date) but the
albums: joining one creates a relation record, renaming one changes the
album's record. A membership made while the gate read the copies was in no
sidecar, and left with the asset. The whole tool, the real pyicloud and the
emulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import reconciler.gate as gate_module
from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler.gate import RemovalGate
from reconciler.model import RemoveFromSource
from tests.helpers import Workspace, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "src" / "0.jpg", OLD, seed=0).read_bytes()
    photo = account.add_asset(data, "IMG_0000.JPG", asset_date=OLD)
    account.add_album("Summer", [photo])
    return account


def while_the_gate_reads(monkeypatch: pytest.MonkeyPatch, change: Callable[[], object]) -> None:
    """``change`` is made in iCloud once, while the gate re-reads the copies."""
    real = RemovalGate.check
    pending = [change]

    def check(self: RemovalGate, a: RemoveFromSource, side: object = None) -> list[str]:
        while pending:
            pending.pop()()
        return real(self, a, side)  # type: ignore[arg-type]

    monkeypatch.setattr(gate_module.RemovalGate, "check", check)


def rename_album(account: Account, old: str, new: str) -> None:
    """Photos' "Rename Album": the album's record changes, no asset's."""
    with account.lock:
        (album,) = account.albums_named(old)
        album.name = new
        album.change_tag = account.next_change_tag()
        account.record_change(account.zones[album.zone], album.album_id)


def archived_then_removal_on(ws: Workspace) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    ws.removal(on=True)


@pytest.mark.parametrize("change", ["joined", "renamed"])
def test_albums_changed_while_the_gate_reads_keep_the_item_until_archived(
    ws: Workspace,
    account: Account,
    emu: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    (photo,) = account.live_assets()
    archived_then_removal_on(ws)
    if change == "joined":
        while_the_gate_reads(monkeypatch, lambda: account.add_album("Grandma", [photo]))
        albums = ("Grandma", "Summer")
    else:
        while_the_gate_reads(monkeypatch, lambda: rename_album(account, "Summer", "Summer 2021"))
        albums = ("Summer 2021",)
    r = ws.run("apply", "--yes", now=NOW)
    assert not photo.deleted, r.out
    assert r.code == 1, r.out
    assert "its albums changed while its copies were checked" in r.out + r.err
    # The next run writes the albums into the sidecar, then removes it.
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert photo.deleted, r.out
    for store, text in ws.sidecars("IMG_0000.JPG", ("nas", "usb")).items():
        assert all(f"<rdf:li>{name}</rdf:li>" in text for name in albums), (store, text)
