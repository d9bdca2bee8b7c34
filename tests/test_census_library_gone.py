"""A library file gone (deleted, a disk replaced) is set aside from the
library's rows until it is put back from a target (``library_gone``): its
item is still one the tool knows. The census counts it by the copies it
has, so ``status``, the metrics textfile and the report never say "every
item is archived" of a library whose item lost a copy, or every copy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconciler import config
from reconciler.census import STATES, census_key
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2024, 6, 1, tzinfo=UTC)
OLD = datetime(2023, 1, 5, 10, 0, tzinfo=UTC)  # off-loaded from its source
YOUNG = datetime(2024, 5, 30, 10, 0, tzinfo=UTC)  # kept there (keep_recent_days = 30)


def _archived(tmp_path: Path, old: int, young: int = 0) -> Workspace:
    """``old`` items off-loaded from their source and ``young`` ones kept
    there, each in the library and on both targets."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    for n in range(old):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", OLD, seed=n)
    for n in range(old, old + young):
        make_jpeg(ws.incoming / f"IMG_{n}.JPG", YOUNG, seed=n)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(files_under(ws.incoming)) == young
    return ws


def _delete(ws: Workspace, name: str, *stores: Path) -> None:
    for store in stores:
        (f,) = store.rglob(name)
        f.unlink()


def _items(ws: Workspace) -> dict[str, int]:
    return dict(json.loads(ws.run("status", "--json").out)["census"]["items"])


def _counts(**counts: int) -> dict[str, int]:
    return {s: counts.get(s, 0) for s in STATES}


def _report(ws: Workspace, tmp_path: Path) -> str:
    out = tmp_path / "report.html"
    assert ws.run("report", str(out)).code == 0
    return out.read_text()


def test_an_item_gone_from_the_library_with_one_copy_left_is_archived_on_one(
    tmp_path: Path,
) -> None:
    ws = _archived(tmp_path, old=3)
    # The person deletes IMG_1 from the library, and the NAS lost its copy
    # too: one copy is left (usb), two are required.
    _delete(ws, "IMG_1.JPG", ws.library, ws.target("nas"))
    p = ws.run("plan", "--detailed-exitcode", now=NOW)  # observes; stores its census
    assert p.code == 2, p.out + p.err
    assert "gone from the library" in p.out
    assert _items(ws) == _counts(removed=2, archived_1=1)
    text = ws.run("status").out
    assert "items: 0 in a source only, 0 in the library only, 1 archived on 1 target" in text
    assert "oldest not yet archived: 2023/01/05/IMG_1.JPG, captured 2023-01-05" in text
    assert "every item is archived" not in text
    prom = (ws.root / "state" / "reconcile.prom").read_text()
    assert 'reconcile_items{state="archived_1"} 1' in prom, prom
    assert 'reconcile_items{state="removed"} 2' in prom, prom
    html = _report(ws, tmp_path)
    assert "Every item the tool knows is archived" not in html
    assert "Oldest item not yet archived: <b>2023/01/05/IMG_1.JPG</b>" in html


def test_an_item_with_no_copy_left_anywhere_is_never_archived(tmp_path: Path) -> None:
    ws = _archived(tmp_path, old=2, young=1)
    # IMG_1: off-loaded, then gone from the library and both targets: no
    # copy of it is left anywhere the tool knows of. IMG_2: gone from the
    # library, still in its source and on both targets (counted once).
    _delete(ws, "IMG_1.JPG", ws.library, ws.target("nas"), ws.target("usb"))
    _delete(ws, "IMG_2.JPG", ws.library)
    ws.run("plan", now=NOW)  # observes: the rows now say what is there
    # In the library only: its library row is all that is left of it, and
    # the library is where it is put back (no source holds it any more).
    assert _items(ws) == _counts(removed=1, archived_2plus=1, library_only=1)
    text = ws.run("status").out
    assert "every item is archived" not in text, text
    assert "oldest not yet archived: 2023/01/05/IMG_1.JPG" in text
    assert "Every item the tool knows is archived" not in _report(ws, tmp_path)


def test_an_off_loaded_item_gone_from_the_library_keeps_its_removal_while_its_copies_last(
    tmp_path: Path,
) -> None:
    ws = _archived(tmp_path, old=2)
    _delete(ws, "IMG_1.JPG", ws.library)  # both targets still hold it
    ws.run("plan", now=NOW)
    assert _items(ws) == _counts(removed=2)  # not one item fewer
    assert "every item is archived (2 copies required) or off-loaded" in ws.run("status").out


def test_the_census_key_sees_a_library_row_set_aside(tmp_path: Path) -> None:
    """A stored census is reused while its key holds: a row set aside
    without any write to the tables the change counter watches (``move``
    false) must still make the census stale."""
    ws = _archived(tmp_path, old=1)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        before = census_key(db, desired)
        (row,) = db.lineage().values()
        db.set_aside_lineage([row], move=False)
        assert db.gone_lineage() == [row]
        assert census_key(db, desired) != before
    finally:
        db.close()
