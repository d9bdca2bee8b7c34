"""Migration from the seed pipeline: ``reconcile import-legacy media.db``.

The seed kept one row per iCloud photo in a SQLite ``media`` table: where it
downloaded the file (``local_path``), whether it copied it to the NAS, whether
it deleted it from iCloud, and how it compressed it. A person who ran it keeps
that history here:

* each file it names that is still on a store this tool observes (the
  library, a filesystem target, a folder source), and that the store's own
  walk lists (not in a dot-folder such as a disk's trash, through a link,
  or in another store inside it), is hashed now, into the hash cache, so
  the next observation matches it by content instead of reading every file
  again, and nothing is written or copied a second time;
* the seed's word never tells what an iCloud asset holds: a file of the
  asset's name and size may be another photo (a reused ``IMG_`` number, a
  file rewritten in place). Each asset is read from iCloud once, as any
  download; where its bytes are already in the library (the seed's
  download) nothing is written, and the copies on targets are found by
  content;
* every row is kept in ``legacy_media`` as the seed recorded it, with the
  file this tool hashed, so items the seed deleted from iCloud stay known.

Nothing imported is a verified copy: a copy counts when observation finds the
bytes on a target, and the removal gate reads them again before any removal.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from providers.filesystem import scan_tree
from reconciler import media
from reconciler.config import DesiredState, FilesystemTarget, FolderSource
from reconciler.errors import ReconcileError
from reconciler.hashing import sha256_file
from reconciler.state import CachedHash, StateDB
from reconciler.state.sources import seed_flag

#: The seed's ``media`` columns, as it created them.
COLUMNS = (
    "filename",
    "icloud_id",
    "created_date",
    "local_path",
    "status",
    "synced_google",
    "synced_nas",
    "album_moved",
    "deleted_icloud",
    "initial_size",
    "current_size",
    "last_compressed",
    "error_count",
    "last_error",
    "last_updated",
    "created_at",
)


class LegacyError(ReconcileError):
    """The seed's database cannot be read as the seed wrote it."""


@attrs.frozen(kw_only=True)
class ImportReport:
    rows: int
    #: Rows whose file was found on a store and hashed (adopted).
    adopted: int
    #: Files hashed for them (the seed's download and its NAS copies), each
    #: once however many rows name it.
    files: int
    #: Of ``files``, those the hash cache already knew as they are now (an
    #: import run again after a stop): not read again.
    known: int
    #: Adopted files still the size the seed downloaded (a record: no proof of bytes).
    originals: int
    deleted_from_icloud: int
    #: Rows the seed downloaded or off-loaded whose file is on no store
    #: this tool observes.
    missing: tuple[str, ...]
    #: Files on a store that could not be read (path, why): left out, the
    #: rest imported; the next import reads them again.
    unreadable: tuple[tuple[str, str], ...]


