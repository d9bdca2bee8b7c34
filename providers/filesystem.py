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
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from providers.base import (
    Availability,
    ColumnWalk,
    HashedColumns,
    Hasher,
    LocalTree,
    ScanEntry,
    mount_of,
)
from reconciler.errors import ForeignFileError, ProviderError, SourceChangedError
from reconciler.hashing import (
    copy_file_hashing,
    discard,
    fsync_dir,
    open_to_read,
    read_file,
    sha256_file,
)
from reconciler.layout import collision_path, is_inside
from reconciler.model import FileCopy
from reconciler.sidecar import MAX_BYTES, RECONCILE_NS, owner

MARKER = ".reconcile-target.json"
TMP_PREFIX = ".reconcile-tmp-"


def write_marker(root: Path, store_id: str) -> Path:
    """Mark ``root`` as the store ``store_id`` (``reconcile init-target``)."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if os.path.lexists(marker):
        existing = read_marker(root)
        if existing is None:
            raise ProviderError(
                f"{not_a_marker(root)}; refusing to mark {root} over it: move it aside if it "
                "is nothing of yours, then run init-target again",
                provider=store_id,
            )
        if existing != store_id:
            raise ProviderError(
                f"{root} is already marked as {existing!r}; refusing to re-mark it",
                provider=store_id,
            )
        return marker
    body = {"id": store_id, "created_at": datetime.now(UTC).isoformat(), "tool": "reconcile"}
    tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, marker)
    fsync_dir(root)
    return marker


def read_marker(root: Path) -> str | None:
    """The store id in the marker at ``root``; None when there is no marker
    of ours there (``not_a_marker`` says what is there instead)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        return _marker_at(fd)
    finally:
        os.close(fd)


