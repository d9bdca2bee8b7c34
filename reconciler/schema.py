"""The state database's schema: its version, each migration that brought
it there, and its triggers: the census's change counter, the world
counter (converged plans), and the staleness of tree listings.

A migration runs once, inside one transaction with the version it sets
(``StateDB._migrate``), and is written to be safe to run again. Never edit
a migration that has shipped: add the next one.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the database object is handed in; sqlite-utils is loaded by state
    import sqlite_utils

SCHEMA_VERSION = 18


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.table("hash_cache").create(
        {
            "path": str,
            "size": int,
            "mtime_ns": int,
            "inode": int,
            "sha256": str,
            "dated": int,
            "captured_at": float,
            "hashed_at": float,
        },
        pk="path",
    )
    db.table("source_files").create(
        {"source_id": str, "item_key": str, "ref": str, "sha256": str, "size": int},
        pk=("source_id", "item_key", "ref"),
    )
    db.table("library").create(
        {
            "path": str,
            "original_sha256": str,
            "sha256": str,
            "tier": str,
            "size": int,
            "mtime_ns": int,
        },
        pk="path",
    )
    db.table("library").create_index(["original_sha256"])
    db.table("deliveries").create(
        {
            "store_id": str,
            "path": str,
            "sha256": str,
            "size": int,
            "delivered_at": str,
            "confirmed_at": str,
            "freed_at": str,
        },
        pk=("store_id", "path"),
    )
    db.table("settled").create(
        {"original_sha256": str, "tier": str, "reason": str}, pk=("original_sha256", "tier")
    )
    db.table("listing_counts").create(
        {"store_id": str, "count": int, "observed_at": str}, pk="store_id"
    )
    db.table("runs").create(
        {
            "id": int,
            "command": str,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "summary": str,
        },
        pk="id",
    )
    db.table("journal").create(
        {
            "id": int,
            "run_id": int,
            "action_id": str,
            "kind": str,
            "status": str,
            "detail": str,
            "at": str,
        },
        pk="id",
    )
    db.table("journal").create_index(["run_id"])
    db.table("tombstones").create(
        {
            "source_id": str,
            "item_key": str,
            "sha256s": str,
            "size": int,
            "removed_at": str,
            "run_id": int,
        },
        pk=("source_id", "item_key"),
    )


def _migrate_2_capture_time(db: sqlite_utils.Database) -> None:
    """Each library file remembers its item's capture time (UTC epoch
    seconds): its tier is decided from that fact, not from its folder name."""
    if "captured_at" not in db.table("library").columns_dict:
        db.execute("alter table library add column captured_at real")


def _migrate_phone_proof(db: sqlite_utils.Database) -> None:
    """Confirmations name the phone and folder that made them, and the exact
    version announced; each run's liveness proof is kept for ``status``."""
    have = {c.name for c in db.table("deliveries").columns}
    for column in ("identity", "evidence"):
        if column not in have:
            db.execute(f"alter table deliveries add column {column} text")
    db.execute(
        "create table if not exists liveness (store_id text primary key, at text, "
        "alive integer, reason text, round_trip_s real)"
    )


def _migrate_run_outcomes(db: sqlite_utils.Database) -> None:
    """Every plan and apply is a run, whatever its exit: its exit code and
    the one line that said why (columns added only if missing)."""
    columns = {c.name for c in db.table("runs").columns}
    for name in ("exit_code", "reason"):
        if name not in columns:
            db.table("runs").add_column(name, int if name == "exit_code" else str)


def _migrate_legacy_import(db: sqlite_utils.Database) -> None:
    """What ``import-legacy`` learned from the seed pipeline's media.db: its
    rows as it kept them, and the file this tool hashed for each (a record of
    the past, never a verified copy)."""
    db.execute(
        "create table if not exists legacy_media (legacy_key text primary key, "
        "filename text, icloud_id text, created_date text, local_path text, status text, "
        "synced_google integer, synced_nas integer, album_moved integer, "
        "deleted_icloud integer, initial_size integer, current_size integer, "
        "last_compressed text, error_count integer, last_error text, last_updated text, "
        "created_at text, adopted_path text, sha256 text, size integer, "
        "unmodified integer, imported_at text)"
    )
    db.execute("create index if not exists legacy_media_icloud on legacy_media (icloud_id)")


