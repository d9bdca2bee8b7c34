"""Which copies are independent backups: two copies on one disk are one.

A disk that dies takes every copy on it. So copies on targets that share a
physical disk count once, and a target on the library's own disk does not
count at all (the library is the working copy, never a backup). The
device numbers grouped here stand for physical disks, not filesystems
(``providers.physical_disks.beneath``): two partitions of one disk, an LVM volume
and a partition beside it on one of its disks, a disk image and the disk
its file lies on, all the subvolumes of a btrfs (though each has an
``st_dev`` of its own), each give one number, so sharing any disk is
sharing the number. A phone (a confirming store) holds its copies on another device:
one phone is one backup, however many of its folders are targets (two
folders shared with one phone, archive or conduit, are lost together with
it), so phone targets group by the phone's device id (``phones``). A
filesystem target may opt out with ``same_disk_ok = true`` (tests, the
demo, setups that know better); a phone never does.

Pure: the devices are observed elsewhere (observation, and the removal gate
again at the moment of removal); the planner and the gate group them here,
the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

#: store id -> the backup its copies belong to; None: its copies do not count.
Groups = Mapping[str, str | None]

_NO_PHONES: Mapping[str, str] = {}

#: A copy that is another's file (a hard link, as deduplicating tools make
#: them) is no copy of its own: the gate, the plan and status word it alike.
SAME_FILE = "the same file as"
THE_SOURCES_OWN = f"{SAME_FILE} the source's own (a hard link)"


def linked_to(first: str) -> str:
    """Why a copy counts for nothing: it is ``first``'s copy, one file."""
    return f"{SAME_FILE} {first}'s copy (a hard link)"


def confirmed_by(device_id: str, folder_id: str) -> str:
    """Which phone and folder a recorded confirmation was made by (the
    ``identity`` column of a delivery): a row of another phone or folder (a
    reset phone, a new folder) counts for nothing, for observe, the gate and
    the census alike."""
    return f"{device_id}/{folder_id}"


def phones_of(targets: Mapping[str, object]) -> dict[str, str]:
    """target id -> the phone its copies are on (its Syncthing device id,
    written as Syncthing compares it), for every phone target of the
    configuration's ``targets``: the ``phones`` of ``backup_groups``."""
    return {
        tid: phone_key(device_id)
        for tid, cfg in targets.items()
        if isinstance(device_id := getattr(cfg, "device_id", None), str)
    }


def phone_key(device_id: str) -> str:
    """One spelling of a device id: Syncthing reads it in any case, with or
    without its dashes (a person may write one folder's either way)."""
    return "".join(c for c in device_id.upper() if c.isalnum())


def backup_groups(
    devices: Mapping[str, int | None],
    *,
    library: int | None,
    same_disk_ok: Collection[str],
    phones: Mapping[str, str] = _NO_PHONES,
) -> dict[str, str | None]:
    """Group stores by the disk their copies live on (``None``: another
    device), and phone targets by their phone (``phones``: ``phones_of``)."""
    return {
        store_id: group_of(
            store_id, device, library=library, same_disk_ok=same_disk_ok, phones=phones
        )
        for store_id, device in devices.items()
    }


def group_of(
    store_id: str,
    device: int | None,
    *,
    library: int | None,
    same_disk_ok: Collection[str],
    phones: Mapping[str, str] = _NO_PHONES,
) -> str | None:
    """The backup a copy of ``store_id`` on the disk ``device`` belongs to
    (``backup_groups``); the gate asks it of each copy's own file."""
    phone = phones.get(store_id)
    if phone is not None:
        return f"phone:{phone}"  # whatever its folder here is on
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
        elif len(by_group[group]) > 1 and group.startswith("phone:"):
            others = ", ".join(s for s in by_group[group] if s != store_id)
            out[store_id] = (
                f"on the same phone as {others}: together they count as one backup "
                "(a lost or reset phone loses every folder on it)"
            )
        elif len(by_group[group]) > 1:
            others = ", ".join(s for s in by_group[group] if s != store_id)
            out[store_id] = (
                f"on the same disk as {others}: together they count as one backup "
                "(put it on another disk, or set same_disk_ok = true)"
            )
    return out
