"""The phone's shared folder as this machine sees it: its settings and
fields, whether it is usable (``availability``), the liveness proof, the
files it holds here, and what Syncthing says of them (confirmations of the
phone, the ignore lines that keep a freed copy on it)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
import time
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import attrs

from providers.base import Availability, Closing, Hasher, Liveness, LocalTree
from providers.filesystem import LINKED, folder_of, hashed_tree, linked_folder
from providers.syncthing import ignores, liveness
from providers.syncthing.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    PROVIDER,
    DeviceConfig,
    FileVersion,
    FolderConfig,
    Holder,
    SyncthingClient,
)
from providers.syncthing.ignores import TMP_DIR
from providers.syncthing.liveness import (
    CANARY,
    DEFAULT_LIVENESS_TIMEOUT,
    PAUSED_HERE,
    LocalFault,
    prove_alive,
    unreachable,
)
from reconciler.errors import ProviderError
from reconciler.hashing import open_to_read
from reconciler.independence import confirmed_by
from reconciler.layout import MAX_NAME_BYTES
from reconciler.model import FileCopy

STIGNORE_LINE = ignores.TMP_LINE


# Syncthing's own files at the folder root (and our canary): never listed.
_ROOT_SPECIALS = frozenset({".stfolder", ".stignore", ".stversions", TMP_DIR, CANARY})


CHUNK = 1 << 20

#: How long (seconds) a fresh canary made to test a phone's "no" covers the
#: "no"s of deliveries not received yet after it: a run asking about many
#: makes one such canary a second at most, not one per file.
RECHECK_S = 1.0


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
    #: What is paused in this machine's Syncthing ("device", or the folder
    #: as ``folder 'id'``); "" when nothing is. Resumed here, not on the phone.
    paused_here: str = ""


def _is_syncthing_temp(name: str) -> bool:
    return name.endswith(".tmp") and name.startswith((".syncthing.", "~syncthing~"))


def _is_syncthing_own(name: str) -> bool:
    """Syncthing's own files in a shared folder (its dot-folders are skipped anyway)."""
    return name in _ROOT_SPECIALS or _is_syncthing_temp(name)


def check_rel(rel_path: str) -> str:
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


def numbered(p: PurePosixPath, sha256: str, n: int) -> str:
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