def _migrate_run_census(db: sqlite_utils.Database) -> None:
    """Each run keeps the census taken at its end (reconciler.census), for
    the history's plots; each journal row names the file its action was about,
    so ``status`` can say which source file failed."""
    if "census" not in {c.name for c in db.table("runs").columns}:
        db.execute("alter table runs add column census text")
    if "subject" not in {c.name for c in db.table("journal").columns}:
        db.execute("alter table journal add column subject text")


def _migrate_hash_cache_clustered(db: sqlite_utils.Database) -> None:
    """The hash cache becomes a WITHOUT ROWID table, its rows stored in path
    order: a no-op run reads a whole tree's rows as one range of the table
    (``hash_rows``) instead of one index lookup per file. Same columns, same
    rows; skipped if the table already is one (safe to run again)."""
    found = db.execute("select sql from sqlite_master where name = 'hash_cache'").fetchone()
    if found is None or "without rowid" in str(found[0]).lower():
        return
    cols = "path, size, mtime_ns, inode, sha256, dated, captured_at, hashed_at"
    db.execute("drop table if exists hash_cache_clustered")
    db.execute(
        "create table hash_cache_clustered (path text primary key, size integer, "
        "mtime_ns integer, inode integer, sha256 text, dated integer, captured_at real, "
        "hashed_at real) without rowid"
    )
    db.execute(f"insert into hash_cache_clustered ({cols}) select {cols} from hash_cache")
    db.execute("drop table hash_cache")
    db.execute("alter table hash_cache_clustered rename to hash_cache")


def _migrate_icloud_incremental(db: sqlite_utils.Database) -> None:
    """An iCloud source's last listing (one row per asset, in listing order)
    and, per zone, the sync token read before it: a run then reads only what
    changed since. Losing these costs one full listing, nothing more."""
    db.execute(
        "create table if not exists icloud_cursor (source_id text, zone text, "
        "account text, token text, full_at text, primary key (source_id, zone))"
    )
    db.execute(
        "create table if not exists icloud_listing (source_id text, asset_id text, "
        "master_id text, zone text, pos integer, item text, primary key (source_id, asset_id))"
    )
    db.execute(
        "create index if not exists icloud_listing_master on icloud_listing (source_id, master_id)"
    )


def _migrate_library_clustered(db: sqlite_utils.Database) -> None:
    """The library's rows, as the hash cache's (migration 7), are stored in
    path order (WITHOUT ROWID): observation merges them with the library's
    files in path order (``StateDB.lineage_in_order``), one range read
    instead of one index lookup per file. Same columns, rows and index;
    skipped if the table already is one (safe to run again)."""
    found = db.execute("select sql from sqlite_master where name = 'library'").fetchone()
    if found is None or "without rowid" in str(found[0]).lower():
        return
    cols = "path, original_sha256, sha256, tier, size, mtime_ns, captured_at"
    db.execute("drop table if exists library_clustered")
    db.execute(
        "create table library_clustered (path text primary key, original_sha256 text, "
        "sha256 text, tier text, size integer, mtime_ns integer, captured_at real) without rowid"
    )
    db.execute(f"insert into library_clustered ({cols}) select {cols} from library")
    db.execute("drop table library")  # its index and triggers with it
    db.execute("alter table library_clustered rename to library")
    db.execute(
        'create index if not exists "idx_library_original_sha256" on library (original_sha256)'
    )


def _migrate_source_fingerprint(db: sqlite_utils.Database) -> None:
    """Each downloaded remote file remembers the source's fingerprint of it
    (iCloud's checksum) beside its size: its SHA-256 counts only while the
    source still lists the file with both (an asset edited again has a new
    rendered edit under the same ref). Older rows have none: they compare
    by size alone."""
    if "fingerprint" not in db.table("source_files").columns_dict:
        db.execute("alter table source_files add column fingerprint text")


