"""Writing into a store without ever overwriting: folders made durable,
folders opened without following links, a temporary file linked into place
(``link_no_clobber``), and a sidecar replaced atomically (``replace_sidecar``)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import ForeignFileError, ProviderError
from reconciler.hashing import discard, fsync_dir, read_file, sha256_file
from reconciler.sidecar import MAX_BYTES, RECONCILE_NS, is_rendering, owner

SIDECAR_SUFFIX = ".xmp"


def replace_sidecar(
    dest: Path, tmp: Path, data: bytes, mtime_ns: int | None, *, shown: str = ""
) -> str:
    """Write ``data`` to ``tmp``, fsync, then rename it over ``dest`` (a
    reader sees the old sidecar or the new one, never half of one). Only
    sidecars, and only one of the very item ``data`` describes as the tool
    wrote it: a media file is never replaced, nor a sidecar another program
    wrote, nor this tool's sidecar of another item, nor one of this item
    edited since it was written (``ForeignFileError``), even one that
    appears while this one is written. ``shown`` names ``dest`` in errors.
    Returns the SHA-256 read back."""
    shown = shown or str(dest)
    if not dest.name.lower().endswith(SIDECAR_SUFFIX):
        raise ProviderError(f"{shown}: only {SIDECAR_SUFFIX} sidecars are ever replaced")
    # Two items may share one original (the same file imported twice, a
    # duplicate re-dated in Photos): each keeps its own sidecar, for ever.
    item = owner(data)
    rendered = is_rendering(data)

    def check() -> None:
        # Another program's sidecar (darktable and Lightroom write exactly
        # IMG_0001.JPG.xmp), archived from a source: a backup, never replaced.
        found = _read(dest)
        there = _sidecar_owner(found)
        if there is None:
            raise ForeignFileError(
                f"{shown} holds an .xmp this tool did not write (another program's, or an "
                "archived file): it is kept as it is"
            )
        if item is not None and there != item:
            # The only record of a removed item's metadata, perhaps.
            raise ForeignFileError(
                f"{shown} holds the sidecar of another item ({there[0]}:{there[1]}): "
                "it is kept as it is"
            )
        if rendered and not is_rendering(found or b""):
            # This item's sidecar, changed since the tool wrote it: a
            # keyword the person added with digiKam or exiftool on this
            # very store, in no other file. A rendering replaces only a
            # rendering (a sidecar of ours, out of date). What is not one
            # (the library's sidecar of an item that lives only there, as
            # the person edited it) is copied over the targets' copy of it.
            raise ForeignFileError(
                f"{shown} holds this item's sidecar as changed since the tool wrote it (by a "
                "person or another program): it is kept as it is"
            )

    there = os.path.lexists(dest)
    if there:
        check()
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        got = sha256_file(tmp)
        if got != hashlib.sha256(data).hexdigest():
            raise ProviderError(f"{shown}: read-back of the new sidecar does not match")
        if there:
            os.replace(tmp, dest)  # this item's older sidecar, rewritten
        else:
            try:  # a free name: taken only while still free
                link_no_clobber(tmp, dest)
            except FileExistsError:
                check()
                os.replace(tmp, dest)  # this item's, written meanwhile by a parallel run
        fsync_dir(dest.parent)
    finally:
        discard(tmp)
    return got


def _read(path: Path) -> bytes | None:
    """The file at ``path`` (None: unreadable, or gone)."""
    try:
        return read_file(path, MAX_BYTES)
    except OSError:
        return None


def _sidecar_owner(data: bytes | None) -> tuple[str, str] | None:
    """The item whose sidecar, written by this tool, ``data`` is; a
    sidecar of ours without an item it names (never written so) is owned
    by ``("", "")``, which no item is; None: not ours (another program's,
    unreadable, or gone)."""
    if data is None or RECONCILE_NS.encode() not in data[: 1 << 16]:
        return None
    return owner(data) or ("", "")


def make_dirs_durable(path: Path) -> None:
    """``mkdir -p`` whose new entries are fsynced into their parents."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        fsync_dir(new.parent)


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


#: A folder on the way to a file (``open_folder``): never a link.
_SUBFOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


#: What ``FilesystemStore._existing`` says of a name taken by what is not a
#: readable file: never any file's SHA-256, never None (free).
TAKEN = ""


#: How a folder met on the way to a file is refused (``linked_folder``).
LINKED = "is a symbolic link"


def linked_folder(start: int, rel: str) -> str | None:
    """The first folder on the way from the folder ``start`` to the file
    ``rel`` that is a symbolic link, as a path below ``start``; None when
    there is none (a folder not there yet is none either)."""
    *parents, _ = rel.split("/")
    try:
        os.close(open_folder(start, parents))
    except OSError:
        for i in range(len(parents)):
            if _is_link("/".join(parents[: i + 1]), start):
                return "/".join(parents[: i + 1])
    return None


def folder_of(root: Path, rel: str) -> tuple[int, str]:
    """A descriptor of the folder holding ``rel`` below ``root``, reached one
    folder at a time without following a symbolic link (``open_folder``:
    OSError ELOOP or ENOTDIR at one), and the file's name in it. What is
    then done by that name through the descriptor (``dir_fd``) stays in
    that very folder, whatever is renamed or linked meanwhile. The caller
    closes the descriptor."""
    *parents, name = rel.split("/")
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_folder(top, parents), name
    finally:
        os.close(top)


def open_folder(start: int, parents: Sequence[str]) -> int:
    """A descriptor of the folder ``parents`` below the folder ``start``,
    opened one folder at a time without following a symbolic link (ELOOP
    or ENOTDIR then). ``start`` stays open; the caller closes the result."""
    fd = os.dup(start)
    try:
        for part in parents:
            child = os.open(part, _SUBFOLDER, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


#: Serialises the check-then-rename fallback of ``link_no_clobber`` among this
#: run's threads (other runs are kept out by the run lock).
_RENAME_LOCK = threading.Lock()


def link_no_clobber(tmp: Path | str, dest: Path | str, *, dir_fd: int | None = None) -> None:
    """Move ``tmp`` to ``dest``, failing with FileExistsError if ``dest`` exists.
    With ``dir_fd``, both are names in that folder. After a hard link, ``tmp``
    is still there too: the caller unlinks it."""
    try:
        os.link(tmp, dest, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise FileExistsError(str(dest)) from e
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # No hard links here (some network filesystems): check, then rename,
        # one writer at a time, or two parallel writers of one name would
        # both see it free and the second rename would replace the first.
        with _RENAME_LOCK:
            try:
                os.stat(dest, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                os.rename(tmp, dest, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                raise FileExistsError(str(dest)) from e
