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
    #: Files hashed for them (the seed's download and its NAS copies).
    files: int
    #: Adopted files still the size the seed downloaded (a record: no proof of bytes).
    originals: int
    deleted_from_icloud: int
    #: Rows the seed downloaded or off-loaded whose file is on no store
    #: this tool observes.
    missing: tuple[str, ...]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The seed's rows, read-only (its database is never written)."""
    if not path.is_file():
        what = "not a file (a folder, a pipe or a device)" if path.exists() else "no such file"
        raise LegacyError(f"{path}: {what}; give the seed pipeline's media.db")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            have = {r[1] for r in conn.execute("pragma table_info(media)")}
            if not have:
                raise LegacyError(
                    f"{path}: no table 'media'; is this the seed pipeline's media.db?"
                )
            lacking = [c for c in ("filename", "local_path") if c not in have]
            if lacking:
                raise LegacyError(f"{path}: table media lacks {', '.join(lacking)}")
            cols = ", ".join(c for c in COLUMNS if c in have)
            return [dict(r) for r in conn.execute(f"select {cols} from media")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise LegacyError(f"{path}: cannot read it as SQLite ({e})") from e


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
    cache: list[tuple[str, CachedHash]] = []
    records: list[dict[str, Any]] = []
    missing: list[str] = []
    originals = adopted = 0
    now = time.time()
    for row in rows:
        found = _locate(row, roots, listed, by_name)
        record: dict[str, Any] = {c: row.get(c) for c in COLUMNS} | {
            "legacy_key": _key(row),
            "adopted_path": None,
            "sha256": None,
            "size": None,
            "unmodified": 0,
        }
        if not found:
            if row.get("local_path") or _truthy(row.get("deleted_icloud")):
                missing.append(str(row.get("local_path") or row.get("filename")))
            records.append(record)
            continue
        for file in found:  # the seed's download first, then its copies
            st = os.stat(file)
            sha = sha256_file(file)
            cache.append((file, _cached(file, st, sha, now)))
            unmodified = _int(row.get("initial_size")) == st.st_size
            if record["sha256"] is None or (unmodified and not record["unmodified"]):
                record |= {
                    "adopted_path": file,
                    "sha256": sha,
                    "size": st.st_size,
                    "unmodified": int(unmodified),
                }
        originals += int(record["unmodified"])
        adopted += 1
        records.append(record)
    db.store_hashes(cache)
    db.record_legacy(records)
    return ImportReport(
        rows=len(rows),
        adopted=adopted,
        files=len(cache),
        originals=originals,
        deleted_from_icloud=sum(_truthy(r.get("deleted_icloud")) for r in rows),
        missing=tuple(missing),
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


def _key(row: dict[str, Any]) -> str:
    icloud = str(row.get("icloud_id") or "")
    return f"icloud:{icloud}" if icloud else f"file:{row.get('local_path') or row.get('filename')}"


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes"}
