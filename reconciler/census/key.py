"""What a census is a function of (``census_key``): two runs with the same key
have the same census, so the second reuses the first's."""

from __future__ import annotations

import functools
import hashlib
import os

from reconciler import independence
from reconciler.census.sources import listed_after
from reconciler.census.targets import device_of
from reconciler.config import DesiredState, ICloudSource
from reconciler.media import kinds
from reconciler.schema import SCHEMA_VERSION
from reconciler.state import StateDB


def _counting_modules() -> list[str]:
    """The modules whose rules the census counts by (this package's, the
    independence rules, the kinds of media): a change to any of them (a
    release, a checkout) makes a stored census stale."""
    here = os.path.dirname(__file__)
    try:
        mine = sorted(os.path.join(here, n) for n in os.listdir(here) if n.endswith(".py"))
    except OSError:  # installed without its source: the version says it
        mine = [os.path.join(here, "__init__.py")]  # read fails below: the version
    return [*mine, independence.__file__ or "", kinds.__file__ or ""]


@functools.cache
def _counting_code() -> str:
    """The counting rules' own text, hashed (once per process)."""
    h = hashlib.sha256()
    for path in _counting_modules():
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:  # installed without its source: the version says it
            h.update(_version().encode())
    return h.hexdigest()[:16]


def _version() -> str:
    # Loaded here, seldom: importlib.metadata (with email's parser) is a
    # tenth of what a plan imports, and only a copy without its source asks.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconcile")
    except PackageNotFoundError:
        return "unknown"


def census_key(db: StateDB, desired: DesiredState) -> str:
    """What a census is a function of, as one string: the rows written to
    the tables it counts (the state DB's change counter), each iCloud
    source's remembered listing (``_listings``), the configuration, the disk each store is on, the
    schema and the counting rules' code. Two runs with the same key have the
    same census, so the second reuses the first's (a no-op plan of 100k
    items otherwise counts them all again)."""
    paths = [desired.library.path, *(t.path for t in desired.targets.values())]
    parts = [
        str(SCHEMA_VERSION),
        str(db.changes()),
        _listings(db, desired),
        hashlib.sha256(repr(desired).encode()).hexdigest(),
        ",".join(str(device_of(p)) for p in paths),
        _counting_code(),
    ]
    return ":".join(parts)


def _listings(db: StateDB, desired: DesiredState) -> str:
    """A stamp of each iCloud source's remembered listing, which the census
    reads (``_unfetched``) but no trigger counts (``icloud_listing`` is not
    one of ``schema.CENSUS_TABLES``). Every write of the listing rewrites its
    cursor in the same transaction: the sync token of each zone, read before
    the listing (a new one whenever the library changed), and when the last
    full listing was made. With the listing's row count and its highest row
    id (a row replaced or added takes a new one), a listing written since
    the census was taken gives another stamp; read from the cursor and an
    index, a few milliseconds at 50k assets. (Were the table counted by the
    change counter, this would say nothing more.)"""
    h = hashlib.sha256()
    conn = db.conn
    for sid, src in desired.sources.items():
        if not isinstance(src, ICloudSource):
            continue
        sql = "select zone, token, full_at from icloud_cursor where source_id = ? order by zone"
        cursor = conn.execute(sql, (sid,)).fetchall()
        sql = "select count(*), max(rowid) from icloud_listing where source_id = ?"
        rows = conn.execute(sql, (sid,)).fetchone()
        # Its removals a listing since could speak of: the tombstones are
        # counted, the runs that make more of them so are not.
        (since,) = listed_after(db, sid, "count(*)")
        h.update(repr((sid, cursor, tuple(rows), since)).encode())
    return h.hexdigest()[:16]
