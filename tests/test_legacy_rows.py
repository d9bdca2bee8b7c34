"""``import-legacy`` keeps every seed row, whatever it holds: two rows of
one name are two records, one rule says which the seed off-loaded, a size
no integer holds is no size, each file named is read once, and every
name from the seed is shown escaped. Found by a bug hunt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace
from tests.test_import_legacy import OLD, seed_media_db


def _ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", removal=False, extra=KEEP_ORIGINALS)


def _counts(ws: Workspace) -> dict[str, int]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return db.legacy_counts()
    finally:
        db.close()


def test_every_row_is_kept_even_two_of_one_name_without_icloud_id(tmp_path: Path) -> None:
    # README: "Each row is kept in the state database's legacy_media table".
    # Both rows had the key "file:IMG_0001.JPG": the second replaced the
    # first, and the off-load record was lost while the report counted it.
    ws = _ws(tmp_path)
    media_db = seed_media_db(
        tmp_path / "media.db",
        [
            {"filename": "IMG_0001.JPG", "deleted_icloud": 1, "status": "deleted"},
            {"filename": "IMG_0001.JPG", "status": "pending"},
        ],
    )

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(f"imported 2 row(s) from {media_db}: 0 item(s) adopted"), r.out
    assert "1 recorded as deleted from iCloud" in r.out
    assert _counts(ws) == {"rows": 2, "adopted": 0, "deleted_from_icloud": 1}
    db = StateDB.in_dir(ws.root / "state")
    try:
        kept = db.conn.execute("select legacy_key, status from legacy_media order by 1")
        assert kept.fetchall() == [("row:1", "deleted"), ("row:2", "pending")]
    finally:
        db.close()


def test_the_report_and_the_state_count_the_seeds_deletions_alike(tmp_path: Path) -> None:
    # The report counted 'yes' and 'TRUE'; legacy_counts only the integer 1.
    ws = _ws(tmp_path)
    flags: list[object] = [1, "1", "yes", "TRUE", " true ", 0, "no", 2, None, "deleted", 1.0]
    media_db = seed_media_db(
        tmp_path / "media.db",
        [{"filename": f"IMG_{n}.JPG", "deleted_icloud": f} for n, f in enumerate(flags)],
    )

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert "6 recorded as deleted from iCloud by the seed pipeline" in r.out, r.out
    assert _counts(ws) == {"rows": 11, "adopted": 0, "deleted_from_icloud": 6}


@pytest.mark.parametrize(
    "size", [float("inf"), float("-inf"), float("nan"), 1e300, 12.5, "9" * 5000, b"\xff"]
)
def test_a_size_no_integer_holds_is_no_size(tmp_path: Path, size: object) -> None:
    # Inf in a REAL column: int() raised OverflowError, a traceback.
    ws = _ws(tmp_path)
    photo = make_jpeg(ws.library / "IMG_1.JPG", OLD, seed=1)
    row = {"filename": "IMG_1.JPG", "icloud_id": "A1", "local_path": str(photo)}
    media_db = seed_media_db(tmp_path / "media.db", [row | {"initial_size": size}])
    conn = sqlite3.connect(media_db)  # also as current_size, found by name
    conn.execute("update media set current_size = initial_size")
    conn.commit()
    conn.close()

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == (
        f"imported 1 row(s) from {media_db}: 1 item(s) adopted (1 file(s) hashed where they "
        "are; 0 item(s) still the size the seed downloaded), 0 recorded as deleted from "
        "iCloud by the seed pipeline"
    )


def test_a_file_named_by_several_rows_is_hashed_once(tmp_path: Path) -> None:
    # Three rows of one name and size (the seed listed it again): the NAS
    # copy was read once per row, and counted three times.
    ws = _ws(tmp_path)
    photo = make_jpeg(ws.target("nas") / "backup" / "IMG_1.JPG", OLD, seed=1)
    size = photo.stat().st_size
    media_db = seed_media_db(
        tmp_path / "media.db",
        [{"filename": "IMG_1.JPG", "icloud_id": f"A{n}", "current_size": size} for n in range(3)],
    )

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.startswith(
        f"imported 3 row(s) from {media_db}: 3 item(s) adopted (1 file(s) hashed where they are;"
    ), r.out


def test_names_from_the_seed_are_shown_escaped(tmp_path: Path) -> None:
    # A newline in the seed's local_path forged a line of the report; an
    # ESC drove the terminal.
    ws = _ws(tmp_path)
    evil = "/old/IMG_1.JPG\nimported 0 row(s) \x1b[2J\u202e"
    media_db = seed_media_db(
        tmp_path / "media.db",
        [{"filename": "IMG_1.JPG", "icloud_id": "A1", "local_path": evil, "deleted_icloud": 1}],
    )

    r = ws.run("import-legacy", str(media_db))

    assert r.code == 0, r.err
    assert r.out.splitlines()[1] == (
        "  not on any store: /old/IMG_1.JPG\\nimported 0 row(s) \\x1b[2J\\u202e"
    )
    assert "\x1b" not in r.out and "\u202e" not in r.out
