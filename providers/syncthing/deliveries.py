"""A file delivered into the shared folder: written under a temporary name
Syncthing ignores, then linked into a name no earlier file of the phone's
ever had (``put``), and a sidecar replaced (``put_sidecar``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import attrs

from providers.filesystem import link_no_clobber, replace_sidecar
from providers.syncthing import ignores
from providers.syncthing.client import PROVIDER
from providers.syncthing.folder import CHUNK, PhoneFolder, check_rel, numbered, same_mtime
from reconciler.errors import ProviderError, SourceChangedError
from reconciler.hashing import discard, fsync_dir, open_to_read, sha256_file
from reconciler.layout import collision_path, name_key
from reconciler.model import FileCopy


def _collision_names(rel: str, sha256: str) -> Iterator[str]:
    """``rel`` itself, then the library's and the NAS's collision-proof name,
    then one carrying the whole hash, then numbered ones without end: each
    time the phone deletes a freed copy (Google Photos' "Free up space")
    the same bytes are sent again, and the names used before stay known to
    Syncthing (and ignored here), so no fixed set of names lasts."""
    yield rel
    yield collision_path(rel, sha256)
    p = PurePosixPath(rel)
    yield p.with_name(f"{p.stem}~{sha256}{p.suffix}").as_posix()
    for n in itertools.count(2):
        yield numbered(p, sha256, n)


@attrs.define(kw_only=True)
class Deliverer(PhoneFolder):
    """A file delivered into the shared folder: written under a temporary name"""

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        """Deliver ``src`` to ``rel_path`` and ask Syncthing to scan it now.

        Written under ``.reconcile-tmp/``, fsynced and read back before it is
        linked into place, so the folder never shows a partial or wrong file.
        A path that is taken here, ignored here, or that Syncthing's index
        knows at all (the phone may hold, or have held, other content there,
        e.g. a freed copy) is never written: the copy lands at the library's
        collision-proof name instead. The same content already here is reused
        without writing, and so is the tool's freed copy of it on the phone
        (a path of its freed lines whose record shows this content: a state
        database lost or restored from before the freeing), which counts
        once the phone is proven to hold it. Retrying is safe.
        """
        rel = check_rel(rel_path)
        self._no_link_to(rel)
        tmp: Path | None = None
        try:
            # What the phone's record shows of a delivery of it: its size and
            # its capture time (see ``_freed_there``); none without one.
            shown = None if mtime_ns is None else (os.stat(src).st_size, mtime_ns)
            for _attempt in range(4):
                # A name is chosen and taken by one delivery at a time: two
                # of this run's, named alike but for case, must not both
                # find the folder free of the other.
                with self._naming:
                    dest_rel, freed = self._free_name(rel, sha256, src, shown)
                    dest = self.folder_path / dest_rel
                    if freed and shown is not None:
                        return self._taken_back(dest_rel, sha256, shown)
                    if dest.is_file():  # the same content is already there
                        return self._delivered(dest_rel, sha256)
                    if tmp is not None:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        if self._place(tmp, dest):
                            fsync_dir(dest.parent)
                            return self._delivered(dest_rel, sha256)
                        continue
                tmp = self._write_temp(src, sha256)  # written outside the lock
                if mtime_ns is not None:  # the capture date: the gallery sorts by it
                    os.utime(tmp, ns=(mtime_ns, mtime_ns))
        except OSError as e:
            raise ProviderError(
                f"delivering {rel} into {self.folder_path} failed: {e}", provider=PROVIDER
            ) from e
        finally:
            if tmp is not None:
                discard(tmp)
        raise ProviderError(
            f"delivering {rel}: the name kept being taken while writing; try again",
            provider=PROVIDER,
            transient=True,
        )

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        """Deliver an XMP sidecar, replacing an older one atomically (the only
        file ever replaced here: its metadata changed), and scan it."""
        rel = check_rel(rel_path)
        self._no_link_to(rel)
        try:
            tmp_dir = self._ensure_ignored()
            dest = self.folder_path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / f"sidecar-{os.urandom(8).hex()}.xmp"
            # Dated now, not at the capture time: Syncthing tells a changed
            # file by its size and mtime alone, and a sidecar rewritten with
            # both kept (a favourite set: Rating 0 -> 5) would never reach
            # the phone while its old version there counted as the new.
            sha = replace_sidecar(dest, tmp, data, None, shown=f"{self.id}:{rel}")
        except OSError as e:
            raise ProviderError(
                f"delivering {rel} into {self.folder_path} failed: {e}", provider=PROVIDER
            ) from e
        return self._delivered(rel, sha)

    def _free_name(
        self, rel: str, sha256: str, src: Path, shown: tuple[int, int] | None
    ) -> tuple[str, bool]:
        """The first candidate name that is unknown everywhere, or already
        holds this content here, or is the tool's freed copy of it there
        (``_freed_there``: True with the name then). A phone's storage
        tells names apart by neither case nor Unicode form, so a name that
        is another one there (``IMG_1.JPG`` beside ``img_1.jpg``) is taken
        too: the phone's Syncthing would refuse it for ever as a case
        conflict."""
        ignored = ignores.ignored_paths(self.folder_path)
        freed = ignores.decisive(self.folder_path)
        others = self._names_beside(rel)
        for name in _collision_names(rel, sha256):
            base = PurePosixPath(name).name
            if others.get(name_key(base), base) != base:
                continue  # another name there is this one on the phone
            path = self.folder_path / name
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):  # unreadable: taken
                    if name not in ignored and sha256_file(path) == sha256:
                        return name, False
                continue
            here = path.exists() or path.is_symlink()
            if (
                shown is not None
                and name in freed
                and not here
                and self._freed_there(name, sha256, src, shown)
            ):
                return name, True
            if here or name in ignored:
                continue
            if self._client.file(self.folder_id, name) is None:
                return name, False
        raise AssertionError("_collision_names never ends")

    def _freed_there(self, name: str, sha256: str, src: Path, shown: tuple[int, int]) -> bool:
        """Is the copy the tool freed at ``name`` (one of its freed lines)
        this very content? Asked where no record says so: the state
        database was lost, or restored from a backup older than the
        freeing; sending the bytes again would put a second copy on the
        phone, for every freed file.

        The global version there must be valid and made by this machine
        (nothing else is announced from here once the path is ignored; a
        change made on the phone is the phone's version), and show what a
        delivery of this content shows (``shown``): its size, and the
        capture time every delivery of it is dated at (the very test that
        ties Syncthing's record to the file it scanned, ``_index_behind``),
        the name being this content's own. Without a capture time a
        delivery keeps the time of whichever copy it was read from, which
        ties the record to nothing: never taken back then. ``src`` is read
        to be sure it is this content. The phone must hold that version, or
        be away (it cannot say now; the delivery then waits for it, rather
        than putting a second copy on it): a phone that is there and holds
        no such copy lost or changed it, and is sent the bytes anew. Only a
        delivery is taken back so (``_taken_back``): it counts once
        ``recognise_freed`` proves, in a later observation, that the phone
        holds it."""
        record = self._client.file(self.folder_id, name)
        if record is None:
            return False
        glob = record.global_
        if glob.deleted or glob.invalid or glob.size != shown[0]:
            return False
        if not same_mtime(glob.modified, shown[1]) or not self._made_here(glob):
            return False
        if not self._phone_holds(record.availability) and not self._gone_now():
            return False  # asked now, it holds no such copy (lost or changed there): sent anew
        try:
            return sha256_file(src) == sha256
        except OSError:
            return False  # delivered as ever, and the write says why

    def _taken_back(self, rel: str, sha256: str, shown: tuple[int, int]) -> FileCopy:
        """The tool's freed copy at ``rel`` taken back as this delivery:
        nothing is written (the path stays ignored here, and the phone
        keeps its copy), and the delivery counts only once the phone is
        proven to hold it (``recognise_freed``)."""
        size, mtime_ns = shown
        return FileCopy(store_id=self.id, path=rel, size=size, mtime_ns=mtime_ns, sha256=sha256)

    def _names_beside(self, rel: str) -> dict[str, str]:
        """The names in ``rel``'s folder, here and in Syncthing's index, by
        ``name_key`` (a key held by two names maps to neither)."""
        parent = PurePosixPath(rel).parent.as_posix()
        parent = "" if parent == "." else parent
        try:
            here = os.listdir(self.folder_path / parent)
        except FileNotFoundError:
            here = []
        names: dict[str, str] = {}
        for name in [*here, *self._client.names_in(self.folder_id, parent)]:
            key = name_key(name)
            names[key] = name if names.get(key, name) == name else "/"
        return names

    def _write_temp(self, src: Path, sha256: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self._ensure_ignored(), prefix="put-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, open(open_to_read(src), "rb") as f:
                shutil.copyfileobj(f, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            st = os.stat(src)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            # Read back what reached the disk (the same inode is linked into
            # place, so this one read covers the final file too).
            got = sha256_file(tmp)
            if got != sha256:
                raise SourceChangedError(
                    f"{src}: copy hashes to {got[:12]}…, expected {sha256[:12]}…; "
                    "the source changed or the disk is failing",
                    provider=PROVIDER,
                    path=str(src),
                )
        except BaseException:
            discard(tmp)
            raise
        return tmp

    @staticmethod
    def _place(tmp: Path, dest: Path) -> bool:
        """Move ``tmp`` to ``dest`` without ever replacing a file; False if taken."""
        try:
            link_no_clobber(tmp, dest)
        except FileExistsError:
            return False
        return True
