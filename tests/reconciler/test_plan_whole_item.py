"""Planner table cases for whole items: every file of an item (edit, RAW
alternative, adjustment data) and its XMP sidecar, and what is encoded."""

from __future__ import annotations

import attrs

from reconciler import sidecar
from reconciler.model import ItemMetadata, MediaFile, SourceItem, World
from reconciler.plan import plan
from tests.reconciler.test_plan import NOW, OLD, A, B, desired, ids, world

C, D = "c" * 64, "d" * 64
META = ItemMetadata(title="Dawn", favorite=True, albums=("Trip",), record_ids=(("AssetId", "a1"),))


def whole(meta: ItemMetadata | None = META) -> SourceItem:
    files = (
        MediaFile(name="IMG_1.JPG", size=100, ref="original", sha256=A),
        MediaFile(name="IMG_1.DNG", size=100, ref="alternative", role="alternative", sha256=B),
        MediaFile(name="IMG_1-edited.JPG", size=100, ref="edited", role="edited", sha256=C),
        MediaFile(name="IMG_1.AAE", size=100, ref="sidecar", role="edit_sidecar", sha256=D),
    )
    return SourceItem(source_id="card", key="k", files=files, captured_at=OLD, metadata=meta)


def digest(item: SourceItem) -> str:
    return sidecar.digest(item, {f.ref: f.sha256 or "" for f in item.files})


def test_only_the_original_is_encoded_never_the_edit_or_the_raw() -> None:
    d = desired(tiers=[{"name": "old", "jpeg_quality": 60}])
    item = whole(None)
    shas = (A, B, C, D)
    p = plan(d, world((item,), nas=shas, usb=shas, library=shas), NOW)
    assert ids(p) == [f"encode:{A}", "remove:card:k"]


def test_the_sidecar_is_written_everywhere_and_the_removal_waits_for_it() -> None:
    item = whole()
    shas = (A, B, C, D)
    p = plan(desired(), world((item,), nas=shas, usb=shas, library=shas), NOW)
    writes = ["sidecar:library:card:k", "sidecar:nas:card:k", "sidecar:usb:card:k"]
    assert ids(p) == [*writes, "remove:card:k"]
    assert {a.sha256 for a in p.actions[:3]} == {digest(item)}  # type: ignore[attr-defined]
    # the targets' sidecars, then the library's: the one their copies are
    # kept from once the item is gone
    assert p.actions[-1].depends_on == (*writes[1:], writes[0])


def test_a_current_sidecar_everywhere_plans_only_the_removal() -> None:
    item = whole()
    shas = (A, B, C, D, digest(item))
    p = plan(desired(), world((item,), nas=shas, usb=shas, library=shas), NOW)
    assert ids(p) == ["remove:card:k"]
    assert p.actions[0].depends_on == ()


def test_changed_metadata_rewrites_the_sidecars_and_copies_no_media() -> None:
    before = whole()
    shas = (A, B, C, D, digest(before))
    after = before._replace(metadata=attrs.evolve(META, favorite=False))
    d = desired(removal={"enabled": False})
    p = plan(d, world((after,), nas=shas, usb=shas, library=shas), NOW)
    assert ids(p) == ["sidecar:library:card:k", "sidecar:nas:card:k", "sidecar:usb:card:k"]


def test_a_target_without_the_sidecar_and_no_way_to_write_it_keeps_the_item() -> None:
    item = whole()
    shas = (A, B, C, D, digest(item))
    w = world((item,), nas=shas, usb=shas[:4], library=shas, usb_available=False)
    p = plan(desired(), w, NOW)
    assert ids(p) == []
    assert [n.status for n in p.notes] == ["unavailable", "waiting"]


def test_an_unknown_hash_makes_the_sidecar_wait_for_the_download() -> None:
    item = whole()
    files = (item.files[0]._replace(sha256=None), *item.files[1:])
    remote = item._replace(files=files)
    w: World = world((remote,), remote=True)
    p = plan(desired(), w, NOW)
    write = next(a for a in p.actions if a.id == "sidecar:nas:card:k")
    assert write.sha256 is None  # type: ignore[attr-defined]
    assert "download:card:k:original" in write.depends_on
    assert "copy:nas:card:k:original" in write.depends_on


def test_a_future_date_is_said_once_and_kept() -> None:
    from datetime import timedelta

    from tests.reconciler.test_plan import item

    future = item("x", A, NOW + timedelta(days=700))
    p = plan(desired(), world((future,), nas=(A,), usb=(A,), library=(A,)), NOW)
    assert ids(p) == []
    assert [(n.status, n.subject, n.reason) for n in p.notes] == [
        (
            "waiting",
            "card:x",
            f"captured in the future ({(NOW + timedelta(days=700)):%Y-%m-%d}; "
            "a wrong camera clock?); kept in the source",
        )
    ]


def test_max_age_days_leaves_older_items_alone() -> None:
    from datetime import timedelta

    from reconciler import config
    from tests.reconciler.test_plan import item

    d = desired()
    card = attrs.evolve(d.sources["card"], max_age_days=100)
    assert isinstance(card, config.FolderSource)
    d = attrs.evolve(d, sources={"card": card})
    young = item("young", A, NOW - timedelta(days=50))
    old = item("old", B, NOW - timedelta(days=400))
    undated = item("undated", C, None)
    p = plan(d, world((young, old, undated)), NOW)
    assert "old" not in {a.subject.split(":")[1] for a in p.actions}
    assert {a.id for a in p.actions} >= {f"library:{A}", f"library:{C}"}


def test_an_item_its_source_cannot_remove_is_a_note_not_a_removal() -> None:
    why = "in a Shared Library, which the staging album 'X' cannot hold"
    item = whole(attrs.evolve(META, unremovable=why))
    shas = (A, B, C, D, digest(item))
    p = plan(desired(), world((item,), nas=shas, usb=shas, library=shas), NOW)
    assert ids(p) == []
    assert [(n.status, n.reason) for n in p.notes] == [("skipped", f"{why}; kept in the source")]
    # Archiving still happens: only the removal is left out.
    p = plan(desired(), world((item,), library=shas), NOW)
    assert {f"copy:{t}:{sha}" for t in ("nas", "usb") for sha in (A, B, C, D)} <= set(ids(p))
    assert "remove:card:k" not in ids(p)