def shown(rel: str) -> str:
    """A path as a person can read it (and SQLite and a terminal can take):
    bytes that are not UTF-8 (the OS hands them over as surrogate escapes)
    written as ``\\xNN``."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _undecodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


#: Linux's limits: a path of PATH_MAX bytes or more (its NUL counted) is
#: refused (ENAMETOOLONG); no name in a folder is longer than NAME_MAX.
_PATH_MAX = 4096
_NAME_MAX = 255


class NestedPlaceError(OSError):
    """A walk met, below its root, the folder of another configured place
    (a source, the library, a target, the state directory), or its own root
    again: a mount the configuration's check of paths cannot see. Its files
    are that place's; listed here, a source's removal would delete them."""


class Fences(dict[tuple[int, int], str]):
    """What no walk enters (``scan_tree``): the configured places' folders
    by identity (device, inode), each with its key in the file; and
    ``mounts``, the mounts below a place that show a folder inside a place
    somewhere else than in that place (a NAS's year folder bind-mounted
    inside the import folder, the library's inside a target): by the
    identity of the folder each shows
    at its mount point, the mount's id and what it shows. The identity
    alone would stop the walk of the place itself at that very folder; the
    id of the mount the walk reached it through tells the two ways in
    apart, and is looked up only for a folder whose identity matches.
    ``files``: the same for single files mounted so (a library photo
    bind-mounted inside a target), by the identity of the folder holding
    the mount point, then by name: the mount's id and what it shows;
    looked up once per folder, and a name only in a folder that has one.

    A dict, so that a plain mapping of places' folders still does (tests,
    ``places.fences``'s other callers), and sent as one to the helper
    process that walks ahead."""

    def __init__(
        self,
        folders: Mapping[tuple[int, int], str] | None = None,
        mounts: Mapping[tuple[int, int], Mapping[int, str]] | None = None,
        files: Mapping[tuple[int, int], Mapping[str, tuple[int, str]]] | None = None,
    ) -> None:
        super().__init__(folders or {})
        self.mounts = {identity: dict(by_id) for identity, by_id in (mounts or {}).items()}
        self.files = {identity: dict(by_name) for identity, by_name in (files or {}).items()}

    def __bool__(self) -> bool:
        return bool(len(self) or self.mounts or getattr(self, "files", None))


def _refuse_mounted_file(
    folder: int, name: str, path: str, shown: tuple[int, str], top: str
) -> None:
    """``name`` in ``folder`` is a mount point of a file inside a place
    (``Fences.files``), if reached through that very mount: then the walk
    of ``top`` ends (``NestedPlaceError``)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return  # gone since listed: not there to be listed either
    try:
        mount = mount_of(fd)
    finally:
        os.close(fd)
    if mount == shown[0]:
        raise NestedPlaceError(
            f"{path} is {shown[1]}: sources, library, targets and state must not contain "
            f"one another, so {top} is not listed"
        )


def _refuse_marked(folder: str, top: str) -> None:
    """A folder below a walk's root that holds a store's marker is that
    store, however it was reached: by a path spelled in other case on a disk
    that ignores case (exFAT, SMB, where FUSE gives each spelling an inode
    number of its own), a mount, a copy of a whole backup folder. Its files
    are that store's, never this place's: the walk ends (``NestedPlaceError``)."""
    raise NestedPlaceError(
        f"{folder} is marked as a store ({MARKER}): sources, library, targets and state "
        f"must not contain one another, so {top} is not listed (if it is a copy of an "
        "old backup folder, remove that file from it)"
    )


def scan_tree(
    root: str | os.PathLike[str],
    skip: Callable[[str], bool] | None = None,
    undecodable: list[str] | None = None,
    links: list[str] | None = None,
    fences: Mapping[tuple[int, int], str] | None = None,
) -> Iterator[ScanEntry]:
    """One os.scandir pass; skips our marker, temporaries, dot-folders, and
    any file name ``skip`` rejects (another tool's own files).

    A file whose path is not valid UTF-8 (a card written by an old camera
    or another OS) is not yielded: no database, plan or terminal can carry
    its name. It goes to ``undecodable`` instead (as ``shown`` writes it),
    for the caller to report. Nothing is read through a symbolic link (a
    link's target may be anywhere, and removing the link frees nothing);
    with ``links``, each one met is named there.

    Nor is anything whose path is too long to be opened (``PATH_MAX``, 4096
    bytes: a deep export, each name within the 255 a folder allows): every
    later step (hashing, copying, the hash cache) goes by path, so such a
    file could be listed but never read, and a folder not even listed. A
    sub-folder that cannot be opened for that is left out whole, the rest
    of the tree is walked; it, or a folder some of whose files are out of
    reach, is named once in ``undecodable``, ending in "/" (no file name
    does), for the caller to report. What is left out is never an item or
    a copy, so nothing is concluded from it being unlisted.

    Once per file of every store on every run: the loop does only what it
    must. Each folder is read through a descriptor of its own, so a file's
    lstat looks up one name in it (fstatat) rather than its whole path
    again (a third of a no-op walk's time); a sub-folder is opened without
    following a symlink put in its place after it was listed.

    ``fences``: the configured places' folders by identity (device, inode),
    each with its name. A sub-folder that is one of them (a bind mount, a
    share mounted twice) ends the walk with ``NestedPlaceError``: one
    ``fstat`` per folder, never per file. So does a mount that shows a
    folder inside a place (``Fences``), and a sub-folder holding a store's
    marker, whatever its identity says (``_refuse_marked``)."""
    top = os.fspath(root)
    stack = [(top if top.endswith("/") else top + "/", "", False)]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    new = tuple.__new__
    mounts = getattr(fences, "mounts", None)
    files = getattr(fences, "files", None)
    while stack:
        folder, prefix, odd = stack.pop()
        try:
            fd = os.open(folder, flags | os.O_NOFOLLOW if prefix else flags)
        except OSError as e:
            if not prefix or e.errno != errno.ENAMETOOLONG:
                raise
            if undecodable is not None:
                undecodable.append(shown(prefix))  # the folder, out of reach
            continue
        # Once per folder: only in one this deep can a name make a path too
        # long (a name has at most NAME_MAX bytes), so only there is any
        # name measured.
        used = len(os.fsencode(folder))
        deep, named = used + _NAME_MAX >= _PATH_MAX, False
        mounted: Mapping[str, tuple[int, str]] | None = None
        try:
            if files:
                st = os.fstat(fd)
                mounted = files.get((st.st_dev, st.st_ino))
            if fences and prefix:
                st = os.fstat(fd)
                place = fences.get((st.st_dev, st.st_ino))
                if place is not None:
                    raise NestedPlaceError(
                        f"{folder} is the folder of {place}, reached through a mount or another "
                        "way in: sources, library, targets and state must not contain one "
                        f"another, so {top} is not listed"
                    )
                showing = mounts.get((st.st_dev, st.st_ino)) if mounts else None
                what = showing.get(mount_of(fd) or -1) if showing else None
                if what is not None:
                    raise NestedPlaceError(
                        f"{folder} is {what}: sources, library, targets and state "
                        f"must not contain one another, so {top} is not listed"
                    )
            with os.scandir(fd) as it:
                for entry in it:
                    name = entry.name
                    if name[0] == "." and (
                        name == MARKER or name.startswith(TMP_PREFIX) or entry.is_dir()
                    ):
                        if name == MARKER and prefix:
                            _refuse_marked(folder, top)
                        continue
                    if skip is not None and skip(name):
                        continue
                    bad = odd or (not name.isascii() and _undecodable(name))
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((f"{folder}{name}/", f"{prefix}{name}/", bad))
                    elif links is not None and entry.is_symlink():
                        links.append(shown(prefix + name))
                    elif entry.is_file(follow_symlinks=False):
                        if mounted is not None and name in mounted:
                            _refuse_mounted_file(fd, name, folder + name, mounted[name], top)
                        if deep and used + len(os.fsencode(name)) >= _PATH_MAX:
                            if undecodable is not None and not named:
                                undecodable.append(shown(prefix or "./"))
                            named = True  # the folder, once
                            continue
                        if bad:
                            if undecodable is not None:
                                undecodable.append(shown(prefix + name))
                            continue
                        st = entry.stat(follow_symlinks=False)
                        yield new(
                            ScanEntry,
                            (
                                folder + name,
                                prefix + name,
                                st.st_size,
                                st.st_mtime_ns,
                                st.st_ino,
                                st.st_ctime_ns,
                            ),
                        )
        finally:
            os.close(fd)


def hashed_tree(
    store_id: str,
    root: Path,
    hasher: Hasher,
    skip: Callable[[str], bool] | None = None,
    *,
    verified: int | None = None,
) -> Iterator[FileCopy]:
    """Every file under ``root`` as a FileCopy of ``store_id``: one walk, then
    one batch through the (cached) hasher.

    ``verified``: a descriptor of the root as it was verified (its marker
    read). If another folder stands at ``root`` once walked (a disk mounted
    or unmounted meanwhile), the walk is of the wrong tree: the listing
    fails, before the hash cache could take the store's files for gone."""
    try:
        entries = hasher.walk(root, skip=skip)
        if verified is not None and not os.path.samestat(os.fstat(verified), os.stat(root)):
            raise ProviderError(
                f"listing {root} failed: another folder is there now than the one "
                "verified as this store (mounted or unmounted while it was listed)",
                provider=store_id,
                transient=True,
            )
    except OSError as e:
        raise ProviderError(f"listing {root} failed: {e}", provider=store_id) from e
    hashed = hasher.hash_entries(entries, tree=os.path.join(root, ""))
    # Once per file, in C loops: a FileCopy of each file's path, size, mtime
    # and SHA-256, straight from the walk's columns when it came in columns.
    rels: Iterable[str]
    sizes: Iterable[int]
    mtimes: Iterable[int]
    if isinstance(entries, ColumnWalk):
        rels, sizes, mtimes = entries.rels, entries.sizes, entries.mtimes
    else:
        rels, sizes, mtimes = map(_REL, entries), map(_SIZE, entries), map(_MTIME, entries)
    shas = hashed.shas if isinstance(hashed, HashedColumns) else map(_SHA, hashed)
    made = zip(repeat(store_id, len(entries)), rels, sizes, mtimes, shas, strict=True)
    # an unreadable file (no SHA-256) is no copy; the next run reads it again
    yield from filter(_COPY_SHA, map(_new_copy, made))


_REL, _SIZE, _MTIME = itemgetter(1), itemgetter(2), itemgetter(3)  # of a ScanEntry
_SHA = itemgetter(0)  # of a Hashed
_COPY_SHA = itemgetter(4)  # of a FileCopy
#: 0.15 µs a copy, against 1.6 µs through FileCopy's own __new__
_new_copy = partial(tuple.__new__, FileCopy)


class FilesystemStore:
    """A folder tree holding media files, addressed by relative path."""

    kind = "filesystem"

    def __init__(self, store_id: str, root: Path) -> None:
        self.id = store_id
        self.root = root
        #: The root's directory descriptor, once its marker was verified.
        self._pin: int | None = None
        self._pin_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FilesystemStore({self.id!r}, {str(self.root)!r})"

    def close(self) -> None:
        with self._pin_lock:
            if self._pin is not None:
                os.close(self._pin)
                self._pin = None

    def availability(self) -> Availability:
        with self._pin_lock:
            if self._pin is not None:
                return self._check(self._pin, pinned=True)
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return Availability(
                    available=False, reason=f"{self.root} does not exist or is not mounted"
                )
            found = self._check(fd, pinned=False)
            if found.available:
                self._pin = fd
            else:
                os.close(fd)
            return found

    def _check(self, fd: int, *, pinned: bool) -> Availability:
        """The path still names the directory ``fd`` holds, and it carries our marker."""
        try:
            now, held = os.stat(self.root), os.fstat(fd)
            same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
        except OSError:
            same = False
        if not same:
            return Availability(
                available=False,
                reason=f"{self.root} was moved, replaced or unmounted during this run; "
                "nothing more is written there",
            )
        marker = _marker_at(fd)
        if marker is None:
            return Availability(
                available=False,
                reason=(
                    f"{self.root} lost its {MARKER} during this run"
                    if pinned
                    else f"{self.root} has no {MARKER} (not mounted?); if this is the right "
                    f"place, run: reconcile init-target {self.root} --id {self.id}"
                ),
            )
        if marker != self.id:
            return Availability(
                available=False,
                reason=f"{self.root} is marked as {marker!r}, not {self.id!r} (wrong disk?)",
            )
        return Availability(available=True)

    def _path(self, rel: str) -> Path:
        """Where ``rel`` is read and written: through the pinned root, and
        never through a folder that is a symbolic link (``_no_link_to``)."""
        if not is_inside(rel):
            raise ProviderError(f"path {rel!r} escapes the store root", provider=self.id)
        if self._pin is None:
            found = self.availability()
            if not found.available:
                raise ProviderError(found.reason, provider=self.id)
        assert self._pin is not None
        self._no_link_to(rel, self._pin)
        return Path(f"/proc/{os.getpid()}/fd/{self._pin}") / rel

    def _no_link_to(self, rel: str, pin: int) -> None:
        """Refuse ``rel`` if a folder on its way is a symbolic link. The walk
        never follows one (so nothing behind it is a copy), and a write, an
        encode's replace or a gate's read through one would reach outside
        the store: a library folder linked into a target's would have an
        encode replace the target's original. A folder not there yet is
        made as a real one."""
        link = linked_folder(pin, rel)
        if link is not None:
            raise ProviderError(
                f"{self.root}/{link} {LINKED}: nothing is read or written through one",
                provider=self.id,
            )

    def _plain(self, what: object) -> str:
        """``what`` (an OSError, a path) as a person reads it: the store's own
        root where the pinned descriptor's /proc path stands."""
        text = str(what)
        if self._pin is not None:
            text = text.replace(f"/proc/{os.getpid()}/fd/{self._pin}", str(self.root))
        return text

    @property
    def local_tree(self) -> LocalTree:
        return LocalTree(self.root)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        tree = self.local_tree  # the walk ahead's tree is this very one
        return hashed_tree(self.id, tree.root, hasher, tree.skip, verified=self._pin)

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        rel_path = self._around_obstacles(rel_path, sha256)
        rel = rel_path
        for _ in range(3):
            dest = self._path(rel)
            existing = self._existing(dest)
            if existing == sha256:
                return self._copy_at(rel, sha256)
            if existing is None:
                try:
                    copy = self._write_new(src, rel, sha256)
                except FileExistsError:
                    continue  # someone took the name meanwhile: look again
                if mtime_ns is None:
                    return copy
                # The capture date, as photo apps sort by it (set once placed:
                # the write path itself stays as it is).
                os.utime(self._path(rel), ns=(mtime_ns, mtime_ns))
                return self._copy_at(rel, sha256)
            rel = collision_path(rel_path, sha256)
        raise ProviderError(f"could not find a free name for {rel_path}", provider=self.id)

    def _around_obstacles(self, rel_path: str, sha256: str) -> str:
        """``rel_path``, or, when a folder on its way is taken by something
        else (a file named like the day folder ``2020/01/02``, another
        tool's), the path with that folder tagged by the content
        (``2020/01/02~<sha256[:10]>/IMG_1.JPG``), as a taken file name is:
        the copy goes beside the obstacle instead of failing every run."""
        parts = rel_path.split("/")
        for depth in range(1, len(parts)):
            try:
                st = os.lstat(self._path("/".join(parts[:depth])))
            except (OSError, ProviderError):
                return rel_path  # not there (made when written), or the write says why
            if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                parts[depth - 1] = collision_path(parts[depth - 1], sha256)
                return "/".join(parts)
        return rel_path

    def _existing(self, dest: Path) -> str | None:
        """What stands at ``dest``: None for nothing, the SHA-256 of a file
        there, or ``TAKEN`` for anything else (a folder, a link, a pipe, a
        file that cannot be read): the copy then goes to the next name. A
        pipe is never opened (reading one waits for ever)."""
        try:
            st = os.lstat(dest)
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing there (a file in a folder's place: the write says so)
        except OSError as e:
            raise ProviderError(
                f"reading {self._plain(dest)} failed: {self._plain(e)}", provider=self.id
            ) from e
        if not stat.S_ISREG(st.st_mode):
            return TAKEN
        try:
            return sha256_file(open_to_read(dest, follow=False))
        except OSError:
            return TAKEN

    def _copy_at(self, rel: str, sha256: str) -> FileCopy:
        st = self._path(rel).stat()
        return FileCopy(
            store_id=self.id, path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256
        )

    def _write_new(self, src: Path, rel: str, sha256: str) -> FileCopy:
        tmp = self.temp_path(rel)
        try:
            got, _ = copy_file_hashing(src, tmp)
        except OSError as e:
            discard(tmp)
            raise ProviderError(
                f"writing {rel} failed: {self._plain(e)}", provider=self.id, transient=True
            ) from e
        if got != sha256:
            discard(tmp)
            raise SourceChangedError(
                f"the original read for {rel} is not the one recorded (sha256 {got[:12]}, "
                f"expected {sha256[:12]}): {src} changed since it was hashed",
                provider=self.id,
                path=str(src),
            )
        try:
            return self._place(tmp, rel, sha256)
        except FileExistsError:
            # Another writer of this run took the name: ``put`` looks again
            # and writes anew, so this temporary is nobody's (it was left
            # behind, one whole copy per clash, until a killed run's sweep).
            discard(tmp)
            raise

    def adopt(self, tmp: Path, rel_path: str, sha256: str) -> FileCopy:
        """Move a verified temporary file (from ``temp_path``) into place under
        ``rel_path`` or a collision-proof name; never overwrites."""
        rel_path = self._around_obstacles(rel_path, sha256)
        rel = rel_path
        for _ in range(3):
            existing = self._existing(self._path(rel))
            if existing == sha256:
                discard(tmp)
                return self._copy_at(rel, sha256)
            if existing is None:
                try:
                    return self._place(tmp, rel, sha256)
                except FileExistsError:
                    continue
            rel = collision_path(rel_path, sha256)
        discard(tmp)
        raise ProviderError(f"could not find a free name for {rel_path}", provider=self.id)

    def _place(self, tmp: Path, rel: str, sha256: str) -> FileCopy:
        dest = self._path(rel)
        try:
            make_dirs_durable(dest.parent)
            link_no_clobber(tmp, dest)
            fsync_dir(dest.parent)
        except FileExistsError:
            # Another writer of this run (parallel downloads of two photos
            # with one name) took the name first: the caller tries the next
            # name with the same temporary file, so it must still exist.
            raise
        except OSError as e:
            discard(tmp)
            raise ProviderError(
                f"writing {rel} failed: {self._plain(e)}", provider=self.id, transient=True
            ) from e
        discard(tmp)
        copy = self._copy_at(rel, sha256)
        if not self.verify(copy):
            raise ProviderError(
                f"read-back of {rel} does not match its sha256", provider=self.id, transient=True
            )
        return copy

    def verify(self, copy: FileCopy) -> bool:
        """The copy's bytes, read now, are its SHA-256's. A copy that is a
        symbolic link now is none (the walk never counts one either), even
        to the same bytes elsewhere."""
        try:
            return sha256_file(open_to_read(self._path(copy.path), follow=False)) == copy.sha256
        except OSError:
            return False

    def local_path(self, rel_path: str) -> Path | None:
        """The file by its configured path (the hash cache's key), for reading."""
        if not is_inside(rel_path):
            raise ProviderError(f"path {rel_path!r} escapes the store root", provider=self.id)
        return self.root / rel_path

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(copy.path), dest)
        except OSError as e:
            raise ProviderError(
                f"reading {copy.path} failed: {self._plain(e)}", provider=self.id
            ) from e

    def temp_path(self, rel_path: str) -> Path:
        """A temporary name beside ``rel_path`` (same filesystem, so rename is atomic)."""
        dest = self._path(rel_path)
        try:
            make_dirs_durable(dest.parent)
        except OSError as e:
            # Named by the configured root: the pinned /proc/<pid>/fd/<n> path
            # means nothing to the person who must fix the permission.
            where = self.root / os.path.dirname(rel_path)
            raise ProviderError(
                f"creating {where} failed: {e.strerror or e}", provider=self.id
            ) from e
        return dest.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}{dest.suffix}"

    def replace(self, tmp: Path, rel_path: str, *, replaces: str, sha256: str) -> FileCopy:
        """Library only: atomically replace ``rel_path`` with ``tmp`` (an
        encoded file, whose SHA-256 is ``sha256``), only while it still
        holds the bytes ``replaces`` (the SHA-256 the tool recorded there): a
        file the person changed or put there since (an edit saved over it, a
        copy of theirs) is theirs, and stays (SourceChangedError). Backup
        targets are never written through this."""
        dest = self._path(rel_path)
        try:
            now = sha256_file(open_to_read(dest, follow=False))
        except OSError as e:
            raise ProviderError(
                f"reading {rel_path} before replacing it failed: {self._plain(e)}",
                provider=self.id,
            ) from e
        if now != replaces:
            raise SourceChangedError(
                f"{rel_path} is not the file the tool recorded there (sha256 {now[:12]}, "
                f"recorded {replaces[:12]}): it changed since; it is kept as it is",
                provider=self.id,
                path=str(self.root / rel_path),
            )
        try:
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except OSError as e:
            raise ProviderError(
                f"replacing {rel_path} failed: {self._plain(e)}", provider=self.id
            ) from e
        return self._copy_at(rel_path, sha256)  # the very file, renamed

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        """Write an XMP sidecar, replacing an older one atomically: the only
        file a store ever overwrites (its metadata changed)."""
        dest = self._path(rel_path)
        try:
            sha = replace_sidecar(
                dest, self.temp_path(rel_path), data, mtime_ns, shown=f"{self.id}:{rel_path}"
            )
        except OSError as e:
            raise ProviderError(
                f"writing {rel_path} failed: {self._plain(e)}", provider=self.id, transient=True
            ) from e
        return self._copy_at(rel_path, sha)


