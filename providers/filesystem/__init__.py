"""Filesystem stores: a backup target on a mounted path (NAS, USB disk) and
the local library.

A store is identified by a marker file at its root (``reconcile init-target``
writes it). Without the marker, the store is *unavailable*: an unmounted NAS
looks like an empty folder, and nothing may be written into the bare mount
point or concluded from its emptiness.

Writes never overwrite: a file goes to a temporary name in the destination
folder, is fsynced, then linked into place (failing if the name was taken
meanwhile), read back and verified. A backup target never loses a file to
this tool; the library's re-encoded files are the one place a media file
is replaced (``replace``), and only by the library's own owner, the applier.
An XMP sidecar (``*.xmp``, metadata) is rewritten atomically when the
metadata it records changes (``put_sidecar``); nothing else is ever replaced.

Writes go only through the directory whose marker was verified: the first
successful ``availability()`` opens the root once (``O_DIRECTORY``) and every
write afterwards resolves through that descriptor (``/proc/<pid>/fd/<n>/…``,
which encoder processes can use too). A NAS unmounted or a folder moved away
mid-run can therefore never receive a write in the bare mount point; each
later ``availability()`` re-checks that the configured path still is that
directory and still carries the marker. New folders are fsynced into their
parents, so a power loss cannot drop the directory entry of a counted copy.

Here: ``markers`` (a store's marker), ``walk`` (a tree listed and hashed),
``files`` (writes that never overwrite), ``store`` (``FilesystemStore``).
"""

from __future__ import annotations

from providers.filesystem.files import (
    LINKED,
    folder_of,
    link_no_clobber,
    linked_folder,
    replace_sidecar,
)
from providers.filesystem.markers import (
    MARKER,
    MARKER_LIMIT,
    TMP_PREFIX,
    not_a_marker,
    read_marker,
    write_marker,
)
from providers.filesystem.store import FilesystemStore
from providers.filesystem.walk import Fences, NestedPlaceError, hashed_tree, scan_tree

__all__ = [
    "LINKED",
    "MARKER",
    "MARKER_LIMIT",
    "TMP_PREFIX",
    "Fences",
    "FilesystemStore",
    "NestedPlaceError",
    "folder_of",
    "hashed_tree",
    "link_no_clobber",
    "linked_folder",
    "not_a_marker",
    "read_marker",
    "replace_sidecar",
    "scan_tree",
    "write_marker",
]
