"""A run that changed nothing the census counts reuses the last census; any
write to a counted table, a changed configuration or a store on another
disk makes the next run count again, and what is stored always equals a
fresh count."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reconciler import census as census_module
from reconciler import config, history, independence
from reconciler.census import census, census_key
from reconciler.census import key as census_key_module
from reconciler.schema import CENSUS_TABLES
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _converged(tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", NOW, seed=1)
    make_jpeg(ws.incoming / "IMG_2.JPG", NOW, seed=2)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    return ws


def _last(ws: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last run's stored census, and a fresh count of the same database."""
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        stored = db.census_history(1)[-1][1]
        return stored, census(db, desired).to_json()
    finally:
        db.close()


def _counting(monkeypatch: pytest.MonkeyPatch, module: ModuleType = history) -> list[int]:
    """Each census counted through ``module`` from now on, one entry each."""
    calls: list[int] = []
    real = module.census

    def counted(db: StateDB, desired: config.DesiredState) -> Any:
        calls.append(1)
        return real(db, desired)

    monkeypatch.setattr(module, "census", counted)
    return calls


def test_a_run_that_changed_nothing_reuses_the_census(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _converged(tmp_path)
    calls = _counting(monkeypatch)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    assert calls == []  # the converged apply's census, twice
    stored, fresh = _last(ws)
    assert stored == fresh
    assert stored["targets"]["nas"]["files"] == 2


def test_a_changed_store_a_changed_config_each_count_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _converged(tmp_path)
    calls = _counting(monkeypatch)
    # A copy lost on the NAS: the plan sees it, its hash row goes.
    lost = next(p for p in (ws.root / "nas").rglob("*.JPG"))
    lost.unlink()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    assert len(calls) == 1
    stored, fresh = _last(ws)
    assert stored == fresh and stored["targets"]["nas"]["files"] == 1
    # Nothing else changed: the next plan reuses that count.
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    assert len(calls) == 1
    # One copy is enough now: same rows, another configuration.
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    assert "copies = 1" in ws.config.read_text()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code in (0, 2)
    assert len(calls) == 2
    stored, fresh = _last(ws)
    assert stored == fresh


def _value(kind: str) -> object:
    kind = kind.lower()
    return 1 if "int" in kind else 1.5 if "real" in kind else "x"


@pytest.mark.parametrize("table", CENSUS_TABLES)
def test_every_write_to_a_counted_table_moves_the_counter(tmp_path: Path, table: str) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        conn = db.db.conn
        cols = [(r[1], r[2]) for r in conn.execute(f"pragma table_info({table})")]
        names = ", ".join(c for c, _ in cols)
        marks = ", ".join("?" for _ in cols)
        first = cols[0][0]
        steps = [
            (f"insert into {table} ({names}) values ({marks})", [_value(k) for _, k in cols]),
            (f"update {table} set {first} = {first}", []),
            (f"delete from {table}", []),  # no WHERE: SQLite's truncation must still count
        ]
        for sql, args in steps:
            before = db.changes()
            conn.execute(sql, args)
            assert db.changes() > before, sql
    finally:
        db.close()


def test_the_census_reads_only_counted_tables(tmp_path: Path) -> None:
    """Were the census to read a table no trigger counts, a change there would
    leave a stale census stored: SQLite's authorizer lists what it reads."""
    ws = _converged(tmp_path)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    read: set[str] = set()

    def note(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table:
            read.add(table)
        return sqlite3.SQLITE_OK

    try:
        db.db.conn.set_authorizer(note)
        census(db, desired)
        db.db.conn.set_authorizer(None)
    finally:
        db.close()
    assert {"library", "hash_cache", "tombstones"} <= read
    assert read <= set(CENSUS_TABLES), read - set(CENSUS_TABLES)


def test_a_lost_trigger_is_put_back_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    raw = sqlite3.connect(path)
    raw.execute("drop trigger counted_library_insert")
    raw.commit()
    raw.close()
    db = StateDB(path)
    try:
        before = db.changes()
        db.db.conn.execute("insert into library (path) values ('a.jpg')")
        assert db.changes() == before + 1
    finally:
        db.close()


def test_the_key_names_the_disk_of_every_store(tmp_path: Path) -> None:
    ws = _converged(tmp_path)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        key = census_key(db, desired)
        moved = ws.root / "nas-elsewhere"
        (ws.root / "nas").rename(moved)  # the path now names no disk at all
        assert census_key(db, desired) != key
        moved.rename(ws.root / "nas")
        assert census_key(db, desired) == key
    finally:
        db.close()


def test_status_shows_the_stored_census_while_it_is_the_census_of_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _converged(tmp_path)
    calls = _counting(monkeypatch, census_module)
    shown = json.loads(ws.run("status", "--json").out)["census"]
    assert calls == []
    assert shown == _last(ws)[1]
    # Another configuration: no run took a census under it, so status counts.
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    shown = json.loads(ws.run("status", "--json").out)["census"]
    assert calls == [1]
    assert shown == _last(ws)[1]


def test_a_change_to_the_counting_rules_makes_the_stored_census_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade that changes how copies or files count (which disks are
    independent, what is junk) recounts even though no row changed."""
    ws = _converged(tmp_path)
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        key = census_key(db, desired)
        rules = tmp_path / "independence.py"
        rules.write_text("# the disks' rule, as a new release has it\n")
        census_key_module._counting_code.cache_clear()
        real = census_key_module._counting_modules()
        assert independence.__file__ in real
        monkeypatch.setattr(
            census_key_module,
            "_counting_modules",
            lambda: [str(rules) if p == independence.__file__ else p for p in real],
        )
        assert census_key(db, desired) != key
    finally:
        census_key_module._counting_code.cache_clear()
        db.close()