def _modified(text: str) -> tuple[int, int] | None:
    """Syncthing's ``modified`` (RFC 3339 with up to nanoseconds, in the
    time zone of the machine it runs on) as epoch nanoseconds, with the
    offset it was written with (seconds); None when it is not one."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        return None
    try:
        base = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    except ValueError:
        return None
    offset = base.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return int(base.timestamp()) * 10**9 + int((m[2] or "").ljust(9, "0")[:9]), seconds


def same_mtime(text: str, mtime_ns: int) -> bool:
    """Is Syncthing's ``modified`` text the time ``mtime_ns``, exactly?

    Its REST API gives a file's time only as that text, in its local time
    with the offset cut to whole minutes (Go's RFC 3339). An offset with
    seconds (local mean time, before a zone took a standard offset: Europe/
    Amsterdam until 1937 was +00:19:32) so reads up to a minute off, for
    ever. Only that loss is forgiven, and only where a zone really had such
    an offset then: this machine's (Syncthing's, as a rule), whose offset's
    seconds are put back and the time must then match to the nanosecond;
    else, Syncthing running in another zone, some zone of the tz database
    whose offset at ``mtime_ns``, cut to minutes, is the one written, and
    that explains the difference to the second. Never a time otherwise
    apart, nor one apart by seconds no zone's offset had."""
    parsed = _modified(text)
    if parsed is None:
        return False
    at, written = parsed
    offset = _local_offset(mtime_ns)
    if offset % 60 and written == _cut(offset):
        return at - (offset - written) * 10**9 == mtime_ns
    if at == mtime_ns:
        return True
    lost, nanos = divmod(at - mtime_ns, 10**9)
    return (
        not nanos
        and 0 < abs(lost) < 60
        and _cut(written + lost) == written
        and written + lost in _zone_offsets(mtime_ns // 10**9)
    )


def _cut(offset: int) -> int:
    """An offset (seconds) cut to whole minutes toward zero, as Go writes it."""
    return int(offset / 60) * 60


def _local_offset(mtime_ns: int) -> int:
    """This machine's UTC offset (seconds) at ``mtime_ns``; 0 when unknown."""
    try:
        return time.localtime(mtime_ns // 10**9).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return 0


def _zone_offsets(second: int) -> frozenset[int]:
    """Every zone's UTC offset (seconds) at that epoch second, with seconds
    (the others are written exactly). Asked only where a time is off by
    whole seconds under a minute: rare, and a few milliseconds each."""
    try:
        at = datetime.fromtimestamp(second, UTC)
    except (OverflowError, OSError, ValueError):
        return frozenset()
    found = set()
    for zone in _zones():
        offset = at.astimezone(zone).utcoffset()
        if offset is not None and offset.total_seconds() % 60:
            found.add(int(offset.total_seconds()))
    return frozenset(found)


@functools.cache
def _zones() -> tuple[zoneinfo.ZoneInfo, ...]:
    zones = []
    for name in sorted(zoneinfo.available_timezones()):
        with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            zones.append(zoneinfo.ZoneInfo(name))
    return tuple(zones)


def share_problem(folder: FolderConfig, device: DeviceConfig) -> str:
    """Why this machine's Syncthing does not give the phone the very bytes
    of the folder's files now, said as a person fixes it; "" when it does.

    A phone the folder is shared with as an untrusted device (an encryption
    password set, or the device marked untrusted) receives only ciphertext:
    this machine decrypts the phone's index, so Syncthing still lists the
    phone as holding every file, yet no photo is there to restore (nor for
    Google Photos to back up)."""
    where = f"Syncthing folder {folder.id!r}"
    phone = device.device_id
    if phone not in folder.device_ids:
        return f"{where} is not shared with the phone ({phone}); share it"
    if phone in folder.encrypted_for or device.untrusted:
        return (
            f"{where} is shared with the phone as an untrusted device (encrypted): the phone "
            "holds only ciphertext, no copy of the photos; share it without an encryption "
            "password"
        )
    if folder.paused:
        return f"{where} is paused here (in this machine's Syncthing); resume it"
    if device.paused:
        return PAUSED_HERE
    if folder.type == "receiveonly":
        return f"{where} is receive-only here; it must be send-only or send-receive"
    if folder.type == "receiveencrypted":
        return (
            f"{where} is receive-encrypted here: this machine holds only ciphertext; it must "
            "be send-only or send-receive"
        )
    return ""


@attrs.define(kw_only=True)
class PhoneFolder(Closing):
    """The shared folder and Syncthing's view of it (see ``target.SyncthingTarget``).

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
    #: The tool's freed paths, read once per run (see ``_freed_paths``).
    _ignored: set[str] | None = attrs.field(init=False, default=None, repr=False)
    #: Held while a delivery chooses its name and takes it (see ``put``).
    _naming: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    #: This machine's short device id, asked once (see ``_made_here``).
    _own_short_id: str = attrs.field(init=False, default="", repr=False)
    #: Why the last proof failed on this machine's side (``LocalFault``):
    #: the target is unavailable then (``availability``); "" when it did not.
    _local_fault: str = attrs.field(init=False, default="", repr=False)
    #: A path and evidence the phone was last shown holding this run: its
    #: folder works while it still does (see ``_folder_stopped``).
    _holding: tuple[str, str] | None = attrs.field(init=False, default=None, repr=False)
    #: When (``time.monotonic``) a canary was last made to test a "no".
    _rechecked_at: float | None = attrs.field(init=False, default=None, repr=False)

    kind = "syncthing"

    def __attrs_post_init__(self) -> None:
        self._client = SyncthingClient(url=self.url, api_key=self.api_key, timeout=self.timeout)

    def close(self) -> None:
        self._client.close()

    @property
    def identity(self) -> str:
        """Which phone and folder a recorded confirmation was made by."""
        return confirmed_by(self.device_id, self.folder_id)

    def availability(self) -> Availability:
        """Usable only if Syncthing answers, knows the folder and the phone,
        shares one with the other so that the phone gets the very bytes,
        neither is paused here, the folder is really here, and nothing on
        this machine keeps it from working: Syncthing here has it in no
        error (an ``.stignore`` it cannot load stops every scan), and this
        run's liveness proof met no fault here (a full disk: ``LocalFault``).
        Such a fault is a person's to fix here, never a phone to wait for."""
        if self._local_fault:
            return Availability(available=False, reason=self._local_fault)
        try:
            folder = self._client.folder(self.folder_id)
            device = self._client.device(self.device_id)
            own_id = self._client.my_id()
        except ProviderError as e:
            # Down, key rejected, unknown folder or device: each error's
            # message already says which and what to do.
            return Availability(available=False, reason=str(e))
        if self.device_id == own_id:
            return Availability(
                available=False,
                reason=f"{self.device_id} is this machine's own device id; use the phone's",
            )
        problem = share_problem(folder, device)
        if problem:
            return Availability(available=False, reason=problem)
        where = f"Syncthing folder {self.folder_id!r}"
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
        return self._working_here(where)

    def _working_here(self, where: str) -> Availability:
        """Does this machine's Syncthing run the folder? Its ignore patterns
        are loaded afresh (a hand-edited ``.stignore`` it cannot parse stops
        every scan, the canary's too), and its state here is no error."""
        try:
            self._client.ignores(self.folder_id)
            state = self._client.folder_state(self.folder_id)
        except ProviderError as e:
            return Availability(available=False, reason=f"{e}; fix it on this machine")
        if state.startswith("error"):
            return Availability(
                available=False,
                reason=f"{where} is in error in this machine's Syncthing ({state}); fix it here",
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
            self._liveness = self._round_trip()
        return self._liveness

    def _round_trip(self) -> Liveness:
        """A canary round trip now; a fault of this machine's (``LocalFault``)
        is kept in ``_local_fault``, which makes the target unavailable."""
        try:
            live = prove_alive(
                self._client,
                folder_path=self.folder_path,
                folder_id=self.folder_id,
                device_id=self.device_id,
                timeout=self.liveness_timeout,
                ensure_tmp=self._ensure_ignored,
            )
        except LocalFault as e:
            self._local_fault = str(e)
            return Liveness(alive=False, reason=str(e))
        self._local_fault = ""
        return live

    @property
    def local_tree(self) -> LocalTree:
        return LocalTree(self.folder_path, skip=_is_syncthing_own)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        """Every delivered file, hashed. Delivered is not held: see ``confirm``."""
        tree = self.local_tree  # the walk ahead's tree is this very one
        return hashed_tree(self.id, tree.root, hasher, tree.skip)

    def local_path(self, rel_path: str) -> Path | None:
        return self.folder_path / check_rel(rel_path)

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        """Copy the local staging file's bytes to ``dest``, checking its hash."""
        h = hashlib.sha256()
        try:
            with open(self._open(check_rel(copy.path)), "rb") as f, open(dest, "wb") as out:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except OSError as e:
            raise ProviderError(f"reading {copy.path} failed: {e}", provider=PROVIDER) from e
        if h.hexdigest() != copy.sha256:
            raise ProviderError(
                f"{copy.path} no longer hashes to {copy.sha256[:12]}…", provider=PROVIDER
            )

    def _open(self, rel: str) -> int:
        """``rel`` opened for reading without following a symbolic link, on
        the way or at its name (OSError then). The caller closes it."""
        folder, name = folder_of(self.folder_path, rel)
        try:
            return open_to_read(name, dir_fd=folder, follow=False)
        finally:
            os.close(folder)

    def _ensure_ignored(self) -> Path:
        """Keep ``/.reconcile-tmp`` in .stignore (other lines are the user's);
        return that folder (``ignores.staging``)."""
        ignores.ensure(self.folder_path, STIGNORE_LINE, ignores.TMP_COMMENT)
        return ignores.staging(self.folder_path)

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
        return st.st_size != local.size or not same_mtime(local.modified, st.st_mtime_ns)

    def _reachable_now(self, *, since: float | None = None) -> None:
        """Raise a transient ProviderError when the phone cannot be asked
        now (``_gone_now``): its copy was not shown held because it cannot
        be asked, not because it is wrong. (Asked after a "no": a phone that
        went away meanwhile drops out of Syncthing's availability before
        this says so.)"""
        away = self._gone_now(since=since)
        if away:
            self._went_away(away)
            raise ProviderError(
                f"{away}; its copy cannot be asked about now (the next run asks again)",
                provider=PROVIDER,
                transient=True,
            )

    def _gone_now(self, *, since: float | None = None) -> str:
        """Why the phone proven alive this run cannot be asked now ("" when
        it can): not connected, or connected with its folder no longer
        working there (``_folder_stopped``)."""
        return unreachable(self._client, self.device_id) or self._folder_stopped(since)

    def _folder_stopped(self, since: float | None) -> str:
        """Why the phone's folder no longer works there ("" when it does).

        The connection says nothing of it: a folder paused on the phone, or
        no longer shared there, drops the phone from every file's
        availability here while the connection stays up (seen against the
        real pair; this machine's API shows no remote folder state). So a
        "no" is believed only while the phone still holds a file it was
        shown holding this run, or else once a fresh canary reached it
        (since ``since``, a ``time.monotonic`` time: now when None); one
        that does not arrive makes the phone unavailable, not its copy
        wrong. A caller whose "no" changes nothing recorded (a delivery not
        received yet) gives an earlier ``since``: a run asking about many
        makes one canary per ``RECHECK_S`` at most, not one per file."""
        if self._liveness is None:
            return ""  # never asked to prove it: the caller's "no" is the index's
        if not self._liveness.alive:
            return self._liveness.reason  # not shown alive now: its "no" proves nothing
        if self._holding is not None and self._still_holding(*self._holding):
            return ""
        if since is not None and self._rechecked_at is not None and self._rechecked_at >= since:
            return ""
        self._proved_at = self._rechecked_at = time.monotonic()
        self._liveness = self._round_trip()
        return "" if self._liveness.alive else self._liveness.reason

    def _still_holding(self, rel: str, evidence: str) -> bool:
        record = self._client.file(self.folder_id, rel)
        return (
            record is not None
            and evidence_of(record.global_) == evidence
            and self._phone_holds(record.availability)
        )

    def _shown_holding(self, rel: str, evidence: str) -> None:
        """The phone was shown holding ``rel`` at ``evidence`` just now."""
        self._holding = (rel, evidence)

    def _went_away(self, away: str) -> None:
        """The phone shown alive this run is away now: this run's proof no
        longer holds (``prove_alive`` says so until it is made again), so
        nothing of it counts and the caller treats it as a phone not alive,
        waiting, rather than one that lost its copies."""
        if self._liveness is not None and self._liveness.alive:
            self._liveness = Liveness(alive=False, reason=f"{away} (went away during this run)")

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

    def _no_link_to(self, rel: str) -> None:
        """Refuse ``rel`` if a folder on its way is a symbolic link: Syncthing
        never sends what is behind one, and a write, read or deletion through
        it would reach outside the shared folder (a folder linked to the
        NAS's would have a freed copy delete the NAS's file)."""
        link = self._link_on_the_way(rel)
        if link is not None:
            raise ProviderError(link, provider=PROVIDER)

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

    def _keep_ignored(self, rel: str) -> None:
        """Put a freed path's ignore line back if it went (.stignore edited or
        lost), or back up into our block when a line of the person's came
        above it (a negation there un-ignores it): un-ignored, its absence
        here would be announced as a deletion."""
        line = ignores.exact_line(rel)
        if rel not in self._freed_paths() and line is not None:
            ignores.ensure(self.folder_path, line, ignores.FREED_COMMENT)
            # (every line of ours moved up with it)
            self._ignored = set(ignores.decisive(self.folder_path)) | {rel}

    def _freed_paths(self) -> set[str]:
        """The paths the tool's own lines ignore (``ignores.decisive``): read
        once per run, and kept so by every such line this run writes or
        takes back. Only ours at the top hold against a pattern of the
        person's put above them (a negation would un-ignore the path)."""
        if self._ignored is None:
            self._ignored = set(ignores.decisive(self.folder_path))
        return self._ignored

    def _made_here(self, version: FileVersion) -> bool:
        """Was ``version`` made by this machine (its ``modifiedBy``: the short
        id, a device id's first group)? A freed path's version made here is
        the tool's delivery: nothing else is announced from here for it once
        its line ignores it, and a change made on the phone is the phone's."""
        if not self._own_short_id:
            self._own_short_id = self._client.my_id().split("-", 1)[0]
        return bool(version.modified_by) and version.modified_by == self._own_short_id

    def _phone_holds(self, availability: tuple[Holder, ...]) -> bool:
        return any(h.device_id == self.device_id and not h.from_temporary for h in availability)

    def _reason(self) -> str:
        return self._liveness.reason if self._liveness else "not checked"

    def status_summary(self) -> SyncthingStatus:
        """Connection, last seen and progress, for ``reconcile status``. Never raises
        for Syncthing being down: the problem is in ``problem``."""
        try:
            conn = self._client.connections().get(self.device_id)
            last_seen = self._client.last_seen(self.device_id)
            folder = self._client.folder(self.folder_id)
            if folder.paused:  # Syncthing answers "no such folder" for its progress then
                return SyncthingStatus(
                    reachable=True,
                    connected=False,
                    last_seen=last_seen,
                    completion=None,
                    need_items=None,
                    need_bytes=None,
                    paused_here=f"folder {self.folder_id!r}",
                )
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
            paused_here="device" if conn is not None and conn.paused else "",
        )