#: What SQLite keeps beside a database while a program has it open (WAL's
#: log and shared memory) or after one crashed mid-write (a hot journal).
_BESIDE = ("-wal", "-shm", "-journal")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The seed's rows, read-only: its database is never written, and no
    file is made beside it. Each row has its ``legacy_key``."""
    if not path.is_file():
        what = "not a file (a folder, a pipe or a device)" if path.exists() else "no such file"
        raise LegacyError(f"{path}: {what}; give the seed pipeline's media.db")
    try:
        before = _quiet(path)
        rows = _read_untouched(path, before) if before is not None else None
        return rows if rows is not None else _read(path, immutable=False)
    except sqlite3.DatabaseError as e:
        raise LegacyError(f"{path}: cannot read it as SQLite ({e})") from e
    except OSError as e:
        raise LegacyError(f"{path}: cannot read it: {e.strerror or e}") from e


def _quiet(path: Path) -> tuple[int, ...] | None:
    """The file's size, times and inode when nothing is beside it (no program
    has it open in WAL mode, none crashed mid-write), else None."""
    if any(os.path.lexists(f"{path}{end}") for end in _BESIDE):
        return None
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _read_untouched(path: Path, before: tuple[int, ...]) -> list[dict[str, Any]] | None:
    """The rows read with ``immutable=1``, or None when that read cannot be
    trusted. A read-only open of a WAL database makes its -wal and -shm
    files beside it and cannot remove them (on the seed's side, maybe a
    disk of someone else's); an immutable one makes nothing, but takes no
    lock and ignores a write-ahead log. So it is trusted only when nothing
    was beside the file before and nothing is after, and the file is the
    same (size, times, inode): no writer began, wrote or checkpointed
    meanwhile. Otherwise the locking read-only open (``_read``) reads it as
    any reader, with the files the writer itself keeps there."""
    try:
        rows = _read(path, immutable=True)
    except (sqlite3.DatabaseError, LegacyError):
        if _quiet(path) == before:
            raise  # the file as it is: its error stands
        return None
    return rows if _quiet(path) == before else None


def _read(path: Path, *, immutable: bool) -> list[dict[str, Any]]:
    # A file: URI, percent-encoded: a raw '?' or '#' in the path ends the
    # path there (another file opened, read-write: ``mode=ro`` cut off) and
    # '%41' is read as 'A' (another database).
    uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True)
    try:
        # Column names as SQLite takes them: in any case ("FileName").
        have = {str(r[1]).lower(): str(r[1]) for r in conn.execute("pragma table_info(media)")}
        if not have:
            raise LegacyError(f"{path}: no table 'media'; is this the seed pipeline's media.db?")
        lacking = [c for c in ("filename", "local_path") if c not in have]
        if lacking:
            raise LegacyError(f"{path}: table media lacks {', '.join(lacking)}")
        names = [c for c in COLUMNS if c in have]
        cols = ", ".join(f"{_quoted(have[c])} as {c}" for c in names)
        try:  # the seed's row id names each row, as its own ``id`` does
            found = conn.execute(f"select rowid, {cols} from media order by rowid").fetchall()
            ids = [str(r[0]) for r in found]
        except sqlite3.OperationalError:  # no rowid (a view, WITHOUT ROWID)
            found = conn.execute(f"select null, {cols} from media").fetchall()
            ids = []
        if len(set(ids)) != len(found):  # a column named "rowid" hides it
            ids = [f"#{n}" for n in range(1, len(found) + 1)]
        return [
            dict(zip(names, r[1:], strict=True)) | {"legacy_key": f"row:{i}"}
            for i, r in zip(ids, found, strict=True)
        ]
    finally:
        conn.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def import_legacy(
    desired: DesiredState,
    db: StateDB,
    path: Path,
    *,
    fences: Mapping[tuple[int, int], str] | None = None,
) -> ImportReport:
    """``fences``: the configured places' folders no walk enters
    (``places.fences``), as observation walks with them."""
    rows = read_rows(path)
    roots = _roots(desired)
    listed = _listed(roots, fences)
    by_name = _by_name(listed)
    hashes = _Hashes(db)
    records: list[dict[str, Any]] = []
    missing: list[str] = []
    originals = adopted = 0
    for row in rows:
        found = _locate(row, roots, listed, by_name)
        record: dict[str, Any] = {c: row.get(c) for c in COLUMNS} | {
            "legacy_key": row["legacy_key"],
            "adopted_path": None,
            "sha256": None,
            "size": None,
            "unmodified": 0,
        }
        if not found:
            if row.get("local_path") or seed_flag(row.get("deleted_icloud")):
                missing.append(str(row.get("local_path") or row.get("filename")))
            records.append(record)
            continue
        for file in found:  # the seed's download first, then its copies
            read = hashes.read(file)
            if read is None:
                continue  # unreadable: named in the report, read by the next import
            size, sha = read
            unmodified = _int(row.get("initial_size")) == size
            if record["sha256"] is None or (unmodified and not record["unmodified"]):
                record |= {
                    "adopted_path": file,
                    "sha256": sha,
                    "size": size,
                    "unmodified": int(unmodified),
                }
        if record["sha256"] is not None:
            originals += int(record["unmodified"])
            adopted += 1
        records.append(record)
    hashes.flush()
    db.record_legacy(records)
    return ImportReport(
        rows=len(rows),
        adopted=adopted,
        files=sum(r is not None for r in hashes.done.values()),
        known=hashes.known,
        originals=originals,
        deleted_from_icloud=sum(seed_flag(r.get("deleted_icloud")) for r in rows),
        missing=tuple(missing),
        unreadable=tuple(hashes.failed.items()),
    )


#: Hashes are written to the cache at least this often (files, bytes read):
#: an import of terabytes stopped half-way (Ctrl-C, a crash, a power cut)
#: reads again only what its last batch had not written.
BATCH_FILES = 200
BATCH_BYTES = 2 << 30


@attrs.define
class _Hashes:
    """Each file's (size, SHA-256), read once per import however many rows
    name it; taken from the hash cache when its row still holds for the file
    as it is now (as observation takes it: an import run again after a stop
    reads only what it had not); a file that cannot be read is noted with
    why, and skipped."""

    db: StateDB
    now: float = attrs.Factory(time.time)
    done: dict[str, tuple[int, str] | None] = attrs.Factory(dict)
    failed: dict[str, str] = attrs.Factory(dict)
    known: int = 0
    pending: list[tuple[str, CachedHash]] = attrs.Factory(list)
    pending_bytes: int = 0

    def read(self, file: str) -> tuple[int, str] | None:
        if file not in self.done:
            self.done[file] = self._read(file)
        return self.done[file]

    def _read(self, file: str) -> tuple[int, str] | None:
        try:
            st = os.stat(file)
            cached = self.db.cached_hashes([file]).get(file)
            if cached is not None and _still(cached, st, self.now):
                self.known += 1
                return st.st_size, cached.sha256
            sha = sha256_file(file)
        except OSError as e:  # a permission, a bad sector: this file only
            self.failed[file] = e.strerror or str(e)
            return None
        self.pending.append((file, _cached(file, st, sha, self.now)))
        self.pending_bytes += st.st_size
        if len(self.pending) >= BATCH_FILES or self.pending_bytes >= BATCH_BYTES:
            self.flush()
        return st.st_size, sha

    def flush(self) -> None:
        self.db.store_hashes(self.pending)
        self.pending, self.pending_bytes = [], 0


def _still(cached: CachedHash, st: os.stat_result, now: float) -> bool:
    """Whether a hash cache row still holds for the file, by observation's
    own test: size, mtime and the ctime no program sets (the inode only for
    a row kept without a ctime: some disks number files anew at each mount).
    A row read at no time up to now (in the future: the clock was ahead; or
    below zero: a reader found the file wrong) is read again, as
    observation reads it again."""
    same = cached.ctime_ns == st.st_ctime_ns if cached.ctime_ns is not None else None
    return (
        0 <= cached.hashed_at <= now
        and cached.size == st.st_size
        and cached.mtime_ns == st.st_mtime_ns
        and (same if same is not None else cached.inode == st.st_ino)
    )


def _roots(desired: DesiredState) -> dict[str, Path]:
    """The folders observation walks, by store: a file elsewhere would be
    hashed for nothing."""
    roots = {"library": desired.library_path}
    roots |= {
        k: Path(t.path) for k, t in desired.targets.items() if isinstance(t, FilesystemTarget)
    }
    roots |= {k: Path(s.path) for k, s in desired.sources.items() if isinstance(s, FolderSource)}
    return {k: r for k, r in roots.items() if r.is_dir()}


def _listed(
    roots: Mapping[str, Path], fences: Mapping[tuple[int, int], str] | None
) -> dict[str, int]:
    """Every file the stores' own walks list (path as the walk names it ->
    size): only those are ever a copy or an item. A file the walk passes
    over (in a dot-folder such as a disk's trash, through a symbolic link,
    inside another store, the marker) is never looked at again, so hashed
    now it would be taken for a copy that no observation can check. The
    walk is observation's own (``scan_tree``), so its rules are one."""
    listed: dict[str, int] = {}
    for key, root in roots.items():
        try:
            listed |= {e.path: e.size for e in scan_tree(root, fences=fences)}
        except OSError as e:
            # A walk that stops lists nothing: plan finds the store
            # unavailable too. Refused before anything is written.
            raise LegacyError(
                f"{key} ({root}) cannot be listed: {e}; fix that, then run import-legacy again"
            ) from e
    return listed


