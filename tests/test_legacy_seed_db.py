"""``import-legacy`` reads the seed's media.db as it is, where it is: the
path is never misread as a URI (a '#', a '?', a '%41' in a folder's name),
nothing is written or made beside it (its WAL files), a seed still writing
to it is read as any SQLite reader would, and its columns are SQLite's
(in any case). ``validate`` reads the state database the same way. Found
by a bug hunt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace
from tests.test_import_legacy import OLD, seed_media_db


def _ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)


def _legacy_filenames(ws: Workspace) -> list[str]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return [r[0] for r in db.conn.execute("select filename from legacy_media order by 1")]
    finally:
        db.close()


def test_a_media_db_in_a_folder_named_with_a_hash_is_read_and_nothing_made_beside(
    tmp_path: Path,
) -> None:
    # "Seed #1/media.db": the '#' cut the URI short, so "Seed " was opened
    # read-write, made empty, and reported as no seed database.
    ws = _ws(tmp_path)
    folder = tmp_path / "Seed #1"
    folder.mkdir()
    photo = make_jpeg(ws.library / "IMG_1.JPG", OLD, seed=1)
    size = photo.stat().st_size
    row = {"filename": "IMG_1.JPG", "icloud_id": "A1", "local_path": str(photo)}
    media_db = seed_media_db(folder / "media.db", [row | {"initial_size": size}])
    before = sorted(p.name for p in tmp_path.iterdir())

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 1 row(s) from {media_db}: 1 item(s) adopted"), r.out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_media_db_path_with_a_question_mark_is_opened_read_only(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    folder = tmp_path / "what?now"
    folder.mkdir()
    media_db = seed_media_db(folder / "media.db", [{"filename": "IMG_1.JPG", "icloud_id": "A1"}])

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 1 row(s) from {media_db}"), r.out
    assert not (tmp_path / "what").exists()  # no stray database made


def test_a_media_db_path_with_a_percent_reads_that_file_not_another(tmp_path: Path) -> None:
    # '%41' was URI-decoded to 'A': 100A/media.db was read, silently.
    ws = _ws(tmp_path)
    (tmp_path / "100%41").mkdir()
    (tmp_path / "100A").mkdir()
    named = seed_media_db(
        tmp_path / "100%41" / "media.db",
        [{"filename": f"IMG_{n}.JPG", "icloud_id": f"A{n}"} for n in range(3)],
    )
    seed_media_db(tmp_path / "100A" / "media.db", [{"filename": "OTHER.JPG", "icloud_id": "Z"}])

    r = ws.run("import-legacy", str(named))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 3 row(s) from {named}"), r.out
    assert _legacy_filenames(ws) == ["IMG_0.JPG", "IMG_1.JPG", "IMG_2.JPG"]


def _wal_seed(path: Path, names: list[str]) -> Path:
    seed_media_db(path, [{"filename": n, "icloud_id": n} for n in names])
    conn = sqlite3.connect(path)
    assert conn.execute("pragma journal_mode=wal").fetchone() == ("wal",)
    conn.close()  # the last connection checkpoints and removes -wal and -shm
    return path


def test_a_seed_db_in_wal_mode_is_read_without_a_file_made_beside_it(tmp_path: Path) -> None:
    # A read-only open of a WAL database makes media.db-wal and -shm beside
    # it, and cannot remove them.
    ws = _ws(tmp_path)
    folder = tmp_path / "seed"
    folder.mkdir()
    media_db = _wal_seed(folder / "media.db", ["IMG_1.JPG", "IMG_2.JPG"])
    stamp = media_db.stat().st_mtime_ns

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 2 row(s) from {media_db}"), r.out
    assert sorted(p.name for p in folder.iterdir()) == ["media.db"]
    assert media_db.stat().st_mtime_ns == stamp


def test_a_seed_still_writing_its_db_is_read_with_what_it_committed(tmp_path: Path) -> None:
    # The seed running meanwhile: its last rows are in its write-ahead log,
    # not yet in media.db. They are read, as any SQLite reader reads them.
    ws = _ws(tmp_path)
    media_db = _wal_seed(tmp_path / "media.db", ["IMG_1.JPG"])
    seed = sqlite3.connect(media_db)
    try:
        seed.execute("pragma wal_autocheckpoint = 0")
        seed.execute("insert into media (filename, icloud_id) values ('IMG_2.JPG', 'A2')")
        seed.commit()
        assert (tmp_path / "media.db-wal").stat().st_size > 0

        r = ws.run("import-legacy", str(media_db))
    finally:
        seed.close()

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 2 row(s) from {media_db}"), r.out
    assert _legacy_filenames(ws) == ["IMG_1.JPG", "IMG_2.JPG"]


def test_the_seeds_columns_are_matched_in_any_case(tmp_path: Path) -> None:
    # SQLite's column names know no case: "FileName" is filename.
    ws = _ws(tmp_path)
    photo = make_jpeg(ws.library / "IMG_1.JPG", OLD, seed=1)
    media_db = tmp_path / "media.db"
    conn = sqlite3.connect(media_db)
    conn.execute("create table MEDIA (FileName text, Local_Path text, ICLOUD_ID text)")
    conn.execute("insert into MEDIA values ('IMG_1.JPG', ?, 'A1')", [str(photo)])
    conn.commit()
    conn.close()

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 1 row(s) from {media_db}: 1 item(s) adopted"), r.out
    assert _legacy_filenames(ws) == ["IMG_1.JPG"]


def test_validate_reads_a_state_db_whose_path_holds_a_question_mark(tmp_path: Path) -> None:
    # "what?now/ws/state/state.db" was opened as "what", read-write: made
    # empty beside it, and the state database reported unusable.
    ws = make_workspace(tmp_path / "what?now" / "ws", removal=False, extra=KEEP_ORIGINALS)
    assert ws.run("plan").code == 0

    r = ws.run("validate")

    assert r.code == 0, r.out + r.err
    state = ws.root / "state"
    assert f"ok    state.dir: {state} is writable; state.db reads" in r.out.splitlines()
    assert not (tmp_path / "what").exists()
