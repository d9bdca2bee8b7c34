"""The Pixel phone as a backup target: a Syncthing-shared folder plus REST checks.

Writing a file into the shared folder only *delivers* it; the phone holds it
once Syncthing on this machine says so, file by file (``confirm``). Until
then the copy is waiting, not failed: the phone may simply be offline, and
the next run asks again.

Temporary files are written under ``.reconcile-tmp/`` inside the shared
folder (same filesystem, so the final rename is atomic) and that directory is
listed in the folder's ``.stignore`` so Syncthing never sends a half-written
file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath

import attrs

from providers.base import Availability, Closing, Confirmation, Hasher
from providers.filesystem import hashed_tree, link_no_clobber, replace_sidecar
from providers.syncthing.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    PROVIDER,
    SyncthingClient,
)
from reconciler.errors import ProviderError
from reconciler.hashing import fsync_dir, sha256_file
from reconciler.model import FileCopy

TMP_DIR = ".reconcile-tmp"
STIGNORE_LINE = f"/{TMP_DIR}"
# Syncthing's own files at the folder root: never ours, never listed.
_ROOT_SPECIALS = frozenset({".stfolder", ".stignore", ".stversions", TMP_DIR})
_CHUNK = 1 << 20


@attrs.frozen(kw_only=True)
class SyncthingStatus:
    """For ``reconcile status``. ``completion`` is a progress figure, never proof."""

    reachable: bool
    connected: bool
    last_seen: datetime | None
    completion: float | None
    need_items: int | None
    need_bytes: int | None
    problem: str = ""


def _is_syncthing_temp(name: str) -> bool:
    return name.endswith(".tmp") and name.startswith((".syncthing.", "~syncthing~"))


def _is_syncthing_own(name: str) -> bool:
    """Syncthing's own files in a shared folder (its dot-folders are skipped anyway)."""
    return name in _ROOT_SPECIALS or _is_syncthing_temp(name)


def _check_rel(rel_path: str) -> str:
    """A relative POSIX path inside the folder, never into Syncthing's own files."""
    p = PurePosixPath(rel_path)
    if (
        not rel_path
        or p.is_absolute()
        or any(part in ("..", ".", "") for part in rel_path.split("/"))
        or p.parts[0] in _ROOT_SPECIALS
        or _is_syncthing_temp(p.name)
    ):
        raise ProviderError(f"{rel_path!r}: not a usable path in the folder", provider=PROVIDER)
    return p.as_posix()


def _collision_names(rel: str, sha256: str) -> Iterator[str]:
    """``rel`` itself, then names carrying more and more of the content hash."""
    yield rel
    p = PurePosixPath(rel)
    for n in (8, 16, 64):
        yield p.with_name(f"{p.stem}~{sha256[:n]}{p.suffix}").as_posix()


def _format_time(when: datetime | None) -> str:
    return "never seen" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


