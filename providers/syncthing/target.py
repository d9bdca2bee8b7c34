"""The Pixel phone as a backup target: a Syncthing-shared folder plus REST checks.

Writing a file into the shared folder only *delivers* it; the phone holds it
once Syncthing on this machine says so, file by file (``confirm``). Until
then the copy is waiting, not failed: the phone may simply be offline, and
the next run asks again.

No copy counts before the phone proved, this run, that it receives files
(``prove_alive``: a canary round trip, see ``liveness``). A delivery never
lands on a path Syncthing knows from before (the phone may hold other content
there); freeing a staging copy first makes its path ignored here, so the
phone keeps its copy whatever its folder settings (see ``ignores``), and a
freed copy counts only while the phone still announces the same version.

Temporary files are written under ``.reconcile-tmp/`` inside the shared
folder (same filesystem, so the final rename is atomic) and that directory is
listed in the folder's ``.stignore`` so Syncthing never sends a half-written
file.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath

import attrs

from providers.base import Availability, Closing, Confirmation, Hasher, Liveness, LocalTree
from providers.filesystem import (
    LINKED,
    folder_of,
    hashed_tree,
    link_no_clobber,
    linked_folder,
    replace_sidecar,
)
from providers.syncthing import ignores, liveness
from providers.syncthing.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    PROVIDER,
    FileVersion,
    Holder,
    SyncthingClient,
)
from providers.syncthing.ignores import TMP_DIR
from providers.syncthing.liveness import (
    CANARY,
    DEFAULT_LIVENESS_TIMEOUT,
    format_time,
    prove_alive,
)
from reconciler.errors import ProviderError, SourceChangedError
from reconciler.hashing import discard, fsync_dir, open_to_read, sha256_file
from reconciler.layout import MAX_NAME_BYTES, collision_path, name_key
from reconciler.model import FileCopy

STIGNORE_LINE = ignores.TMP_LINE
# Syncthing's own files at the folder root (and our canary): never listed.
_ROOT_SPECIALS = frozenset({".stfolder", ".stignore", ".stversions", TMP_DIR, CANARY})
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
    #: Deletions the phone has not applied (a folder that ignores deletes
    #: never will: e.g. the last canary).
    need_deletes: int = 0
    #: Syncthing's folder state on this machine (idle, scanning, error…):
    #: the phone's own folder state is not visible from here.
    folder_state: str = ""


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
        yield _numbered(p, sha256, n)


def _numbered(p: PurePosixPath, sha256: str, n: int) -> str:
    """``IMG_1~<hash>-<n>.JPG``, its stem cut to fit a file name (never
    the tag, so each ``n`` is a name of its own)."""
    tag = f"~{sha256[:10]}-{n}"
    stem = p.stem
    while stem and len((stem + tag + p.suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return p.with_name(f"{stem}{tag}{p.suffix}").as_posix()


def evidence_of(version: FileVersion) -> str:
    """What a confirmation records: the version vector and size the phone announced."""
    return f"{','.join(sorted(version.version))}/{version.size}"


@attrs.define(kw_only=True)
class SyncthingTarget(Closing):
    """A Store whose copies are confirmed by the phone through Syncthing.

    Holds an HTTP session: call ``close()`` (or use it as a context manager).
    One instance serves one run: the liveness proof it makes is this run's.
    """

    id: str
    folder_path: Path = attrs.field(converter=Path)
    folder_id: str
    device_id: str
    url: str = DEFAULT_URL
    api_key: str = attrs.field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    #: How long the canary may take to reach the phone before it counts as
    #: not alive this run.
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT
    _client: SyncthingClient = attrs.field(init=False, repr=False)
    _liveness: Liveness | None = attrs.field(init=False, default=None, repr=False)
    #: When (``time.monotonic``) ``_liveness`` was made.
    _proved_at: float = attrs.field(init=False, default=0.0, repr=False)
    #: path -> evidence of freed copies confirmed this run (for ``verify``).
    _freed: dict[str, str] = attrs.field(init=False, factory=dict, repr=False)
    #: Paths ignored here, read once per run (see ``_keep_ignored``).
    _ignored: set[str] | None = attrs.field(init=False, default=None, repr=False)
    #: Held while a delivery chooses its name and takes it (see ``put``).
    _naming: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    kind = "syncthing"

    def __attrs_post_init__(self) -> None:
        self._client = SyncthingClient(url=self.url, api_key=self.api_key, timeout=self.timeout)

    def close(self) -> None:
        self._client.close()

    @property
    def identity(self) -> str:
        """Which phone and folder a recorded confirmation was made by."""
        return f"{self.device_id}/{self.folder_id}"

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

    def prove_alive(self) -> Liveness:
        """This run's canary round trip: made once, and again when the last
        one is older than ``liveness.MAX_PROOF_AGE_S``. The removal gate asks
        it right before each removal, so the phone it counts was shown alive
        minutes ago at most, not at the start of a run of hours."""
        age = time.monotonic() - self._proved_at
        if self._liveness is None or age > liveness.MAX_PROOF_AGE_S:
            self._proved_at = time.monotonic()
            self._liveness = prove_alive(
                self._client,
                folder_path=self.folder_path,
                folder_id=self.folder_id,
                device_id=self.device_id,
                timeout=self.liveness_timeout,
                ensure_tmp=self._ensure_ignored,
            )
        return self._liveness

    @property
    def local_tree(self) -> LocalTree:
        return LocalTree(self.folder_path, skip=_is_syncthing_own)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        """Every delivered file, hashed. Delivered is not held: see ``confirm``."""
        tree = self.local_tree  # the walk ahead's tree is this very one
        return hashed_tree(self.id, tree.root, hasher, tree.skip)

    # ------------------------------------------------------------ write

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
        without writing. Retrying is safe.
        """
        rel = _check_rel(rel_path)
        self._no_link_to(rel)
        tmp: Path | None = None
        try:
            for _attempt in range(4):
                # A name is chosen and taken by one delivery at a time: two
                # of this run's, named alike but for case, must not both
                # find the folder free of the other.
                with self._naming:
                    dest_rel = self._free_name(rel, sha256)
                    dest = self.folder_path / dest_rel
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
        rel = _check_rel(rel_path)
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

    def _free_name(self, rel: str, sha256: str) -> str:
        """The first candidate name that is unknown everywhere, or already
        holds this content here. A phone's storage tells names apart by
        neither case nor Unicode form, so a name that is another one there
        (``IMG_1.JPG`` beside ``img_1.jpg``) is taken too: the phone's
        Syncthing would refuse it for ever as a case conflict."""
        ignored = ignores.ignored_paths(self.folder_path)
        others = self._names_beside(rel)
        for name in _collision_names(rel, sha256):
            base = PurePosixPath(name).name
            if others.get(name_key(base), base) != base:
                continue  # another name there is this one on the phone
            path = self.folder_path / name
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):  # unreadable: taken
                    if name not in ignored and sha256_file(path) == sha256:
                        return name
                continue
            if path.exists() or path.is_symlink() or name in ignored:
                continue
            if self._client.file(self.folder_id, name) is None:
                return name
        raise AssertionError("_collision_names never ends")

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
                shutil.copyfileobj(f, out, _CHUNK)
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

    def _ensure_ignored(self) -> Path:
        """Keep ``/.reconcile-tmp`` in .stignore (other lines are the user's);
        return that folder (``ignores.staging``)."""
        ignores.ensure(self.folder_path, STIGNORE_LINE, ignores.TMP_COMMENT)
        return ignores.staging(self.folder_path)

    @staticmethod
    def _place(tmp: Path, dest: Path) -> bool:
        """Move ``tmp`` to ``dest`` without ever replacing a file; False if taken."""
        try:
            link_no_clobber(tmp, dest)
        except FileExistsError:
            return False
        return True

    def _no_link_to(self, rel: str) -> None:
        """Refuse ``rel`` if a folder on its way is a symbolic link: Syncthing
        never sends what is behind one, and a write, read or deletion through
        it would reach outside the shared folder (a folder linked to the
        NAS's would have a freed copy delete the NAS's file)."""
        link = self._link_on_the_way(rel)
        if link is not None:
            raise ProviderError(link, provider=PROVIDER)

    def _link_on_the_way(self, rel: str) -> str | None:
        """What refuses ``rel``: the first folder on its way that is a
        symbolic link, said as a person reads it; None when there is none."""
        try:
            top = os.open(self.folder_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None  # the folder itself is gone: what is done there says so
        try:
            link = linked_folder(top, rel)
        finally:
            os.close(top)
        if link is None:
            return None
        return f"{self.folder_path}/{link} {LINKED}: nothing is read or written through one"

    def _linked(self, rel: str, error: OSError) -> str:
        """Why ``rel`` cannot be reached without following a link."""
        return self._link_on_the_way(rel) or f"{rel}: {error.strerror or error}"

    def _open(self, rel: str) -> int:
        """``rel`` opened for reading without following a symbolic link, on
        the way or at its name (OSError then). The caller closes it."""
        folder, name = folder_of(self.folder_path, rel)
        try:
            return open_to_read(name, dir_fd=folder, follow=False)
        finally:
            os.close(folder)

    def _delivered(self, rel: str, sha256: str) -> FileCopy:
        # The scan makes Syncthing announce the file at once instead of at
        # the next rescan interval; a retry of put repeats it harmlessly.
        # It answers once the file is hashed: a large clip may take longer
        # than the client waits, and the file is delivered all the same
        # (Syncthing's own rescan finds it; the confirmation comes later).
        with contextlib.suppress(ProviderError):
            self._client.scan(self.folder_id, rel)
        st = (self.folder_path / rel).stat()
        return FileCopy(
            store_id=self.id, path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256
        )

    # ------------------------------------------------------------ confirm

    def _index_behind(self, rel: str, local: FileVersion) -> bool:
        """Does Syncthing's record of ``rel`` here describe other bytes than
        the file there now (another size or mtime)? Its index, and every
        device's answer about the file, follow the last scan that saw it."""
        if local.deleted or local.invalid or local.ignored:
            return False  # judged below: no file of ours is announced
        try:
            st = (self.folder_path / rel).lstat()
        except OSError:
            return False  # not here (freed): the phone's copy is what counts
        return st.st_size != local.size or st.st_mtime_ns != _modified_ns(local.modified)

    def confirm(self, rel_path: str) -> Confirmation:
        """Is the phone proven to hold this exact file? Per file, from the index.

        Proof: the phone is in the file's ``availability`` (not from a
        temporary), the global version is not a deletion, and it is the
        version and size this machine has. Anything short of that is
        *waiting* (held False, with the reason), not an error. Syncthing
        itself unreachable raises ProviderError. (Whether the phone's folder
        works at all is ``prove_alive``'s question, not this one's.)
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
                # Scanned and still not indexed: ignored here, when a
                # pattern of the person's says so (Syncthing indexes no
                # ignored file), else not yet indexed.
                return Confirmation(
                    False, self._ignored_reason(rel) or "Syncthing has not indexed it yet"
                )
        if self._index_behind(rel, record.local):
            # The file here changed since Syncthing indexed it (a sidecar
            # rewritten, a scan lost): its record, and so the phone's
            # answer, is of the bytes before. Scanned again; until the
            # index says the file as it is now, nothing is proven.
            with contextlib.suppress(ProviderError):
                self._client.scan(self.folder_id, rel)
            record = self._client.file(self.folder_id, rel)
            if record is None or self._index_behind(rel, record.local):
                return Confirmation(
                    False, "Syncthing has not indexed the file as it is now (changed here); waiting"
                )
        glob, local = record.global_, record.local
        if glob.deleted:
            return Confirmation(
                False,
                "its latest version in Syncthing is a deletion; "
                "the phone can no longer be proven to hold it",
            )
        if local.invalid or local.ignored:
            return Confirmation(
                False,
                self._ignored_reason(rel) or f"{rel} is ignored here (freed, or by .stignore)",
            )
        if local.deleted or local.version != glob.version or local.size != glob.size:
            return Confirmation(
                False, "another device has a different version of this file; ours is not held"
            )
        holder = next((h for h in record.availability if h.device_id == self.device_id), None)
        if holder is not None and not holder.from_temporary:
            return Confirmation(True, "the phone holds this version", evidence_of(glob))
        if holder is not None:
            return Confirmation(False, "the phone is still receiving it")
        conn = self._client.connections().get(self.device_id)
        if conn is None or not conn.connected:
            since = format_time(self._client.last_seen(self.device_id))
            return Confirmation(False, f"phone offline since {since}; waiting")
        # Not received yet, or the phone's copy was changed there (a receive-only
        # folder then holds a "locally changed" version): either way, not ours.
        return Confirmation(
            False, "phone has not received this version yet (or changed its copy); waiting"
        )

    def confirm_freed(self, rel_path: str, evidence: str) -> Confirmation:
        """Does the phone still announce the freed file, unchanged since it was
        confirmed (``evidence``: the version vector and size it had then)?

        A deletion or a change made on the phone shows here once the phone
        has rescanned: the global record then stops being that valid version
        held by the phone.
        """
        rel = _check_rel(rel_path)
        self._keep_ignored(rel)
        record = self._client.file(self.folder_id, rel)
        if record is None:
            return Confirmation(False, f"Syncthing no longer knows {rel}")
        glob = record.global_
        if glob.deleted or glob.invalid:
            return Confirmation(False, "the phone deleted or changed its copy")
        if not evidence or evidence_of(glob) != evidence:
            return Confirmation(False, "the phone announces another version than the one confirmed")
        if not self._phone_holds(record.availability):
            return Confirmation(False, "the phone no longer announces this version")
        self._freed[rel] = evidence
        return Confirmation(True, "the phone still holds the freed copy", evidence)

    def verify(self, copy: FileCopy) -> bool:
        """Counts now: the phone proved alive (lately, ``prove_alive``), AND
        either the local copy still hashes right and the phone holds it, or
        (a freed copy confirmed this run) the phone still announces the same
        version.

        Not proven alive: False (nothing of it counts; the removal gate
        asks ``prove_alive`` first and counts such a phone unavailable). A
        phone proven alive that cannot be asked now (offline since, Syncthing
        not answering) raises a transient ProviderError: that is
        "unavailable", never "the copy is wrong", and the caller forgets no
        copy for it."""
        if not self.prove_alive().alive:
            return False
        rel = _check_rel(copy.path)
        try:
            fd = self._open(rel)
        except FileNotFoundError:
            fd = None  # freed here (or gone): the phone's copy is what counts
        except OSError:
            return False  # a link, on the way or at the name: nothing behind it counts
        if fd is not None:
            try:
                if sha256_file(fd) != copy.sha256:
                    return False
            except OSError:
                return False
            held = self.confirm(rel).held
        else:
            evidence = self._freed.get(rel)
            held = evidence is not None and self.confirm_freed(rel, evidence).held
        if not held:
            self._reachable_now()  # the bytes here are right: is the phone there to ask?
        return held

    def _reachable_now(self) -> None:
        """Raise a transient ProviderError when the phone is not connected
        now: its copy was not shown held because it cannot be asked, not
        because it is wrong."""
        conn = self._client.connections().get(self.device_id)
        if conn is None or not conn.connected or conn.paused:
            since = format_time(self._client.last_seen(self.device_id))
            raise ProviderError(
                f"phone offline since {since}; its copy cannot be asked about now",
                provider=PROVIDER,
                transient=True,
            )

    def local_path(self, rel_path: str) -> Path | None:
        return self.folder_path / _check_rel(rel_path)

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        """Copy the local staging file's bytes to ``dest``, checking its hash."""
        h = hashlib.sha256()
        try:
            with open(self._open(_check_rel(copy.path)), "rb") as f, open(dest, "wb") as out:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except OSError as e:
            raise ProviderError(f"reading {copy.path} failed: {e}", provider=PROVIDER) from e
        if h.hexdigest() != copy.sha256:
            raise ProviderError(
                f"{copy.path} no longer hashes to {copy.sha256[:12]}…", provider=PROVIDER
            )

    def free_local(self, rel_path: str) -> Confirmation:
        """Delete the local staging copy so that the phone keeps its own,
        whatever the phone's folder settings; return the proof it still does.

        The path is first made ignored here (``.stignore``) and rescanned:
        Syncthing then records this machine's copy as invalid, and removing
        the file announces no deletion (a phone folder that does not ignore
        deletes keeps its copy: seen against the real pair). Only when the
        index shows that (this machine's record invalid, the phone holding
        the same valid version) is the file removed; otherwise the ignore line
        is taken back and ProviderError says why. A path that no plain
        ``.stignore`` line can name exactly is never freed.
        """
        rel = _check_rel(rel_path)
        if not self.prove_alive().alive:
            raise ProviderError(
                f"not freed: the phone did not prove alive this run ({self._reason()})",
                provider=PROVIDER,
            )
        line = ignores.exact_line(rel)
        if line is None:
            raise ProviderError(
                f"not freed: {rel} holds characters Syncthing's ignore patterns give a "
                "meaning to; its staging copy is kept",
                provider=PROVIDER,
            )
        # The folder is held open from here to the unlink: a folder swapped
        # meanwhile for a link (to the NAS's, say) has nothing deleted in it.
        try:
            folder, name = folder_of(self.folder_path, rel)
        except FileNotFoundError:
            folder = None
        except OSError as e:
            raise ProviderError(f"not freed: {self._linked(rel, e)}", provider=PROVIDER) from e
        try:
            return self._free(rel, line, folder, name if folder is not None else "")
        finally:
            if folder is not None:
                os.close(folder)

    def _free(self, rel: str, line: str, folder: int | None, name: str) -> Confirmation:
        if folder is None or not _is_file(name, folder):
            if rel not in ignores.ignored_paths(self.folder_path):
                raise ProviderError(f"not freed: {rel} is not here", provider=PROVIDER)
            return self._still_held(rel, "")  # freed before: check the phone's hold
        before = self.confirm(rel)
        if not before.held:
            raise ProviderError(f"not freed: {before.reason}", provider=PROVIDER)
        ignores.ensure(self.folder_path, line, ignores.FREED_COMMENT)
        try:
            self._client.scan(self.folder_id, rel)
            self._still_held(rel, before.evidence, local_invalid=True)
        except ProviderError:
            ignores.remove(self.folder_path, line)
            with contextlib.suppress(ProviderError):
                self._client.scan(self.folder_id, rel)
            raise
        try:
            os.unlink(name, dir_fd=folder)
        except OSError as e:
            raise ProviderError(f"freeing {rel} failed: {e}", provider=PROVIDER) from e
        self._client.scan(self.folder_id, rel)
        return self._still_held(rel, before.evidence, local_invalid=True)

    def release(self, rel_path: str) -> None:
        """Delete a conduit's settled file here; Syncthing announces the
        deletion and the phone (whose folder must not ignore deletes)
        removes its copy too. Missing already is fine.

        Never for a path this machine's Syncthing ignores (a freed copy's
        line, or a pattern of the person's own, ``/2022`` or ``*.JPG``):
        Syncthing announces nothing for it, so the file would go from here
        only and the phone would keep it for ever. Syncthing itself is
        asked (``ignored_here``), and asked again after the deletion that
        it announces one. The caller has checked the bytes are the ones it
        delivered."""
        rel = _check_rel(rel_path)
        if self.ignored_here(rel):
            raise ProviderError(
                f"{rel} is ignored by Syncthing here (.stignore); releasing it would not "
                "reach the phone, so it is kept; remove the pattern to let it go",
                provider=PROVIDER,
            )
        try:
            folder, name = folder_of(self.folder_path, rel)
        except FileNotFoundError:
            folder = None  # its folder is gone, and the file with it
        except OSError as e:
            raise ProviderError(f"not released: {self._linked(rel, e)}", provider=PROVIDER) from e
        if folder is not None:
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=folder)
            except OSError as e:
                raise ProviderError(f"releasing {rel} failed: {e}", provider=PROVIDER) from e
            finally:
                os.close(folder)
        self._client.scan(self.folder_id, rel)
        record = self._client.file(self.folder_id, rel)
        local = record.local if record is not None else None
        if local is not None and local.name and (local.invalid or not local.deleted):
            raise ProviderError(
                f"{rel} was deleted here but Syncthing announces no deletion of it "
                "(ignored here meanwhile?); the phone keeps its copy",
                provider=PROVIDER,
            )

    def ignored_here(self, rel_path: str) -> bool:
        """Does this machine's Syncthing ignore ``rel_path``? A line naming
        it exactly, or, asked of Syncthing after a rescan of the path (which
        reloads ``.stignore``): its record here marked invalid (indexed
        before it was ignored), or, the file here, no record at all while a
        pattern of the person's (as Syncthing read them) names it: Syncthing
        never indexes an ignored file."""
        rel = _check_rel(rel_path)
        if rel in ignores.ignored_paths(self.folder_path):
            return True
        self._client.scan(self.folder_id, rel)
        record = self._client.file(self.folder_id, rel)
        if record is not None and record.local.name:
            return record.local.invalid or record.local.ignored
        return (self.folder_path / rel).is_file() and bool(self._ignored_reason(rel))

    def _ignored_reason(self, rel: str) -> str:
        """Why ``rel`` is ignored here, for a person: the pattern that does
        (the first of Syncthing's own reading of ``.stignore`` to match it),
        ours for a freed copy; "" when no pattern ignores it."""
        found = ignores.pattern_for(self._client.ignores(self.folder_id), rel)
        if found is None or found.startswith("!"):
            return ""
        if found == ignores.exact_line(rel) and rel in ignores.decisive(self.folder_path):
            return f"{rel} is ignored here: freed (its line in .stignore is reconcile's)"
        return (
            f"{rel} is ignored by this machine's .stignore (your pattern {found!r}): "
            "Syncthing never sends it to the phone; remove or narrow that pattern"
        )

    def _still_held(self, rel: str, evidence: str, *, local_invalid: bool = False) -> Confirmation:
        record = self._client.file(self.folder_id, rel)
        glob = record.global_ if record else None
        ok = (
            record is not None
            and glob is not None
            and not glob.deleted
            and not glob.invalid
            and (not evidence or evidence_of(glob) == evidence)
            and (record.local.invalid or not local_invalid)
            and self._phone_holds(record.availability)
        )
        if not ok or glob is None:
            raise ProviderError(
                f"not freed: Syncthing does not show {rel} ignored here and held unchanged "
                "by the phone; the staging copy is kept",
                provider=PROVIDER,
            )
        evidence = evidence_of(glob)
        self._freed[rel] = evidence
        return Confirmation(True, "freed here; the phone holds its copy", evidence)

    def _keep_ignored(self, rel: str) -> None:
        """Put a freed path's ignore line back if it went (.stignore edited or
        lost), or back up into our block when a line of the person's came
        above it (a negation there un-ignores it): un-ignored, its absence
        here would be announced as a deletion."""
        if self._ignored is None:
            # only ours at the top hold against a pattern of the person's
            # put above them (a negation would un-ignore the path)
            self._ignored = set(ignores.decisive(self.folder_path))
        line = ignores.exact_line(rel)
        if rel not in self._ignored and line is not None:
            ignores.ensure(self.folder_path, line, ignores.FREED_COMMENT)
            # (every line of ours moved up with it)
            self._ignored = set(ignores.decisive(self.folder_path)) | {rel}

    def _phone_holds(self, availability: tuple[Holder, ...]) -> bool:
        return any(h.device_id == self.device_id and not h.from_temporary for h in availability)

    def _reason(self) -> str:
        return self._liveness.reason if self._liveness else "not checked"

    # ------------------------------------------------------------ status

    def status_summary(self) -> SyncthingStatus:
        """Connection, last seen and progress, for ``reconcile status``. Never raises
        for Syncthing being down: the problem is in ``problem``."""
        try:
            conn = self._client.connections().get(self.device_id)
            last_seen = self._client.last_seen(self.device_id)
            completion = self._client.completion(self.folder_id, self.device_id)
            state = self._client.folder_state(self.folder_id)
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
            folder_state=state,
            need_deletes=completion.need_deletes,
        )


def _is_file(name: str, folder: int) -> bool:
    """``name`` in ``folder`` is a regular file (a link is not)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _modified_ns(text: str) -> int | None:
    """Syncthing's ``modified`` (RFC 3339 with up to nanoseconds, in the
    time zone of the machine it runs on) as epoch nanoseconds; None when it
    is not one."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        return None
    try:
        base = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    except ValueError:
        return None
    return int(base.timestamp()) * 10**9 + int((m[2] or "").ljust(9, "0")[:9])
