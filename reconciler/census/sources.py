"""What the sources hold, as the census counts it: an iCloud source's last
listing (downloaded or not), the items taken back since their removal, the
files no download stands for yet, and the oldest item not yet handled."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

from reconciler.census.counts import utc
from reconciler.census.items import Item
from reconciler.config import ICloudSource
from reconciler.state import StateDB


def icloud_items(
    db: StateDB,
    sid: str,
    src: ICloudSource,
    tombstones: Mapping[tuple[str, str], frozenset[str]],
    removed: set[str],
    by_sha: Mapping[str, str],
    add: Callable[[str, str, str, float | None, bool], Item],
) -> tuple[int, set[str]]:
    """Count an iCloud source's items with ``add`` (item key, name, content,
    capture time, in the library): each file downloaded, by its SHA-256, and
    each file its last listing holds that no download stands for
    (``_unfetched``). Returns the bytes of them left in iCloud, and which of
    the ``removed`` item keys (their tombstones older than the listing:
    ``listed_after``) the listing holds again: taken back from Recently
    Deleted, they are in iCloud, every byte, whatever the tool did before."""
    sql = "select item_key, ref, sha256, size, fingerprint from source_files where source_id = ?"
    rows = db.conn.execute(sql, (sid,)).fetchall()
    fetched = {(key, ref): (n, fp or "") for key, ref, _, n, fp in rows}
    unfetched, again = _unfetched(db, sid, src, fetched, removed)
    superseded = {(u.key, u.ref) for u in unfetched}
    left = 0
    for key, ref, sha, size, _ in rows:
        if key not in again and sha in tombstones.get((sid, key), ()):
            continue  # removed; what its tombstone does not name is live again
        if (key, ref) not in superseded:  # else its version listed now counts, below
            left += size or 0
        if sha not in by_sha:
            add(f"{sid}:{key}", f"{sid}:{key}", sha, None, False)
    for u in unfetched:
        left += u.size
        # A file no download stands for is held by no store, and part of its
        # item is in the source alone: the item is archived nowhere and
        # counts as in a source only (whatever of it the library holds)
        # until that file is fetched. Never "every item is archived" then.
        item = add(
            f"{sid}:{u.key}", f"{sid}:{u.name}", f"unfetched:{u.key}:{u.ref}", u.captured_at, False
        )
        item.in_library = False
    return left, again


def listed_after(db: StateDB, sid: str, what: str = "item_key") -> list[Any]:
    """The item keys (or ``what`` else) of the source's tombstones a listing
    made since could speak of: one by a run that read every source (exit 0
    or 2) after the removal's. The listing the apply that removed an item
    had read still holds it, as does one a later run could not make: no
    sign it came back. (Read from ``runs``, which no trigger counts:
    ``_listings`` puts their number in the census key.)"""
    sql = (
        f"select {what} from tombstones where source_id = ? and coalesce(run_id, 0) < "
        "(select max(id) from runs where command in ('plan', 'apply') and exit_code in (0, 2))"
    )
    return [row[0] for row in db.conn.execute(sql, (sid,))]


class _Unfetched(NamedTuple):
    """A file of an item the iCloud source listed that no download stands for."""

    key: str
    ref: str
    name: str
    size: int
    captured_at: float | None


#: Roles whose bytes an edit made again in Photos may change at the same
#: length: a download recorded before fingerprints were kept cannot stand
#: for them.
_CHANGEABLE = frozenset({"edited", "edit_sidecar"})


def _unfetched(
    db: StateDB,
    sid: str,
    src: ICloudSource,
    fetched: Mapping[tuple[str, str], tuple[int | None, str]],
    removed: set[str],
) -> tuple[list[_Unfetched], set[str]]:
    """The files of the items the source listed last (its remembered
    listing: the last observation of it) that no download stands for:
    never downloaded (a download that fails on every run, an item a plan
    listed and no apply fetched yet), or listed now as another version than
    the one downloaded (an edit made again). ``fetched``: item key, ref ->
    the size and fingerprint each was downloaded with. Without these, such
    an item is in no state at all and the census calls everything archived.
    Items older than ``max_age_days`` are not the tool's to handle (the
    planner passes them over): not counted. Also returns which keys of
    ``removed`` the listing holds."""
    cutoff = _oldest_handled(db, sid, src.max_age_days)
    # The rows as providers.icloud.listing.encode writes them: [key, version,
    # captured_at, [[name, size, ref, role, fingerprint], ...], ...]. SQLite
    # picks out the files (parsing a row once for all three; decoding whole
    # rows in Python would take twice as long as the rest of a census), in a
    # scan of the table ("+": not by the index, one lookup per row).
    sql = (
        "select item ->> 0, item ->> 2, item -> 3 from icloud_listing "
        "where +source_id = ? and json_valid(item)"
    )
    out: list[_Unfetched] = []
    again: set[str] = set()
    get = fetched.get
    for key, captured, files in db.conn.execute(sql, (sid,)):
        if key in removed:
            again.add(key)
        try:
            missing = [
                (name, size, ref)
                for name, size, ref, role, fp in json.loads(files)
                if not _stands_for(get((key, ref)), size, fp, role)
            ]
            if not missing:
                continue  # most rows: read no further
            when = utc(captured).timestamp() if captured else None
        except (ValueError, TypeError):
            continue  # not a row this tool wrote: the next full listing rewrites it
        if cutoff is None or when is None or when >= cutoff:
            out.extend(_Unfetched(key, ref, name, size, when) for name, size, ref in missing)
    return out, again


def _stands_for(download: tuple[int | None, str] | None, size: int, fp: str, role: str) -> bool:
    """Whether a download (its size and fingerprint) is still the file listed
    now with ``size`` and ``fp``, as observation decides (``observe``:
    ``_still_known``; ``DownloadedFile.still``): a row without a fingerprint
    compares by size alone, and cannot vouch for an edit (``_CHANGEABLE``)."""
    if download is None or download[0] != size:
        return False
    return download[1] == fp if download[1] else role not in _CHANGEABLE


def _oldest_handled(db: StateDB, sid: str, max_age_days: int) -> float | None:
    """The earliest capture time (epoch seconds) the source's
    ``max_age_days`` admitted at its last full listing (None: any), as the
    planner reckons it from its own run's time. The census knows no run's
    time but that one: an item that aged out since (a few days at most,
    ``full_listing_every_days``) is still counted until the next."""
    if not max_age_days:
        return None
    sql = "select min(full_at) from icloud_cursor where source_id = ?"
    full_at = db.conn.execute(sql, (sid,)).fetchone()[0]
    if full_at is None:
        return None
    return (utc(full_at) - timedelta(days=max_age_days)).timestamp()
