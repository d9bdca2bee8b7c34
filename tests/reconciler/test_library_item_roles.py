"""What each library file is in its item outlives the item's presence in a
source (``LibraryFile.role``, kept on the state DB's library rows): planner
table cases for items that live only in the library (only an original is
encoded; the item's sidecar is kept on every target), and the rows that
remember."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs

from reconciler import sidecar
from reconciler.model import (
    FileCopy,
    ItemMetadata,
    LibraryFile,
    MediaFile,
    SidecarOwner,
    SourceItem,
    TargetState,
    World,
    WriteSidecar,
)
from reconciler.plan import plan
from reconciler.state import LineageRow, StateDB
from tests.reconciler.test_plan import NOW, desired, ids
from tests.reconciler.test_plan_library_items import TIERS, WHEN, lib, world

ORIG, EDIT, RAW, AAE, CLIP, CUT = (str(n) * 64 for n in range(1, 7))
XMP, OLDER = "8" * 64, "9" * 64
DAY = "2021/01/02"
OWNER = SidecarOwner("icloud", "A1", ORIG, "IMG_1.JPG")
#: The item's own tagged name ("IMG_1.JPG.<tag of icloud:A1>.xmp").
TAGGED = sidecar.owner_names(OWNER, "")[1]


def _as(role: str, f: LibraryFile) -> LibraryFile:
    return f._replace(role=role)


def test_only_the_original_of_an_item_that_left_its_source_is_encoded() -> None:
    """Its rendered edit (a still and a video), its RAW alternative (named
    like a JPEG, as Photos may name it), its adjustment data and its Live
    Photo video (no still of its name beside it) stay as they are."""
    files = (
        lib(f"{DAY}/IMG_1.JPG", ORIG),
        _as("edited", lib(f"{DAY}/IMG_1-edited.JPG", EDIT)),
        _as("alternative", lib(f"{DAY}/SAM_1-alternative.JPG", RAW)),
        _as("edit_sidecar", lib(f"{DAY}/IMG_1.AAE", AAE)),
        _as("live_video", lib(f"{DAY}/CLIP_1.MOV", CLIP)),
        _as("edited", lib(f"{DAY}/IMG_2-edited.MOV", CUT)),
    )
    archived = tuple(f.sha256 for f in files)
    p = plan(desired(tiers=TIERS), world(files, archived=archived), NOW)
    assert ids(p) == [f"encode:{ORIG}"]


def test_a_duplicates_original_that_is_another_items_edit_is_not_encoded() -> None:
    """A person's edit imported again as a new item's original: the library
    holds those bytes once, as the first item's edit; encoding them would
    compress that edit too."""
    again = SourceItem(
        source_id="card",
        key="IMG_9.JPG",
        files=(MediaFile(name="IMG_9.JPG", size=9, ref="IMG_9.JPG", sha256=EDIT),),
        captured_at=WHEN,
    )
    files = (_as("edited", lib(f"{DAY}/IMG_1-edited.JPG", EDIT)),)
    p = plan(desired(tiers=TIERS), world(files, items=(again,), archived=(EDIT,)), NOW)
    assert ids(p) == ["remove:card:IMG_9.JPG"]


def _holding(target: str, *shas: str) -> TargetState:
    return TargetState(
        target_id=target,
        kind="filesystem",
        available=True,
        copies=tuple(
            FileCopy(store_id=target, path=f"p/{s[:4]}", size=9, mtime_ns=1, sha256=s) for s in shas
        ),
    )


def _sidecar_world(
    *sidecars: LibraryFile, usb: tuple[str, ...], items: tuple[SourceItem, ...] = ()
) -> World:
    """The item's original and its sidecar(s) in the library; nas holds all."""
    files = (lib(f"{DAY}/IMG_1.JPG", ORIG), *sidecars)
    w = world(files, items=items)
    return attrs.evolve(
        w,
        targets=(_holding("nas", ORIG, *(s.sha256 for s in sidecars)), _holding("usb", *usb)),
        library_sidecars={s.sha256: OWNER for s in sidecars},
    )


def _sidecar(name: str = "IMG_1.JPG.xmp", sha: str = XMP) -> LibraryFile:
    return _as("sidecar", lib(f"{DAY}/{name}", sha))


def test_a_sidecar_a_target_lost_is_written_there_from_the_library() -> None:
    p = plan(desired(), _sidecar_world(_sidecar(), usb=(ORIG,)), NOW)
    assert ids(p) == ["sidecar:usb:icloud:A1"]
    (write,) = p.actions
    assert write == WriteSidecar(
        id="sidecar:usb:icloud:A1",
        subject="usb:IMG_1.JPG.xmp",
        reason="sidecar missing or out of date (its item lives only in the library)",
        store_id="usb",
        source_id="icloud",
        item_key="A1",
        sha256=XMP,
        name="IMG_1.JPG.xmp",
    )