#: The tables the census counts from (reconciler.census); every row
#: written to one of them moves the change counter, so a census taken at
#: the same count (and configuration) is still the census of now.
CENSUS_TABLES = (
    "hash_cache",
    "library",
    "library_gone",
    "source_files",
    "tombstones",
    "deliveries",
    "journal",
)


def _migrate_change_counter(db: sqlite_utils.Database) -> None:
    """A counter of rows written to the census's tables (by triggers, so no
    write can forget it), and each run's census stored with the count and
    configuration it was taken at: a run that changed nothing reuses it."""
    db.execute(
        "create table if not exists change_counter (id integer primary key check (id = 0), "
        "n integer not null)"
    )
    db.execute("insert or ignore into change_counter (id, n) values (0, 0)")
    if "census_key" not in {c.name for c in db.table("runs").columns}:
        db.execute("alter table runs add column census_key text")


def _migrate_tree_listings(db: sqlite_utils.Database) -> None:
    """Each walked tree's last listing (``tree_listing``): the hash cache's
    rows under it as columns, stale once any of those rows is written."""
    db.execute(
        "create table if not exists tree_listings (tree text primary key, "
        "tree_end text not null, stale integer not null, walk blob not null, "
        "shas blob not null, captured blob not null, hashed_at blob not null, "
        "dated integer not null)"
    )


def _migrate_renditions(db: sqlite_utils.Database) -> None:
    """Every file the tool ever made by encoding, by its own SHA-256, with
    the original it was made from: the library's ``library`` rows say only
    what each file is now, and a copy made for an earlier tier (synced to a
    phone, then back) must still be known as the library's own content.
    Rows are never deleted. Filled from the library rows already kept, so
    an older database knows the renditions its library holds now."""
    db.execute(
        "create table if not exists renditions (sha256 text primary key, "
        "original_sha256 text not null, tier text not null, made_at text) without rowid"
    )
    db.execute(
        "insert or ignore into renditions (sha256, original_sha256, tier, made_at) "
        "select sha256, original_sha256, tier, null from library "
        "where sha256 != original_sha256"
    )


def _migrate_retry_wrong_verdicts(db: sqlite_utils.Database) -> None:
    """Forget the encodes earlier versions settled as bad input for a fault
    of their own: a clip "truncated" by the length of a subtitle track or a
    late-starting timeline (the whole file's duration was compared), and a
    clip fetched under a temporary name without its extension. Each is
    tried once more; a clip really cut short is settled again."""
    db.execute(
        "delete from settled where reason like '%truncated or corrupt: decoded %' "
        "or reason like '%unsupported video extension%'"
    )


def _migrate_library_roles(db: sqlite_utils.Database) -> None:
    """Each library file remembers what it is in its item (its rendered
    edit, RAW alternative, Live Photo video, its XMP sidecar...): once the
    item has left its source nothing else says so, and only an original is
    ever encoded. Rows start with none (""); observation then reads each
    library sidecar of this tool once (its ``reconcile:Files`` names every
    file's role and SHA-256) and fills them in: the backfill for a library
    imported before, and for a lost state DB alike."""
    if "role" not in db.table("library").columns_dict:
        db.execute("alter table library add column role text not null default ''")


def _migrate_hash_ctime(db: sqlite_utils.Database) -> None:
    """Each cached hash keeps its file's ctime, which no program sets: a
    file rewritten in place with its size, mtime and inode kept (``exiftool
    -P``) is read again. Rows from before stay without one (not read again
    for it; they gain one when next read)."""
    if "ctime_ns" not in db["hash_cache"].columns_dict:
        db.execute("alter table hash_cache add column ctime_ns integer")


def _migrate_library_gone(db: sqlite_utils.Database) -> None:
    """The rows of library files gone whose content the library holds
    nowhere else, set aside from ``library`` until each is put back from a
    target (the library no longer holds them: no library byte counts them), and
    still known for what they were (path, original, role); the census
    counts them as their items' files until then."""
    db.execute(
        "create table if not exists library_gone (path text primary key, "
        "original_sha256 text, sha256 text, tier text, size integer, mtime_ns integer, "
        "captured_at real, role text not null default '') without rowid"
    )


