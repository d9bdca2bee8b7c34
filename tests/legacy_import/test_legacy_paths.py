"""import-legacy adopts only the files a store's own walk lists: a seed
``local_path`` under a store's folder that the walk passes over (a dot-folder
such as a disk's trash, a symbolic link to one, the store's marker, a folder
of another store inside it) is no copy, and is neither hashed nor counted."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from providers.filesystem import MARKER, write_marker
from reconciler import config, legacy, places
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, mounted
from tests.legacy_import.common import NOW, OLD, seed_media_db


def _workspace(tmp_path: Path) -> tuple[Workspace, Path]:
    ws = make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)
    return ws, make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)


def _rows_in(ws: Workspace, table: str) -> list[str]:
    """The first column of the state database's ``table``, paths made
    relative to the workspace (the hash cache's files, the seed's rows)."""
    db = StateDB.in_dir(ws.root / "state")
    try:
        rows = db.conn.execute(f"select * from {table}").fetchall()
    finally:
        db.close()
    return sorted(os.path.relpath(r[0], ws.root) if table == "hash_cache" else r[0] for r in rows)


def _row(n: int, file: Path, size: int) -> dict[str, object]:
    return {
        "filename": file.name,
        "icloud_id": f"A{n}",
        "local_path": str(file),
        "initial_size": size,
        "current_size": size,
    }


def _in_trash(target: Path, photo: Path) -> Path:
    trash = target / ".Trash-1000" / "files" / photo.name
    trash.parent.mkdir(parents=True)
    shutil.copy(photo, trash)
    return trash


def _behind_a_link(target: Path, photo: Path) -> Path:
    """A folder of the target that is a link to its trash: the walk follows
    no link, and the trash itself is a dot-folder."""
    _in_trash(target, photo)
    (target / "2021").symlink_to(target / ".Trash-1000" / "files")
    return target / "2021" / photo.name


def _the_marker(target: Path, photo: Path) -> Path:
    return target / MARKER


@pytest.mark.parametrize("where", [_in_trash, _behind_a_link, _the_marker])
def test_a_seed_path_no_walk_lists_is_not_adopted(
    tmp_path: Path, where: Callable[[Path, Path], Path]
) -> None:
    ws, photo = _workspace(tmp_path)
    rows = []
    for n, store in enumerate(("nas", "usb")):
        file = where(ws.target(store), photo)
        rows.append(_row(n, file, file.stat().st_size))
    r = ws.run("import-legacy", str(seed_media_db(tmp_path / "media.db", rows)))
    assert r.code == 0, r.out + r.err
    # Nothing on a target is hashed (found by name and size, the source's own
    # file is: a walk lists it).
    hashed = _rows_in(ws, "hash_cache")
    assert [p for p in hashed if not p.startswith("incoming/")] == [], hashed
    census = json.loads(ws.run("status", "--json", now=NOW).out)["census"]
    assert census["targets"]["nas"]["files"] == census["targets"]["usb"]["files"] == 0
    assert "every item is archived" not in ws.run("status", now=NOW).out
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "no verified copy on nas" in p.out, p.out


def test_the_same_file_where_the_walk_lists_it_is_adopted(tmp_path: Path) -> None:
    """The control: a seed path the walk lists is adopted and counted."""
    ws, photo = _workspace(tmp_path)
    rows = []
    for n, store in enumerate(("nas", "usb")):
        file = ws.target(store) / "2021" / photo.name
        file.parent.mkdir()
        shutil.copy(photo, file)
        rows.append(_row(n, file, file.stat().st_size))
    r = ws.run("import-legacy", str(seed_media_db(tmp_path / "media.db", rows)))
    assert r.code == 0, r.out + r.err
    assert _rows_in(ws, "hash_cache") == [
        "incoming/IMG_1.JPG",
        "nas/2021/IMG_1.JPG",
        "usb/2021/IMG_1.JPG",
    ]
    census = json.loads(ws.run("status", "--json", now=NOW).out)["census"]
    assert census["targets"]["nas"]["files"] == census["targets"]["usb"]["files"] == 1


def test_a_store_inside_a_target_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A folder of the target marked as another store (an old disk's backup
    copied whole) stops the target's walk, as in plan: nothing is adopted
    from it, and the person is told what to fix instead of a traceback."""
    ws, photo = _workspace(tmp_path)
    old = ws.target("nas") / "old-disk"
    write_marker(old, "old-disk")
    shutil.copy(photo, old / photo.name)
    rows = [_row(0, old / photo.name, photo.stat().st_size)]
    r = ws.run("import-legacy", str(seed_media_db(tmp_path / "media.db", rows)))
    assert r.code == 1, r.out + r.err
    assert r.err.startswith(f"error: nas ({ws.target('nas')}) cannot be listed: {old}/ is marked")
    assert r.err.endswith("; fix that, then run import-legacy again\n"), r.err
    assert r.out == ""
    assert _rows_in(ws, "hash_cache") == _rows_in(ws, "legacy_media") == []


def test_a_library_folder_mounted_inside_a_target_is_no_copy_on_it(tmp_path: Path) -> None:
    """The library's year folder bind-mounted inside the NAS (no marker
    there): the walk with the places' fences stops, as observation's does."""
    ws, photo = _workspace(tmp_path)
    year = ws.library / "2021"
    year.mkdir()
    shutil.copy(photo, year / photo.name)
    desired = config.load(ws.config)
    with mounted(ws.target("nas") / "2021", "--bind", str(year)) as at:
        media_db = seed_media_db(tmp_path / "media.db", [_row(0, at / photo.name, 0)])
        db = StateDB.in_dir(ws.root / "state")
        try:
            with pytest.raises(legacy.LegacyError, match=r"^nas \(.*\) cannot be listed: "):
                legacy.import_legacy(desired, db, media_db, fences=places.fences(desired))
        finally:
            db.close()
    assert _rows_in(ws, "hash_cache") == []
