"""A name too long to be carried whole aside (``<name>.reconcile-removing-<token>``
fits a folder's 255 bytes only for names up to 222) is written down beside
it first, in a hidden record no listing takes for a photo: a run killed at
any point leaves the photo under its name, or aside with its whole name
written, and it comes back whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from providers import folder
from providers.folder import FolderSource
from reconciler.errors import ProviderError
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB

#: 75 kana (3 bytes each) + ".JPG": 229 bytes, a valid name
LONG = "ア" * 75 + ".JPG"
TOKEN = "0123456789ab"


def _aside(at: Path, name: str, data: bytes, *, record: str | None = None) -> Path:
    """A file set aside from ``name`` by a killed removal, with the record
    of its whole name (``record``: what the record says, if not ``name``)."""
    moved = folder.aside_name(name)
    moved = moved[:-12] + TOKEN
    (at / moved).write_bytes(data)
    (at / f"{folder.ASIDE_MARK}{TOKEN}").write_text(name if record is None else record)
    return at / moved


def _restore(at: Path) -> folder.Restored:
    return folder.restore(at, sorted(os.listdir(at)))


def test_a_long_name_aside_comes_back_whole_and_its_record_goes(tmp_path: Path) -> None:
    moved = _aside(tmp_path, LONG, b"the photo")
    assert len(moved.name.encode()) <= 255 and not moved.name.endswith(".JPG")
    assert _restore(tmp_path) == folder.Restored([LONG], stuck=False)
    assert os.listdir(tmp_path) == [LONG]
    assert (tmp_path / LONG).read_bytes() == b"the photo"


def test_a_record_a_run_killed_before_its_rename_left_is_dropped(tmp_path: Path) -> None:
    (tmp_path / LONG).write_bytes(b"the photo")
    (tmp_path / f"{folder.ASIDE_MARK}{TOKEN}").write_text(LONG)
    assert _restore(tmp_path) == folder.Restored([], stuck=False)
    assert os.listdir(tmp_path) == [LONG]


@pytest.mark.parametrize("record", ["ア" * 75 + "/../x.JPG", "another.JPG", ""])
def test_a_record_that_does_not_fit_its_file_is_not_followed(tmp_path: Path, record: str) -> None:
    """A record not of this file (its start differs) or not a name: the
    file goes back under the start its name aside carries, in its folder."""
    moved = _aside(tmp_path, LONG, b"the photo", record=record)
    start = folder.original_name(moved.name)
    assert start and LONG.startswith(start)
    assert _restore(tmp_path).back == [start]
    assert (tmp_path / start).read_bytes() == b"the photo"


def test_a_name_taken_since_keeps_the_file_aside_with_its_record(tmp_path: Path) -> None:
    moved = _aside(tmp_path, LONG, b"the photo")
    (tmp_path / LONG).write_bytes(b"a new photo that took the name")
    assert _restore(tmp_path) == folder.Restored([], stuck=False)
    assert moved.read_bytes() == b"the photo"
    assert (tmp_path / f"{folder.ASIDE_MARK}{TOKEN}").read_text() == LONG


def test_a_put_back_killed_between_its_link_and_unlink_drops_the_name_aside(
    tmp_path: Path,
) -> None:
    (tmp_path / "IMG_0001.JPG").write_bytes(b"the photo")
    os.link(tmp_path / "IMG_0001.JPG", tmp_path / f"IMG_0001.JPG{folder.ASIDE_MARK}{TOKEN}")
    assert _restore(tmp_path).back == ["IMG_0001.JPG"]
    assert os.listdir(tmp_path) == ["IMG_0001.JPG"]


def _listed(root: Path, state: Path) -> tuple[FolderSource, object]:
    db = StateDB.in_dir(state)
    try:
        source = FolderSource("incoming", root)
        (item,) = source.list_items(CachedHasher(db, now=1e9, reverify_after_s=None, workers=1))
    finally:
        db.close()
    return source, item


def test_a_long_name_removed_or_sent_back_leaves_no_record(tmp_path: Path) -> None:
    src = tmp_path / "incoming"
    src.mkdir()
    (src / LONG).write_bytes(b"the photo")
    os.utime(src / LONG, (1e9, 1e9))  # long written (no lease is asked of it then)
    source, item = _listed(src, tmp_path / "state")
    seen: list[tuple[str, ...]] = []

    def refused() -> None:  # the gate, which reads the copies: while it does
        record, aside = sorted(os.listdir(src))
        seen.append((record, aside, (src / record).read_text()))
        raise ProviderError("a copy is missing")

    with pytest.raises(ProviderError, match="a copy is missing"):
        source.remove(item, refused)  # type: ignore[arg-type]
    ((record, aside, whole),) = seen  # while the gate read the copies: aside, its record beside
    assert record == f"{folder.ASIDE_MARK}{aside[-12:]}" and whole == LONG
    assert os.listdir(src) == [LONG]  # back whole, its record gone

    source.remove(item, lambda: None)  # type: ignore[arg-type]
    assert os.listdir(src) == []