def test_the_sidecar_follows_its_original_onto_a_target_that_lost_both() -> None:
    p = plan(desired(), _sidecar_world(_sidecar(), usb=()), NOW)
    assert ids(p) == [f"copy:usb:{ORIG}", "sidecar:usb:icloud:A1"]
    assert p.actions[1].depends_on == (f"copy:usb:{ORIG}",)


def test_a_sidecar_under_the_items_tag_keeps_that_name() -> None:
    """Beside another program's .xmp in the library, the item's sidecar took
    its tagged name: on a target it is tried under that name first."""
    p = plan(desired(), _sidecar_world(_sidecar(TAGGED), usb=(ORIG,)), NOW)
    (write,) = p.actions
    assert isinstance(write, WriteSidecar)
    assert (write.name, write.subject) == (TAGGED, f"usb:{TAGGED}")


def test_one_sidecar_per_item_however_many_the_library_holds() -> None:
    """Two versions of one item's sidecar in the library: the one at the
    item's own name is written; the other, at a name the tool never writes,
    is copied as a file under that name, never both in turn onto the
    target's one."""
    both = (_sidecar(), _sidecar("IMG_1.JPG.older.xmp", OLDER))
    p = plan(desired(), _sidecar_world(*both, usb=(ORIG,)), NOW)
    assert ids(p) == [f"copy:usb:{OLDER}", "sidecar:usb:icloud:A1"]


def test_an_item_still_in_its_source_has_its_sidecar_planned_from_there() -> None:
    listed = SourceItem(
        source_id="icloud",
        key="A1",
        files=(MediaFile(name="IMG_1.JPG", size=9, ref="original", sha256=ORIG),),
        captured_at=WHEN,
    )
    w = _sidecar_world(_sidecar(), usb=(ORIG,))
    icloud = attrs.evolve(w.sources[0], source_id="icloud", items=(listed,))
    p = plan(desired(), attrs.evolve(w, sources=(icloud,)), NOW)
    assert not [a for a in p.actions if isinstance(a, WriteSidecar)]


def test_an_item_leaves_its_source_only_once_the_librarys_sidecar_is_written() -> None:
    """The library's sidecar is what the targets' copies are kept from once
    the item is gone: the removal waits for it, as for the targets'."""
    meta = SourceItem(
        source_id="card",
        key="A1",
        files=(MediaFile(name="IMG_1.JPG", size=9, ref="original", sha256=ORIG),),
        captured_at=WHEN,
        metadata=ItemMetadata(title="Dawn"),
    )
    digest = sidecar.digest(meta, {"original": ORIG})
    w = world((lib(f"{DAY}/IMG_1.JPG", ORIG),), items=(meta,), archived=(ORIG, digest))
    p = plan(desired(), w, NOW)
    assert ids(p) == ["sidecar:library:card:A1", "remove:card:A1"]
    assert p.actions[1].depends_on == ("sidecar:library:card:A1",)


def _row(path: str, original: str, role: str = "") -> LineageRow:
    return LineageRow(path, original, original, "original", 9, 1, None, role)


def test_a_row_written_again_keeps_the_role_of_its_content(tmp_path: Path) -> None:
    """A file placed again, hashed again, or encoded: its new row says
    nothing of its role, and the role of that content stays."""
    db = StateDB.in_dir(tmp_path)
    try:
        db.record_lineage(_row("a/IMG_1-edited.JPG", EDIT, "edited"))
        db.record_lineages([_row("a/IMG_1-edited.JPG", EDIT), _row("a/IMG_1.JPG", ORIG)])
        assert {p: r.role for p, r in db.lineage().items()} == {
            "a/IMG_1-edited.JPG": "edited",
            "a/IMG_1.JPG": "",
        }
        db.record_lineage(_row("a/IMG_1-edited.JPG", CUT))  # other content there now
        assert db.lineage()["a/IMG_1-edited.JPG"].role == ""
    finally:
        db.close()


def test_a_role_other_than_an_originals_is_never_taken_back(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path)
    try:
        db.record_lineages([_row("a/E.JPG", EDIT), _row("a/O.JPG", ORIG)])
        db.record_roles({EDIT: "edited", ORIG: "original"})
        db.record_roles({EDIT: "original", ORIG: "alternative"})
        assert db.roles_of({EDIT, ORIG}) == {EDIT: "edited", ORIG: "alternative"}
    finally:
        db.close()


def test_a_database_from_before_roles_gains_them_empty(tmp_path: Path) -> None:
    db = StateDB.in_dir(tmp_path)
    db.record_lineage(_row("a/E.JPG", EDIT))
    db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("alter table library drop column role")
        conn.execute("update meta set value = '14' where key = 'schema_version'")
    conn.close()
    db = StateDB.in_dir(tmp_path)
    try:
        assert db.lineage()["a/E.JPG"].role == ""
    finally:
        db.close()