SIDECAR_SUFFIX = ".xmp"


def replace_sidecar(
    dest: Path, tmp: Path, data: bytes, mtime_ns: int | None, *, shown: str = ""
) -> str:
    """Write ``data`` to ``tmp``, fsync, then rename it over ``dest`` (a
    reader sees the old sidecar or the new one, never half of one). Only
    sidecars, and only one of the very item ``data`` describes: a media file
    is never replaced, nor a sidecar another program wrote, nor this tool's
    sidecar of another item (``ForeignFileError``), even one that appears
    while this one is written. ``shown`` names ``dest`` in errors. Returns
    the SHA-256 read back."""
    shown = shown or str(dest)
    if not dest.name.lower().endswith(SIDECAR_SUFFIX):
        raise ProviderError(f"{shown}: only {SIDECAR_SUFFIX} sidecars are ever replaced")
    # Two items may share one original (the same file imported twice, a
    # duplicate re-dated in Photos): each keeps its own sidecar, for ever.
    item = owner(data)

    def check() -> None:
        # Another program's sidecar (darktable and Lightroom write exactly
        # IMG_0001.JPG.xmp), archived from a source: a backup, never replaced.
        there = _sidecar_owner(dest)
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


def _sidecar_owner(path: Path) -> tuple[str, str] | None:
    """The item whose sidecar, written by this tool, is at ``path``; a
    sidecar of ours without an item it names (never written so) is owned
    by ``("", "")``, which no item is; None: not ours (another program's,
    unreadable, or gone)."""
    try:
        data = read_file(path, MAX_BYTES)
    except OSError:
        return None
    if RECONCILE_NS.encode() not in data[: 1 << 16]:
        return None
    return owner(data) or ("", "")


