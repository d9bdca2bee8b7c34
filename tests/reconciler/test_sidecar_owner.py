"""An item's sidecar is its own, for ever: two items sharing one original
(the same file imported twice, a duplicate re-dated in Photos) are planned
under two names, and a store never replaces one item's sidecar with
another's, even when the name was planned for it (the other item already
left its source)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore, files, write_marker
from reconciler import sidecar
from reconciler.errors import ForeignFileError
from reconciler.hashing import sha256_file
from reconciler.model import ItemMetadata, MediaFile, SourceItem, WriteSidecar
from reconciler.plan import plan
from tests.reconciler.test_plan import NOW, OLD, A, desired, world

SHAS = {"original": A}


def _item(key: str, when: datetime, *, fingerprint: str = "", **meta: object) -> SourceItem:
    return SourceItem(
        source_id="card",
        key=key,
        files=(
            MediaFile(
                name="IMG_0001.JPG", size=100, ref="original", sha256=A, fingerprint=fingerprint
            ),
        ),
        captured_at=when,
        metadata=ItemMetadata(record_ids=(("AssetId", key),), **meta),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fingerprint", ["", "fp1"])
def test_two_items_of_one_original_dated_apart_are_planned_under_two_names(
    fingerprint: str,
) -> None:
    first = _item("a1:m1", OLD, fingerprint=fingerprint, favorite=True)
    second = _item("a2:m2", datetime(2019, 12, 31, tzinfo=UTC), fingerprint=fingerprint)
    p = plan(desired(), world((first, second), nas=(A,), usb=(A,), library=(A,)), NOW)
    names = {(a.item_key, a.store_id): a.name for a in p.actions if isinstance(a, WriteSidecar)}
    for store in ("library", "nas", "usb"):
        assert names[("a1:m1", store)] == "IMG_0001.JPG.xmp"
        assert names[("a2:m2", store)] == sidecar.name_for(second, unique=True)
    # The same plan, twice: which item keeps the plain name does not move.
    again = plan(desired(), world((first, second), nas=(A,), usb=(A,), library=(A,)), NOW)
    assert [a.name for a in again.actions if isinstance(a, WriteSidecar)] == [
        a.name for a in p.actions if isinstance(a, WriteSidecar)
    ]


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    root = tmp_path / "nas"
    write_marker(root, "nas")
    (root / "2021/06/01").mkdir(parents=True)
    return FilesystemStore("nas", root)


REL = "2021/06/01/IMG_0001.JPG.xmp"


def test_another_items_sidecar_is_never_replaced(store: FilesystemStore) -> None:
    removed = sidecar.render(_item("a1:m1", OLD, favorite=True, title="Mine"), SHAS)
    store.put_sidecar(REL, removed)
    twin = _item("a2:m2", OLD, title="Theirs")
    with pytest.raises(ForeignFileError, match=r"holds the sidecar of another item \(card:a1:m1"):
        store.put_sidecar(REL, sidecar.render(twin, SHAS))
    assert (store.root / REL).read_bytes() == removed  # kept, byte for byte
    # Its own name is free for it, and rewritten there when its metadata changes.
    mine = "2021/06/01/" + sidecar.name_for(twin, unique=True)
    store.put_sidecar(mine, sidecar.render(twin, SHAS))
    newer = sidecar.render(_item("a2:m2", OLD, title="Theirs", favorite=True), SHAS)
    assert store.put_sidecar(mine, newer).sha256 == sha256_file(store.root / mine)
    assert (store.root / REL).read_bytes() == removed
    # The item's own sidecar at the plain name is rewritten, as ever.
    current = sidecar.render(_item("a1:m1", OLD, favorite=False, title="Mine"), SHAS)
    store.put_sidecar(REL, current)
    assert (store.root / REL).read_bytes() == current


def test_another_items_sidecar_appearing_while_ours_is_written_is_kept(
    store: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name was free when checked; a parallel write of the other item
    took it before ours was moved there: ours does not replace it."""
    theirs = sidecar.render(_item("a1:m1", OLD, favorite=True), SHAS)
    read_back = files.sha256_file

    def meanwhile(path: Path) -> str:
        (store.root / REL).write_bytes(theirs)
        return read_back(path)

    monkeypatch.setattr(files, "sha256_file", meanwhile)
    with pytest.raises(ForeignFileError, match="another item"):
        store.put_sidecar(REL, sidecar.render(_item("a2:m2", OLD), SHAS))
    assert (store.root / REL).read_bytes() == theirs
    assert [p.name for p in (store.root / REL).parent.iterdir()] == ["IMG_0001.JPG.xmp"]
