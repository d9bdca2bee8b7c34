"""Places that are one folder, or one inside another, on a disk that tells
names apart by neither case nor Unicode form (exFAT, SMB: a camera card, a
USB disk): ``DCIM`` and ``dcim/backup`` are a folder and one inside it.

Paths compared as strings do not show it, and on exFAT through FUSE the
files' identities do not either (each spelling of a name gets an inode
number of its own). A backup target inside the import folder was walked as
the import's items and, once "archived", deleted by the removal: the gate
counted the very file it removed as one of the two copies. Now the
configuration is refused, and whatever the way in, no walk lists a folder
that holds a store's marker as part of another place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import NestedPlaceError, scan_tree, write_marker
from tests.helpers import KEEP_ORIGINALS, exfat_disk, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, tzinfo=UTC)


def _card_workspace(tmp_path: Path, card: Path, usb: str):  # type: ignore[no-untyped-def]
    """The import folder is the card's DCIM; the usb target is ``usb``."""
    sources = f'[sources.card]\nkind = "folder"\npath = "{card}/DCIM"\n'
    targets = (
        '[targets.nas]\nkind = "filesystem"\npath = "nas"\nsame_disk_ok = true\n'
        f'[targets.usb]\nkind = "filesystem"\npath = "{usb}"\nsame_disk_ok = true\n'
    )
    return make_workspace(
        tmp_path / "ws",
        sources=sources,
        targets=targets,
        stores=("library", "nas"),
        extra=KEEP_ORIGINALS,
    )


def test_a_target_inside_the_source_spelled_in_other_case_is_refused(tmp_path: Path) -> None:
    with exfat_disk(tmp_path / "card") as card:
        (card / "DCIM").mkdir()
        write_marker(card / "DCIM" / "backup", "usb")
        ws = _card_workspace(tmp_path, card, f"{card}/dcim/backup")
        make_jpeg(card / "DCIM" / "IMG_1.JPG", OLD, seed=1)
        checked = ws.run("validate")
        assert checked.code == 1, checked.out + checked.err
        assert "targets.usb.path" in checked.err and "sources.card.path" in checked.err
        assert "does not tell names apart by case" in checked.err
        for _ in range(2):
            r = ws.run("apply", "--yes", now=NOW)
            assert r.code == 1, r.out + r.err
        # nothing done, nothing removed: the card's photo and the marker stay
        assert files_under(card / "DCIM") == {
            "IMG_1.JPG": (card / "DCIM" / "IMG_1.JPG").read_bytes(),
        }


def test_the_same_folder_spelled_twice_is_refused(tmp_path: Path) -> None:
    with exfat_disk(tmp_path / "card") as card:
        (card / "DCIM").mkdir()
        write_marker(card / "DCIM", "usb")
        ws = _card_workspace(tmp_path, card, f"{card}/dcim")
        checked = ws.run("validate")
        assert checked.code == 1
        assert "are the same folder" in checked.err, checked.err


def test_no_walk_lists_a_marked_store_below_its_root(tmp_path: Path) -> None:
    """However it is reached (a spelling, a mount, a copied backup folder),
    a folder holding a store's marker below a walk's root ends the walk."""
    (tmp_path / "import" / "a").mkdir(parents=True)
    (tmp_path / "import" / "a" / "one.jpg").write_bytes(b"one")
    write_marker(tmp_path / "import" / "old-backup", "nas")
    (tmp_path / "import" / "old-backup" / "two.jpg").write_bytes(b"two")
    with pytest.raises(NestedPlaceError) as e:
        list(scan_tree(tmp_path / "import"))
    assert f"{tmp_path}/import/old-backup/ is marked as a store" in str(e.value)
    # the store itself, walked from its own root, is listed as ever
    assert [e.rel for e in scan_tree(tmp_path / "import" / "old-backup")] == ["two.jpg"]
