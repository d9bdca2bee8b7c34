"""A file missing when its removal comes is "gone already" only from the very
folder that was listed: a path missing under a mount point can mean the
card was unplugged (a bare mount point), swapped for another with the same
folders, or its folder moved away, and a photo said removed then was never
touched (a tombstone, a lower listing count, off-loaded twice)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.folder import FolderSource
from reconciler.errors import ProviderError
from reconciler.model import SourceItem
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB
from tests.helpers import files_under, mounted

UNAVAILABLE = "the source is unavailable now"


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Path]:
    """A disk of its own mounted at the source's folder, a photo on it."""
    with mounted(tmp_path / "card", "-t", "tmpfs", "tmpfs") as at:
        (at / "DCIM/100CANON").mkdir(parents=True)
        (at / "DCIM/100CANON/IMG_0001.JPG").write_bytes(b"the photo")
        yield at


def _listed(root: Path, state: Path) -> tuple[FolderSource, SourceItem]:
    db = StateDB.in_dir(state)
    try:
        source = FolderSource("card", root)
        (item,) = source.list_items(CachedHasher(db, now=1e9, reverify_after_s=None, workers=1))
    finally:
        db.close()
    return source, item


def _gate_passes() -> None:
    return None


def test_a_card_unplugged_since_its_listing_is_unavailable_not_gone(
    card: Path, tmp_path: Path
) -> None:
    source, item = _listed(card, tmp_path / "state")
    subprocess.run(["umount", str(card)], check=True)  # the bare mount point is left
    with pytest.raises(ProviderError, match=UNAVAILABLE) as e:
        source.remove(item, _gate_passes)
    assert "DCIM/100CANON/IMG_0001.JPG not removed" in str(e.value)


def test_another_card_with_the_same_folders_is_unavailable_not_gone(
    card: Path, tmp_path: Path
) -> None:
    source, item = _listed(card, tmp_path / "state")
    with mounted(card, "-t", "tmpfs", "tmpfs"):  # another card over it, its folders alike
        (card / "DCIM/100CANON").mkdir(parents=True)
        with pytest.raises(ProviderError, match=UNAVAILABLE):
            source.remove(item, _gate_passes)
    assert files_under(card) == {"DCIM/100CANON/IMG_0001.JPG": b"the photo"}


def test_a_folder_moved_away_and_made_again_is_not_the_folder_listed(
    card: Path, tmp_path: Path
) -> None:
    """The same disk: the photo's folder renamed (sorted by hand) and an
    empty one of its name made (by the camera): the photo is not gone."""
    source, item = _listed(card, tmp_path / "state")
    (card / "DCIM/100CANON").rename(card / "DCIM/sorted")
    (card / "DCIM/100CANON").mkdir()
    with pytest.raises(ProviderError, match=UNAVAILABLE):
        source.remove(item, _gate_passes)
    assert files_under(card) == {"DCIM/sorted/IMG_0001.JPG": b"the photo"}


def test_a_file_or_folder_deleted_from_the_folder_listed_is_gone(
    card: Path, tmp_path: Path
) -> None:
    source, item = _listed(card, tmp_path / "state")
    (card / "DCIM/100CANON/IMG_0001.JPG").unlink()
    source.remove(item, _gate_passes)  # nothing to do: gone already
    shutil.rmtree(card / "DCIM")
    source.remove(item, _gate_passes)
    assert files_under(card) == {}