def _migrate_converged_plan(db: sqlite_utils.Database) -> None:
    """A counter of rows written to the tables a plan reads that the
    census's counter does not count (by triggers: ``install_triggers``),
    and the last converged plan, kept with the count
    and the walks it was made from (``reconciler.kept_plan``)."""
    db.execute(
        "create table if not exists world_counter (id integer primary key check (id = 0), "
        "n integer not null)"
    )
    db.execute("insert or ignore into world_counter (id, n) values (0, 0)")
    db.execute(
        "create table if not exists converged_plan (id integer primary key check (id = 0), "
        "key blob not null, counter integer not null, walks blob not null, "
        "valid_from real not null, valid_until real not null, plan text not null)"
    )


#: Tables no plan reads (the run history and the counters), that a plan
#: writes (the kept converged plan), or that are derived exactly from
#: another (tree listings, of ``hash_cache``): their writes do not move the
#: world count. Every other table does, including any added later: the
#: census's tables through the census's counter, the rest through the
#: world counter (``StateDB.world_count`` adds the two).
NOT_WORLD = frozenset(
    {"runs", "change_counter", "world_counter", "converged_plan", "tree_listings"}
)


#: A hash-cache row written or deleted under a tree makes the tree's listing
#: stale (``tree_listing``): it is read only while exact.
_LISTING_STALE = (
    "update tree_listings set stale = 1 where stale = 0 "
    "and {row}.path >= tree and {row}.path < tree_end"
)


def install_triggers(conn: sqlite3.Connection) -> None:
    """Put back any trigger missing (a migration that rebuilt a table drops
    its triggers with it): one look at the schema per open. The census's
    change counter, the world counter, and the staleness of tree listings."""
    names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'trigger'")}
    for op, rows in (("insert", ("new",)), ("update", ("old", "new")), ("delete", ("old",))):
        name = f"listing_stale_{op}"
        if name not in names:
            body = " ".join(_LISTING_STALE.format(row=r) + ";" for r in rows)
            conn.execute(
                f"create trigger if not exists {name} after {op} on hash_cache begin {body} end"
            )
    _count_changes(conn, names)
    _count_world(conn, names)


def _count_world(conn: sqlite3.Connection, names: set[str]) -> None:
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    if "world_counter" not in tables:
        return  # before the migration that makes it
    # The census's tables move the census's counter already: a second
    # trigger on them would cost their writes a third more (400k rows of a
    # first plan: 2 s), so the world count is the sum of the two counters.
    for table in sorted(tables - NOT_WORLD - set(CENSUS_TABLES)):
        if table.startswith("sqlite_"):
            continue  # SQLite's own (sequences, statistics): no trigger can be put there
        for op in ("insert", "update", "delete"):
            name = f"world_{table}_{op}"
            if name not in names:
                conn.execute(
                    f'create trigger if not exists "{name}" after {op} on "{table}" '
                    "begin update world_counter set n = n + 1 where id = 0; end"
                )


def _count_changes(conn: sqlite3.Connection, names: set[str]) -> None:
    for table in CENSUS_TABLES:
        for op in ("insert", "update", "delete"):
            name = f"counted_{table}_{op}"
            if name not in names:
                conn.execute(
                    f"create trigger if not exists {name} after {op} on {table} "
                    "begin update change_counter set n = n + 1 where id = 0; end"
                )


MIGRATIONS = {
    1: _migrate_1,
    2: _migrate_2_capture_time,
    3: _migrate_phone_proof,
    4: _migrate_run_outcomes,
    5: _migrate_legacy_import,
    6: _migrate_run_census,
    7: _migrate_hash_cache_clustered,
    8: _migrate_icloud_incremental,
    9: _migrate_change_counter,
    10: _migrate_tree_listings,
    11: _migrate_library_clustered,
    12: _migrate_source_fingerprint,
    13: _migrate_renditions,
    14: _migrate_retry_wrong_verdicts,
    15: _migrate_library_roles,
    16: _migrate_hash_ctime,
    17: _migrate_library_gone,
    18: _migrate_converged_plan,
}
