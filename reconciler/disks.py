"""Which disk each copy of a target counts on: the disk its own file is on.

A mount inside a target may show another disk's files there (a folder of
the library's disk bind-mounted at ``nas/2021``, an overlay over the
library, a mergerfs pool): a copy reached through it is on that disk, not on
the target root's. ``Disks.judge`` says, for one copy's location, the disk
it counts on, or why it is no backup at all. The removal gate asks it of
each copy at the moment of removal; the observer asks it once per run of
the copies lying below such a mount (``TargetState.elsewhere``), so the
plan counts them as the gate will.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from providers.mounts import Location, Mount, locate
from providers.physical_disks import beneath
from reconciler.config import DesiredState, places, same_disk_ok

#: How a copy met inside another place by its real location is named.
THROUGH_A_MOUNT = "reached through a mount"


@attrs.frozen(kw_only=True)
class Disks:
    """The disks and places, looked at now, that each copy is judged by on
    its own (its own file's disk, not its target's root's: ``judge``):
    ``library``, the library's physical disk (``providers.physical_disks.beneath``:
    a copy on any disk of the library's is no backup, unless its target
    says ``same_disk_ok``), and ``library_unknown``, what of it sysfs would
    not tell (then no copy is known to be off it); ``places``, the
    library's and the folder sources' folders by key, where no copy is a backup whatever its target
    says (a bind mount shows their files inside a target); ``roots``, the
    mount each target's root is reached through (``Location.mount``);
    ``table``, the mount table they were located through
    (``providers.mounts.locate``)."""

    library: int | None
    library_unknown: str = ""
    places: Mapping[str, Location] = attrs.field(factory=dict)
    same_disk_ok: frozenset[str] = frozenset()
    roots: Mapping[str, int | None] = attrs.field(factory=dict)
    table: Mapping[int, Mount] = attrs.field(factory=dict)
    #: each overlay's layers where they are, by mount id: looked at once a check
    _layers: dict[int, tuple[Location, ...] | None] = attrs.field(factory=dict, init=False)

    def place_of(self, location: Location) -> str | None:
        """The key of the place ``location`` lies in, if any."""
        return next((k for k, p in self.places.items() if location.within(p)), None)

    def judge(self, store_id: str, where: Location) -> tuple[int | None, str]:
        """The disk a copy of ``store_id`` whose file is at ``where`` counts
        on, and "" ; or (None, why it is no backup at all).

        The disk is the physical one (``_on``): two partitions of one disk,
        an LVM volume and a partition beside it, are one. Through an overlay
        (``Mount.layers``) the file may be any layer's: none counts when a
        layer lies in, or holds, the library or a source (their own files
        would pass for the target's copies), nor when the layers are on
        several disks (which one holds it is not known). Through a union
        whose layers the table does not name (a mergerfs or bindfs mount),
        a copy counts as before on that mount's own number only when the
        target's root itself lies on it (a pool the person chose as the
        target); one mounted below the target's root could be showing
        anything (the library's folder), and counts for nothing."""
        place = self.place_of(where)
        if place is not None:
            return None, f"its file is in {place}, {THROUGH_A_MOUNT}"
        mount = self.table.get(where.mount) if where.mount is not None else None
        shown = mount.layers() if mount is not None else ()
        if mount is None or shown == ():
            return self._on(store_id, where)
        layers = self._located(mount, shown)
        if layers is None:
            if self.roots.get(store_id) == mount.id:
                return self._on(store_id, where)
            return None, (
                f"its file is reached through a {mount.fstype} mount at {mount.point}, "
                "whose folders the mount table does not name"
            )
        for layer in layers:
            place = next((k for k, p in self.places.items() if layer.overlaps(p)), None)
            if place is not None:
                return None, (
                    f"its file may be in {place}: it is reached through an overlay at "
                    f"{mount.point} that shows {place}'s files"
                )
        judged = [self._on(store_id, layer) for layer in layers]
        refused = next((found for found in judged if found[1]), None)
        if refused is not None:
            return refused
        devices = {device for device, _ in judged}
        if len(devices) > 1:
            return None, (
                f"its file is reached through an overlay at {mount.point} of folders on "
                f"{len(devices)} disks, any of which may hold it"
            )
        return devices.pop(), ""

    def _on(self, store_id: str, where: Location) -> tuple[int | None, str]:
        """The physical disk the filesystem of ``where`` lies on, which dies
        with it: the disk of a partition, of an LVM, LUKS or RAID device,
        and for a disk image (a loop device) the disk its file lies on
        (none when that file is in the library or a source). A disk that
        sysfs would not show, the copy's or the library's, is none either,
        unless the target says ``same_disk_ok``: that it is off the
        library's disk cannot be told."""
        found = beneath(where, self.table)
        for image, at in found.images:
            place = self.place_of(at)
            if place is not None:
                return None, f"its disk is an image file kept in {place} ({image})"
        if store_id in self.same_disk_ok:
            return found.disk, ""
        if found.unknown:
            return None, f"which disk its file is on cannot be told: {found.unknown}"
        if self.library_unknown:
            return None, f"which disk the library is on cannot be told: {self.library_unknown}"
        return found.disk, ""

    def _located(self, mount: Mount, shown: tuple[str, ...] | None) -> tuple[Location, ...] | None:
        """Where each of an overlay's layers is; None when one cannot be
        looked at (its path is not there in this process's view)."""
        if mount.id not in self._layers:
            found = [locate(layer, self.table) for layer in shown or ()]
            self._layers[mount.id] = (
                tuple(f for f in found if f is not None) if shown and None not in found else None
            )
        return self._layers[mount.id]


def disks_now(
    desired: DesiredState, table: Mapping[int, Mount], roots: Mapping[str, Location | None]
) -> Disks:
    """The ``Disks`` to judge copies by, from one reading of the mount
    table: the library's and the folder sources' folders where they really
    are, and each target's root (``roots``, located through ``table``)."""
    found = {
        key: where
        for key, path in places(desired)
        if key == "library.path" or key.startswith("sources.")
        if (where := locate(path, table)) is not None
    }
    library = found.get("library.path")
    under = beneath(library, table) if library is not None else None
    return Disks(
        library=under.disk if under is not None else None,
        library_unknown=under.unknown if under is not None else "",
        places=found,
        same_disk_ok=same_disk_ok(desired),
        roots={tid: root.mount for tid, root in roots.items() if root is not None},
        table=table,
    )
