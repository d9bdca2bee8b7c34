"""Which copies are independent backups: two copies on one disk are one.

A disk that dies takes every copy on it. So copies on targets that share a
filesystem (``providers.base.disk_at``: the filesystem itself, which for a
btrfs is one for all its subvolumes, though each has an ``st_dev`` of its
own) count once, and a target on the library's own
filesystem does not count at all (the library is the working copy, never a
backup). A phone (a confirming store) holds its copies on another device and
is always its own backup. A target may opt out with ``same_disk_ok = true``
(tests, the demo, setups that know better).

Pure: the devices are observed elsewhere (observation, and the removal gate
again at the moment of removal); the planner and the gate group them here,
the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

#: store id -> the backup its copies belong to; None: its copies do not count.
Groups = Mapping[str, str | None]


def backup_groups(
    devices: Mapping[str, int | None], *, library: int | None, same_disk_ok: Collection[str]
) -> dict[str, str | None]:
    """Group stores by the disk their copies live on (``None``: another device)."""
    return {
        store_id: group_of(store_id, device, library=library, same_disk_ok=same_disk_ok)
        for store_id, device in devices.items()
    }


def group_of(
    store_id: str, device: int | None, *, library: int | None, same_disk_ok: Collection[str]
) -> str | None:
    """The backup a copy of ``store_id`` on the disk ``device`` belongs to
    (``backup_groups``); the gate asks it of each copy's own file."""
    if device is None or store_id in same_disk_ok:
        return f"store:{store_id}"
    if device == library:
        return None
    return f"disk:{device}"


def count_backups(store_ids: Iterable[str], groups: Groups) -> int:
    """How many independent backups the copies on ``store_ids`` make."""
    return len({groups.get(s, f"store:{s}") for s in store_ids} - {None})


def disk_problems(groups: Groups) -> dict[str, str]:
    """store id -> why its copies count less than a person would think."""
    by_group: dict[str, list[str]] = {}
    for store_id, group in groups.items():
        if group is not None:
            by_group.setdefault(group, []).append(store_id)
    out: dict[str, str] = {}
    for store_id, group in groups.items():
        if group is None:
            out[store_id] = (
                "on the library's own disk: its copies are written but are not a backup "
                "(put it on another disk, or set same_disk_ok = true)"
            )
        elif len(by_group[group]) > 1:
            others = ", ".join(s for s in by_group[group] if s != store_id)
            out[store_id] = (
                f"on the same disk as {others}: together they count as one backup "
                "(put it on another disk, or set same_disk_ok = true)"
            )
    return out