#: A marker is a few hundred bytes: no more is ever read of one.
MARKER_LIMIT = 1 << 16


def _marker_at(fd: int) -> str | None:
    """The store id in the marker of the directory ``fd``. Opened as a
    regular file only (``open_to_read``: a FIFO or a device put at its name
    would make the open or the read wait for ever), and read up to
    ``MARKER_LIMIT``."""
    try:
        with open(open_to_read(MARKER, dir_fd=fd), "rb") as f:
            data = json.loads(f.read(MARKER_LIMIT))
    except (OSError, ValueError):
        return None  # a longer file is cut short: no JSON, no marker of ours
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def not_a_marker(root: Path) -> str:
    """What is at the marker's name in ``root`` when ``read_marker`` finds
    no store id there, as a person should be told it; "" when nothing is."""
    marker = root / MARKER
    try:
        st = os.lstat(marker)
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"{marker} cannot be looked at ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        what = "a folder"
    elif stat.S_ISLNK(st.st_mode):
        what = "a symbolic link to no marker"
    elif not stat.S_ISREG(st.st_mode):
        what = "a pipe, device or socket"
    elif st.st_size > MARKER_LIMIT:
        what = f"a file of {st.st_size} bytes (a marker has a few hundred)"
    else:
        try:
            with open(open_to_read(marker), "rb"):
                what = "a file with no store id in it (damaged, or another program's)"
        except OSError as e:
            what = f"a file that cannot be read ({e.strerror or e})"
    return f"{marker} is {what}, not a marker of reconcile"


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
