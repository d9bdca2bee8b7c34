"""What each target holds, by the copies the tool recorded, and the disk each
is on (two targets on one disk count once; an unplugged one cannot be told)."""

from __future__ import annotations

from pathlib import Path

from providers.filesystem import read_marker
from providers.physical_disks import disk_at
from reconciler.census.items import under
from reconciler.config import DesiredState, FilesystemTarget, SyncthingTarget, same_disk_ok
from reconciler.independence import confirmed_by
from reconciler.links import one_file_twice
from reconciler.state import StateDB


def held_by_targets(
    db: StateDB, desired: DesiredState, wanted: set[str]
) -> tuple[
    dict[str, set[str]],
    dict[str, tuple[int, int]],
    set[str],
    dict[str, str],
    dict[str, int | None],
    dict[str, int],
]:
    """Per target: the originals it holds (only targets whose copies count),
    its files and bytes, and what waits on a confirming device since when;
    and the size of each ``wanted`` original found on a target."""
    holdings: dict[str, set[str]] = {}
    figures: dict[str, tuple[int, int]] = {}
    waiting: set[str] = set()
    since: dict[str, str] = {}
    devices: dict[str, int | None] = {}  # or UNPLUGGED
    sizes: dict[str, int] = {}
    for tid, cfg in desired.targets.items():
        if isinstance(cfg, FilesystemTarget):
            rows = list(under(db, cfg.path.rstrip("/") + "/", "sha256, size"))
            holdings[tid] = {sha for sha, _ in rows}
            figures[tid] = (len(rows), sum(n or 0 for _, n in rows))
            if wanted:
                sizes.update((sha, n) for sha, n in rows if sha in wanted and n)
            # The disk it is on now, if it is: a bare mount point's device is
            # the disk below it (often the library's), not the target's.
            devices[tid] = device_of(cfg.path) if read_marker(Path(cfg.path)) == tid else UNPLUGGED
            continue
        assert isinstance(cfg, SyncthingTarget)
        conduit = cfg.role == "conduit"
        held, files, size = set(), 0, 0
        sql = (
            "select sha256, size, delivered_at, confirmed_at, freed_at, identity "
            "from deliveries where store_id = ?"
        )
        counts = not conduit or cfg.count_as_copy
        # A confirmation made by another phone or folder (a reset phone, a
        # new folder id) is nothing on this one, as observe and the gate
        # count it: a freed copy of it is gone from here and no copy there;
        # a staging copy still here waits for the phone now configured.
        identity = confirmed_by(cfg.device_id, cfg.folder_id)
        for sha, n, delivered, confirmed, freed, made_by in db.conn.execute(sql, (tid,)):
            if confirmed and made_by != identity:
                if freed:
                    continue
                confirmed = None
            if not confirmed:
                if counts:  # a conduit's confirmation is no copy: nothing waits on it
                    waiting.add(sha)
                if delivered and (tid not in since or delivered < since[tid]):
                    since[tid] = delivered
            elif not (conduit and freed):  # a conduit's released file left the phone
                held.add(sha)
                if sha in wanted and n:
                    sizes[sha] = n
                files, size = files + 1, size + (n or 0)
        figures[tid] = (files, size)
        if counts:
            holdings[tid] = held
            devices[tid] = None  # on the phone: grouped by the phone (``phones_of``)
    # Two targets' copies that are one file (hard-linked) are one copy, as the
    # gate counts them: the later target holds it only by a file of its own.
    mounted = {
        tid: cfg.path
        for tid, cfg in desired.targets.items()
        if isinstance(cfg, FilesystemTarget) and devices.get(tid) != UNPLUGGED
    }
    for tid, linked in one_file_twice(db, mounted, same_disk_ok(desired)).items():
        holdings[tid].difference_update(linked)
    return holdings, figures, waiting, since, devices, sizes


#: The device of a filesystem target not mounted now (no marker of it).
UNPLUGGED = -1


def device_of(path: str) -> int | None:
    """The filesystem ``path`` is on (one for every subvolume of a btrfs, as
    the gate counts it); None when not there: not mounted now, its recorded
    copies are still its own."""
    return disk_at(path)
