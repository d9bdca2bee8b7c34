"""``FilesystemStore``: a backup target on a mounted path, or the library,
as the core sees a store: available only while its marker is there, written
only through the folder whose marker was verified (pinned by a descriptor),
never over an existing file (the library's encodes excepted: ``replace``).
See the package's docstring for the whole of it."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from providers.base import Availability, Hasher, LocalTree
from providers.filesystem.files import (
    LINKED,
    TAKEN,
    link_no_clobber,
    linked_folder,
    make_dirs_durable,
    replace_sidecar,
)
from providers.filesystem.markers import MARKER, TMP_PREFIX, marker_at
from providers.filesystem.walk import hashed_tree
from reconciler.errors import ProviderError, SourceChangedError
from reconciler.hashing import copy_file_hashing, discard, fsync_dir, open_to_read, sha256_file
from reconciler.layout import collision_path, is_inside
from reconciler.logfile import LOGGER
from reconciler.media.kinds import is_trash
from reconciler.model import FileCopy

LOG = logging.getLogger(f"{LOGGER}.filesystem")


class _BinsAtTop:
    """A backup's walk rule: no file passed over by its name, but the
    folders at its top where files wait to be thrown away (``is_trash``:
    ``top_folders``, which ``scan_tree`` asks of the top's folders only, so
    a copy the tool placed at ``YYYY/MM/DD/Recycled`` is listed). One
    object, sent by name to the process that walks ahead."""

    top_folders = staticmethod(is_trash)

    def __call__(self, name: str) -> bool:
        return False

    def __reduce__(self) -> str:
        return "BINS_AT_TOP"


BINS_AT_TOP = _BinsAtTop()


class FilesystemStore:
    """A folder tree holding media files, addressed by relative path."""

    kind = "filesystem"

    def __init__(self, store_id: str, root: Path, *, backup: bool = False) -> None:
        self.id = store_id
        self.root = root
        #: A backup target: its walk leaves out the folders where files wait
        #: to be thrown away (a NAS's recycle bin, lost+found: ``is_trash``).
        #: A copy there does not last, so it is no copy, and one is made
        #: again where it belongs.
        self.backup = backup
        #: The root's directory descriptor, once its marker was verified.
        self._pin: int | None = None
        self._pin_lock = threading.Lock()
        #: What the last listing (``list_copies``) left out, as ``scan_tree``'s
        #: ``undecodable`` names it: files whose name is not UTF-8, folders
        #: too deep to be read (ending in "/"). In the library these are the
        #: person's photos, never archived: the observer says so.
        self.unlisted: Sequence[str] = ()

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
        marker = marker_at(fd)
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
        # A backup's walk never enters a bin: not listed, not hashed, not in
        # the hash cache any reader of a target's files (the census, the
        # hard-link check) goes by. The tool writes no copy there.
        return LocalTree(self.root, BINS_AT_TOP if self.backup else None)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        tree = self.local_tree  # the walk ahead's tree is this very one
        unlisted: list[str] = []
        self.unlisted = unlisted  # filled by the walk
        yield from hashed_tree(
            self.id, tree.root, hasher, tree.skip, verified=self._pin, undecodable=unlisted
        )
        if unlisted:
            # Said in the log of every run, whoever reads ``unlisted`` (the
            # observer notes the library's: a target's are no one's items).
            more = f" and {len(unlisted) - 20} more" if len(unlisted) > 20 else ""
            LOG.info(
                "%s: left out of its listing (a name not UTF-8, or a folder past the 4096-byte "
                "path limit): %s%s",
                self.id,
                ", ".join(unlisted[:20]),
                more,
            )

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        rel_path = self._around_obstacles(rel_path, sha256)
        rel = rel_path
        for _ in range(3):
            dest = self._path(rel)
            existing = self._existing(dest)
            if existing == sha256:
                # Placed before (a run killed, or an older version, between
                # placing it and dating it): dated now, as if written now.
                return self._dated(self._copy_at(rel, sha256), mtime_ns)
            if existing is None:
                try:
                    return self._write_new(src, rel, sha256, mtime_ns)
                except FileExistsError:
                    continue  # someone took the name meanwhile: look again
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
        try:
            st = self._path(rel).stat()
        except OSError as e:
            raise ProviderError(
                f"reading {rel} failed: {self._plain(e)}", provider=self.id, transient=True
            ) from e
        return FileCopy(
            store_id=self.id, path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256
        )

    def _dated(self, copy: FileCopy, mtime_ns: int | None) -> FileCopy:
        """``copy`` with the capture date ``mtime_ns`` as its mtime (photo
        apps sort by it), set now if it has another; not on a file with
        other names (a hard link of a source's file: its mtime may be that
        file's only date)."""
        if mtime_ns is None or copy.mtime_ns == mtime_ns:
            return copy
        path = self._path(copy.path)
        try:
            alone = os.lstat(path).st_nlink == 1
        except OSError:
            alone = False  # gone meanwhile: nothing to date
        if not alone:
            return copy
        self._date(path, copy.path, mtime_ns)
        return self._copy_at(copy.path, copy.sha256)

    def _date(self, path: Path, rel: str, mtime_ns: int) -> None:
        """Set ``path``'s mtime (the file of ``rel``). The OSError os.utime
        raises names no file (": Read-only file system"): it is named here."""
        try:
            os.utime(path, ns=(mtime_ns, mtime_ns))
        except OSError as e:
            raise ProviderError(
                f"setting the capture date of {rel} failed: {e.strerror or self._plain(e)}",
                provider=self.id,
                transient=True,
            ) from e

    def _write_new(self, src: Path, rel: str, sha256: str, mtime_ns: int | None) -> FileCopy:
        """Write ``src`` to a temporary beside ``rel``, dated ``mtime_ns``
        (the capture date) before it is put in place: a copy in place
        always has its date, whatever fails after (a disk turned read-only),
        as the next run counts it as it finds it."""
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
        if mtime_ns is not None:
            try:
                self._date(tmp, rel, mtime_ns)
            except ProviderError:
                discard(tmp)
                raise
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
