"""A card unplugged between the plan and its removal: nothing is said
removed. The run fails (the source is unavailable now, as a vanished
target is), writes no tombstone and keeps the listing's count; the photo
is still on the card when it comes back, and the next run removes it, once."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.folder import FolderSource
from reconciler.model import SourceItem
from reconciler.state import StateDB
from tests.helpers import (
    KEEP_ORIGINALS,
    ext4_image,
    files_under,
    image_mounted,
    make_jpeg,
    make_workspace,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def test_a_card_unplugged_before_its_removal_is_not_said_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    card, image = ws.incoming, tmp_path / "images/card.img"
    with ext4_image(image, card):
        photo = make_jpeg(card / "DCIM/100CANON/IMG_0001.JPG", OLD, seed=1).read_bytes()
        real = FolderSource.remove

        def unplugged(self: FolderSource, item: SourceItem, proven: object) -> None:
            subprocess.run(["umount", str(card)], check=True)  # planned, then pulled
            monkeypatch.setattr(FolderSource, "remove", real)
            return real(self, item, proven)  # type: ignore[arg-type]

        monkeypatch.setattr(FolderSource, "remove", unplugged)
        run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 1, run.out + run.err
    assert "removed from incoming" not in run.out
    assert "the source is unavailable now" in run.out
    assert f"{card} is not the folder listed this run" in run.out
    db = StateDB.in_dir(tmp_path / "state")
    try:
        assert db.tombstones() == {}
        assert db.listing_count("incoming") == 1
    finally:
        db.close()

    with image_mounted(image, card):
        assert files_under(card) == {"DCIM/100CANON/IMG_0001.JPG": photo}
        again = ws.run("apply", "--yes", now=NOW)
        assert again.code == 0, again.out + again.err
        assert "removed from incoming" in again.out
        assert files_under(card) == {}
    db = StateDB.in_dir(tmp_path / "state")
    try:
        assert len(db.tombstones()) == 1
        assert db.figures()["removed"] == {"incoming": {"items": 1, "bytes": len(photo)}}
    finally:
        db.close()


def test_another_card_in_its_place_with_the_file_missing_is_not_said_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card swapped for another (its folders alike, the photo not on it)."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    card = ws.incoming
    with ext4_image(tmp_path / "images/card.img", card):
        photo = make_jpeg(card / "DCIM/100CANON/IMG_0001.JPG", OLD, seed=1).read_bytes()
        real = FolderSource.remove
        other = ExitStack()

        def swapped(self: FolderSource, item: SourceItem, proven: object) -> None:
            subprocess.run(["umount", str(card)], check=True)
            other.enter_context(ext4_image(tmp_path / "images/other.img", card))
            (card / "DCIM/100CANON").mkdir(parents=True)
            monkeypatch.setattr(FolderSource, "remove", real)
            return real(self, item, proven)  # type: ignore[arg-type]

        monkeypatch.setattr(FolderSource, "remove", swapped)
        with other:
            run = ws.run("apply", "--yes", now=NOW)
        assert run.code == 1, run.out + run.err
        assert "removed from incoming" not in run.out
        assert "the source is unavailable now" in run.out
        assert files_under(card) == {}  # the card listed is not mounted any more
    with image_mounted(tmp_path / "images/card.img", card):
        assert files_under(card) == {"DCIM/100CANON/IMG_0001.JPG": photo}
    db = StateDB.in_dir(tmp_path / "state")
    try:
        assert db.tombstones() == {}
    finally:
        db.close()
