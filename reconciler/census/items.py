"""Which files make one item: an iCloud asset's files, a folder source's files
sharing a stem (a Live Photo pair), the item's sidecar in the library (and,
where no source speaks for an item, the files its sidecar lists), and the
library files gone that still stand for their item."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from reconciler import sidecar
from reconciler.hashing import read_file
from reconciler.layout import pairing_stem
from reconciler.media.kinds import HOUSEKEEPING_HEADS, is_archivable
from reconciler.model import DAMAGED_ROLE, ORIGINAL_ROLE, SIDECAR_ROLE
from reconciler.state import StateDB

SHA = re.compile(r"[0-9a-f]{64}")


_JUNK_ENDINGS = frozenset("bBiI\r")


class Item:
    """One item being counted (a plain class: a census makes 100k of these)."""

    __slots__ = ("captured_at", "in_library", "name", "shas", "sidecars")

    def __init__(self, name: str, in_library: bool) -> None:
        self.name = name
        self.in_library = in_library
        self.shas: list[str] = []
        #: Its XMP sidecar(s) in the library: part of the item, on the
        #: targets as its files are, but no original (never "removed").
        self.sidecars: tuple[str, ...] = ()
        self.captured_at: float | None = None

    def add(self, sha: str, captured_at: float | None) -> None:
        self.shas.append(sha)
        if captured_at is not None and (self.captured_at is None or captured_at < self.captured_at):
            self.captured_at = captured_at


def stem(path: str) -> str:
    """The key of the item a file is counted in: its path without its
    extension, as Live Photos pair (``layout.pairing_stem``: case aside),
    so that ``IMG_1.JPG`` and ``img_1.MOV`` are one item."""
    return pairing_stem(path)


def is_counted(rel: str, role: str = ORIGINAL_ROLE) -> bool:
    """A file of an item: any file of the person's, not junk, and not an
    item's own sidecar (written with its item and counted with it:
    ``our_sidecar``). Which .xmp is whose is told by its content, never
    by its name: ``role`` is the library's word on the file (as its row
    holds it), and another program's .xmp (darktable's, Lightroom's; the
    library read it as not the tool's, an original's role) is the person's
    file, as every file of a folder source is (the default)."""
    name = rel[rel.rfind("/") + 1 :]
    if name[-4:].lower() == ".xmp" and role in ("", SIDECAR_ROLE):
        return False
    # is_archivable refuses hidden files and a few junk names (Thumbs.db,
    # desktop.ini, Icon\r): asked only for those, 100k photos cost nothing.
    if (
        rel[:1] == "."
        or rel[:1] in HOUSEKEEPING_HEADS  # (the disk's own at the top: System Volume Information)
        or "/." in rel
        or "\\" in rel
        or name[-1:] in _JUNK_ENDINGS
    ):
        return is_archivable(rel)
    return bool(name)


def our_sidecar(rel: str, role: str) -> bool:
    """Is this library row an item's own XMP sidecar, as far as the database
    tells? One the library read as ours (role "sidecar"), or one not read
    yet (no role: written by the run that just ended, which reads none it
    writes): ours until read otherwise. Another program's .xmp (read, and
    given an original's role) is no sidecar of an item: a file of its own
    (``is_counted``), archived as any."""
    name = rel[rel.rfind("/") + 1 :]
    hidden = name[:1] == "." or rel[:1] == "." or "/." in rel
    return name[-4:].lower() == ".xmp" and role in ("", SIDECAR_ROLE) and not hidden


#: ``<original>.<item tag>.xmp``: the tag ``sidecar.name_for`` gives a
#: second item's sidecar beside the same original.
_TAGGED = re.compile(r"(.+)\.[0-9a-f]{8}", re.DOTALL)  # a name may hold a newline


def beside(path: str, item_at: Mapping[str, Item]) -> Item | None:
    """The item whose library file a sidecar at ``path`` sits beside:
    ``<original>.xmp`` or ``<original>.<item tag>.xmp``; None: no file of
    an item counted is there."""
    bare = path[:-4]
    item = item_at.get(bare)
    if item is None and (tagged := _TAGGED.fullmatch(bare)):
        item = item_at.get(tagged[1])
    return item


#: The library's word on a file that is an item's but not its original (a
#: rendered edit, its edit sidecar, a RAW, a Live Photo's video), learned
#: from the item's sidecar: any role but these.
_NOT_PART = (ORIGINAL_ROLE, SIDECAR_ROLE, DAMAGED_ROLE)


def items_by_sidecar(db: StateDB, library: str, item_of: MutableMapping[str, str]) -> None:
    """Add to ``item_of`` (original SHA-256 -> item key) the files of each
    item no source record speaks for (state DB lost, the library rsynced
    back), as its sidecar in the library lists them: a rendered edit is
    named unlike its still (``IMG_1-edited.JPG``), and only the sidecar
    ties it to its item. Keyed as the source keys the item, so a file of
    it a source lists again joins it.

    Read only while some library file has a role of an item's other file
    and no source record (nothing is read otherwise: a census of a state
    DB that kept its records reads no file), and only the sidecars in its
    folder: an item's files are laid out in one folder (by its capture
    date, ``layout.dated_path``) and its sidecar is beside its original.
    One that cannot be read (the library not mounted now) groups nothing:
    its files are counted by their stems, as before it was read."""
    sql = (
        "select path, original_sha256 from library where role not in (?, ?, ?, '') "
        "union all select path, original_sha256 from library_gone "
        "where role not in (?, ?, ?, '')"
    )
    folders = {
        path[: path.rfind("/") + 1]
        for path, original in db.conn.execute(sql, _NOT_PART * 2)
        if original not in item_of
    }
    for folder in sorted(folders):
        for path, role in under_library(db, folder):
            if "/" in path[len(folder) :] or not our_sidecar(path, role or ""):
                continue
            try:
                found = sidecar.parse(read_file(os.path.join(library, path), sidecar.MAX_BYTES))
            except OSError:
                continue
            if found is not None:
                key = f"{found.source_id}:{found.item_key}"
                for f in found.files:
                    if f.sha256:
                        item_of.setdefault(f.sha256, key)


def under_library(db: StateDB, folder: str) -> Iterator[tuple[str, str | None]]:
    """(path, role) of the library's rows under ``folder`` (ending in "/",
    "" for the root): a range of its primary key."""
    if not folder:
        return db.conn.execute("select path, role from library")
    sql = "select path, role from library where path >= ? and path < ?"
    return db.conn.execute(sql, (folder, folder[:-1] + "0"))


def gone_from_library(
    db: StateDB,
    item_of: Mapping[str, str],
    by_sha: Mapping[str, str],
    items: Mapping[str, Item],
    item_at: dict[str, Item],
    add: Callable[[str, str, str, float | None, bool], Item],
) -> list[tuple[str, str]]:
    """Count the items of library files gone (deleted, a disk replaced), set
    aside in ``library_gone`` until put back from a target: still the tool's
    items, counted by the copies they have, or an item off-loaded from its
    source that lost a copy too would drop out of every state and leave
    "every item is archived" said of the rest. Keyed as the library keyed
    them, so a Live Photo's still gone joins its video still there. One a
    source still holds is counted from there already (the planner places it
    from the source). One held nowhere, no target, no source, is counted as
    in the library only: its library row is the tool's only record of it,
    the library is where the planner puts it back, and like any item there
    on no target it shows no copy (never archived, never "removed").
    Each one's item is kept in ``item_at`` by its path; returns the items'
    own sidecars gone (path, SHA-256): still part of their items."""
    sidecars: list[tuple[str, str]] = []
    sql = "select path, original_sha256, captured_at, role from library_gone"
    for path, original, captured, role in db.conn.execute(sql):
        if not is_counted(path, role or ""):
            if our_sidecar(path, role or ""):
                sidecars.append((path, original))
        elif original in by_sha:
            item_at.setdefault(path, items[by_sha[original]])
        else:
            key = item_of.get(original) or "library:" + stem(path)
            item_at.setdefault(path, add(key, path, original, captured, True))
    return sidecars


def under(db: StateDB, root: str, columns: str) -> Iterator[tuple[Any, ...]]:
    """Hash cache rows of the files under ``root`` (ending in "/"): a range of
    its primary key, since "0" is the character after "/"."""
    sql = f"select {columns} from hash_cache where path >= ? and path < ?"
    return db.conn.execute(sql, (root, root[:-1] + "0"))