@attrs.define(kw_only=True)
class SyncthingTarget(Closing):
    """A Store whose copies are confirmed by the phone through Syncthing.

    Holds an HTTP session: call ``close()`` (or use it as a context manager).
    """

    id: str
    folder_path: Path = attrs.field(converter=Path)
    folder_id: str
    device_id: str
    url: str = DEFAULT_URL
    api_key: str = attrs.field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    _client: SyncthingClient = attrs.field(init=False, repr=False)

    kind = "syncthing"

    def __attrs_post_init__(self) -> None:
        self._client = SyncthingClient(url=self.url, api_key=self.api_key, timeout=self.timeout)

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ observe

    def availability(self) -> Availability:
        """Usable only if Syncthing answers, knows the folder and the phone,
        shares one with the other, and the folder is really here."""
        try:
            folder = self._client.folder(self.folder_id)
            self._client.device(self.device_id)
            own_id = self._client.my_id()
        except ProviderError as e:
            # Down, key rejected, unknown folder or device: each error's
            # message already says which and what to do.
            return Availability(available=False, reason=str(e))
        where = f"Syncthing folder {self.folder_id!r}"
        if self.device_id == own_id:
            return Availability(
                available=False,
                reason=f"{self.device_id} is this machine's own device id; use the phone's",
            )
        if self.device_id not in folder.device_ids:
            return Availability(
                available=False,
                reason=f"{where} is not shared with the phone ({self.device_id}); share it",
            )
        if folder.paused:
            return Availability(
                available=False, reason=f"{where} is paused in Syncthing; resume it"
            )
        if folder.type == "receiveonly":
            return Availability(
                available=False,
                reason=f"{where} is receive-only here; it must be send-only or send-receive",
            )
        if not self.folder_path.is_dir():
            return Availability(available=False, reason=f"{self.folder_path}: no such directory")
        if os.path.realpath(os.path.expanduser(folder.path)) != os.path.realpath(self.folder_path):
            return Availability(
                available=False,
                reason=f"{where} is at {folder.path}, not {self.folder_path}; fix the path",
            )
        # Syncthing's own marker: without it (an unmounted disk looks like an
        # empty directory) Syncthing itself refuses to sync the folder.
        if not (self.folder_path / ".stfolder").exists():
            return Availability(
                available=False,
                reason=f"{self.folder_path}: Syncthing's .stfolder marker is missing",
            )
        return Availability(available=True)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        """Every delivered file, hashed. Delivered is not held: see ``confirm``."""
        return hashed_tree(self.id, self.folder_path, hasher, skip=_is_syncthing_own)

    # ------------------------------------------------------------ write

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        """Deliver ``src`` to ``rel_path`` and ask Syncthing to scan it now.

        Written under ``.reconcile-tmp/``, fsynced and read back before it is
        linked into place, so the folder never shows a partial or wrong file.
        A different file at ``rel_path`` is never replaced: the copy lands at
        ``stem~<sha[:8]>.ext`` instead. The same content already there is
        reused without writing. Retrying is safe.
        """
        rel = _check_rel(rel_path)
        try:
            for _attempt in range(3):
                dest_rel = self._free_name(rel, sha256)
                dest = self.folder_path / dest_rel
                if dest.is_file():  # the same content is already there
                    return self._delivered(dest_rel, sha256)
                tmp = self._write_temp(src, sha256)
                if mtime_ns is not None:  # the capture date: the gallery sorts by it
                    os.utime(tmp, ns=(mtime_ns, mtime_ns))
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if self._place(tmp, dest):
                        fsync_dir(dest.parent)
                        return self._delivered(dest_rel, sha256)
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as e:
            raise ProviderError(
                f"delivering {rel} into {self.folder_path} failed: {e}", provider=PROVIDER
            ) from e
        raise ProviderError(
            f"delivering {rel}: the name kept being taken while writing; try again",
            provider=PROVIDER,
            transient=True,
        )

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        """Deliver an XMP sidecar, replacing an older one atomically (the only
        file ever replaced here: its metadata changed), and scan it."""
        rel = _check_rel(rel_path)
        try:
            tmp_dir = self.folder_path / TMP_DIR
            self._ensure_ignored()
            tmp_dir.mkdir(exist_ok=True)
            dest = self.folder_path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / f"sidecar-{os.urandom(8).hex()}.xmp"
            sha = replace_sidecar(dest, tmp, data, mtime_ns)
        except OSError as e:
            raise ProviderError(
                f"delivering {rel} into {self.folder_path} failed: {e}", provider=PROVIDER
            ) from e
        return self._delivered(rel, sha)

    def _free_name(self, rel: str, sha256: str) -> str:
        """The first candidate name that is free or already holds this content."""
        for name in _collision_names(rel, sha256):
            path = self.folder_path / name
            if not path.exists() and not path.is_symlink():
                return name
            if path.is_file() and not path.is_symlink() and sha256_file(path) == sha256:
                return name
        raise ProviderError(
            f"{rel}: every collision-proof name is taken by other content", provider=PROVIDER
        )

    def _write_temp(self, src: Path, sha256: str) -> Path:
        tmp_dir = self.folder_path / TMP_DIR
        self._ensure_ignored()
        tmp_dir.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                shutil.copyfileobj(f, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            st = os.stat(src)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            # Read back what reached the disk (the same inode is linked into
            # place, so this one read covers the final file too).
            got = sha256_file(tmp)
            if got != sha256:
                raise ProviderError(
                    f"{src}: copy hashes to {got[:12]}…, expected {sha256[:12]}…; "
                    "the source changed or the disk is failing",
                    provider=PROVIDER,
                )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _ensure_ignored(self) -> None:
        """Keep ``/.reconcile-tmp`` in .stignore (other lines are the user's)."""
        stignore = self.folder_path / ".stignore"
        try:
            lines = stignore.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        if STIGNORE_LINE in (line.strip() for line in lines):
            return
        with open(stignore, "a", encoding="utf-8") as f:
            if lines and stignore.read_bytes()[-1:] != b"\n":
                f.write("\n")
            f.write(f"// reconcile writes temporary files here; never sync them\n{STIGNORE_LINE}\n")
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _place(tmp: Path, dest: Path) -> bool:
        """Move ``tmp`` to ``dest`` without ever replacing a file; False if taken."""
        try:
            link_no_clobber(tmp, dest)
        except FileExistsError:
            return False
        return True

    def _delivered(self, rel: str, sha256: str) -> FileCopy:
        # The scan makes Syncthing announce the file at once instead of at
        # the next rescan interval; a retry of put repeats it harmlessly.
        self._client.scan(self.folder_id, rel)
        st = (self.folder_path / rel).stat()
        return FileCopy(
            store_id=self.id, path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256
        )

    # ------------------------------------------------------------ confirm

    def confirm(self, rel_path: str) -> Confirmation:
        """Is the phone proven to hold this exact file? Per file, from the index.

        Proof: the phone is in the file's ``availability`` (not from a
        temporary), the global version is not a deletion, and it is the
        version and size this machine has. Anything short of that is
        *waiting* (held False, with the reason), not an error. Syncthing
        itself unreachable raises ProviderError.
        """
        rel = _check_rel(rel_path)
        record = self._client.file(self.folder_id, rel)
        if record is None or not record.local.name:
            if not (self.folder_path / rel).is_file():
                return Confirmation(False, f"{rel} has not been delivered")
            # The scan after delivery was lost (Syncthing restarted): redo it.
            self._client.scan(self.folder_id, rel)
            record = self._client.file(self.folder_id, rel)
            if record is None or not record.local.name:
                return Confirmation(False, "Syncthing has not indexed it yet")
        glob, local = record.global_, record.local
        if glob.deleted:
            return Confirmation(
                False,
                "its latest version in Syncthing is a deletion (the local copy was freed); "
                "the phone can no longer be proven to hold it",
            )
        if local.deleted or local.version != glob.version or local.size != glob.size:
            return Confirmation(
                False, "another device has a different version of this file; ours is not held"
            )
        holder = next((h for h in record.availability if h.device_id == self.device_id), None)
        if holder is not None and not holder.from_temporary:
            return Confirmation(True, "the phone holds this version")
        if holder is not None:
            return Confirmation(False, "the phone is still receiving it")
        conn = self._client.connections().get(self.device_id)
        if conn is None or not conn.connected:
            since = _format_time(self._client.last_seen(self.device_id))
            return Confirmation(False, f"phone offline since {since}; waiting")
        # Not received yet, or the phone's copy was changed there (a receive-only
        # folder then holds a "locally changed" version): either way, not ours.
        return Confirmation(
            False, "phone has not received this version yet (or changed its copy); waiting"
        )

    def verify(self, copy: FileCopy) -> bool:
        """The local copy still hashes right AND the phone holds it, now."""
        try:
            if sha256_file(self.folder_path / _check_rel(copy.path)) != copy.sha256:
                return False
        except OSError:
            return False
        return self.confirm(copy.path).held

    def local_path(self, rel_path: str) -> Path | None:
        return self.folder_path / _check_rel(rel_path)

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        """Copy the local staging file's bytes to ``dest``, checking its hash."""
        src = self.folder_path / _check_rel(copy.path)
        h = hashlib.sha256()
        try:
            with open(src, "rb") as f, open(dest, "wb") as out:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except OSError as e:
            raise ProviderError(f"reading {copy.path} failed: {e}", provider=PROVIDER) from e
        if h.hexdigest() != copy.sha256:
            raise ProviderError(
                f"{copy.path} no longer hashes to {copy.sha256[:12]}…", provider=PROVIDER
            )

    def free_local(self, rel_path: str) -> None:
        """Delete the local staging copy, keeping the phone's.

        Safe ONLY when the phone's folder ignores deletes (``ignoreDelete`` on,
        or a receive-only folder whose local deletions are not reverted):
        otherwise Syncthing propagates this deletion and the phone deletes its
        copy too. This machine cannot read the phone's folder settings, so the
        caller must gate it on the user's ``delete_local_pixel`` setting, and
        call it only after the item's iCloud removal, while the proof was
        still visible: afterwards the global version is a deletion and
        ``confirm`` can no longer prove the phone holds the file.
        Missing already is fine.
        """
        rel = _check_rel(rel_path)
        try:
            (self.folder_path / rel).unlink(missing_ok=True)
        except OSError as e:
            raise ProviderError(f"freeing {rel} failed: {e}", provider=PROVIDER) from e
        self._client.scan(self.folder_id, rel)

    # ------------------------------------------------------------ status

    def status_summary(self) -> SyncthingStatus:
        """Connection, last seen and progress, for ``reconcile status``. Never raises
        for Syncthing being down: the problem is in ``problem``."""
        try:
            conn = self._client.connections().get(self.device_id)
            last_seen = self._client.last_seen(self.device_id)
            completion = self._client.completion(self.folder_id, self.device_id)
        except ProviderError as e:
            return SyncthingStatus(
                reachable=False,
                connected=False,
                last_seen=None,
                completion=None,
                need_items=None,
                need_bytes=None,
                problem=str(e),
            )
        return SyncthingStatus(
            reachable=True,
            connected=conn is not None and conn.connected,
            last_seen=last_seen,
            completion=completion.completion,
            need_items=completion.need_items,
            need_bytes=completion.need_bytes,
        )