def _by_name(listed: Mapping[str, int]) -> dict[str, list[tuple[str, int]]]:
    """File name -> (path as observation names it, size), on every store:
    the seed's NAS copies are found by name, wherever it put them."""
    out: dict[str, list[tuple[str, int]]] = {}
    for path, size in listed.items():
        out.setdefault(os.path.basename(path), []).append((path, size))
    return out


def _locate(
    row: dict[str, Any],
    roots: Mapping[str, Path],
    listed: Mapping[str, int],
    by_name: dict[str, list[tuple[str, int]]],
) -> list[str]:
    """The row's files on the stores: its own local_path when a store's walk
    lists it, and every file of its name and of a size the seed recorded."""
    found: list[str] = []
    local = str(row.get("local_path") or "")
    if local and os.path.isfile(local):
        named = _under(Path(local), roots.values())
        if named is not None and named in listed:
            found.append(named)
    sizes = {_int(row.get("current_size")), _int(row.get("initial_size"))} - {None}
    for path, size in by_name.get(str(row.get("filename") or ""), []):
        if size in sizes and path not in found:
            found.append(path)
    return found


def _under(path: Path, roots: Iterable[Path]) -> str | None:
    """The path as a walk of its store would spell it (the hash cache's
    key), if it lies in one; whether the walk lists it is ``_listed``'s."""
    real = path.resolve()
    for root in roots:
        try:
            rel = real.relative_to(root.resolve())
        except ValueError:
            continue
        return os.path.join(str(root), *rel.parts)
    return None


def _cached(path: str, st: os.stat_result, sha: str, now: float) -> CachedHash:
    when = media.capture_timestamp(Path(path)) if media.is_media(path) else None
    return CachedHash(
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        sha256=sha,
        dated=True,
        captured_at=when,
        hashed_at=now,
        ctime_ns=st.st_ctime_ns,
    )


def _int(value: object) -> int | None:
    """A size from the seed's row, or None for anything that is not a whole
    number: text that is no integer, a REAL with a fraction, NaN or Inf,
    a blob. Foreign data: never an exception."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # False for NaN, Inf
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:  # also text of more digits than int() reads
            return None
    return None
