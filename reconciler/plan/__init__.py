"""The planner: ``plan(desired, world, now) -> Plan``. Pure: no I/O, no clock,
no SQLite, so the same inputs always give the same plan.

For every item of every source, in order:

1. its original must be in the library (DownloadAsset for a remote source
   whose hash is not known yet, else CopyToLibrary),
2. every available backup target must hold a verified copy (CopyToTarget;
   a target that confirms later, the phone, is *waiting* until it does),
3. the library file must be encoded for the item's age tier (EncodeForTier,
   always from the original),
4. once enough verified copies exist, and the item is old enough, it leaves
   its source (RemoveFromSource) — within the per-run deletion budget.

The library copy never counts as a backup. Files are matched everywhere by
the SHA-256 of the original; the same content seen twice is handled once.
"""

from __future__ import annotations

import hashlib
import operator
import posixpath
from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from reconciler import sidecar
from reconciler.config import DesiredState, same_disk_ok
from reconciler.independence import (
    Groups,
    backup_groups,
    count_backups,
    disk_problems,
    group_of,
    phones_of,
)
from reconciler.layout import date_from_path, dated_path
from reconciler.media import is_archivable, media_kind
from reconciler.media.kinds import STILL_EXTENSIONS, extension
from reconciler.media.metadata import is_placeholder_date
from reconciler.model import (
    ORIGINAL_ROLE,
    ORIGINAL_TIER,
    SIDECAR_ROLE,
    Action,
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FileOrigin,
    FreeStagingCopy,
    LibraryFile,
    MediaFile,
    Note,
    Plan,
    ReleaseFromPhone,
    RemoveFromSource,
    SourceItem,
    SourceState,
    TargetState,
    World,
    WriteSidecar,
)
from reconciler.plan.budget import budget_reason, over_budget
from reconciler.plan.tiers import encoding_for, lighter_tier, tier_for

LIBRARY = "library"
#: How a settled encoding that failed on bad input starts its reason.
CANNOT_ENCODE = "cannot encode"
#: Why a copy reached through a mount onto the library's disk is not counted.
ON_THE_LIBRARYS_DISK = "its file is on the library's disk, reached through a mount"
_ORDER = {
    DownloadAsset: 0,
    CopyToLibrary: 1,
    CopyToTarget: 2,
    WriteSidecar: 3,
    EncodeForTier: 4,
    RemoveFromSource: 5,
    FreeStagingCopy: 6,
    ReleaseFromPhone: 7,
}


@attrs.define
class _Sidecar:
    """An item's sidecar as planned: its wanted digest (None until every
    file's hash is known) and the WriteSidecar action id per store."""

    digest: str | None
    name: str
    planned: dict[str, str] = attrs.field(factory=dict)


_SHA256 = operator.attrgetter("sha256")


def plan(desired: DesiredState, world: World, now: datetime) -> Plan:
    return _Planner(desired, world, now).run()


class _Planner:
    def __init__(self, desired: DesiredState, world: World, now: datetime) -> None:
        self.desired = desired
        self.world = world
        self.now = now
        self.library = world.library.index()
        self.targets = [t for t in world.targets if t.available]
        #: target -> the SHA-256s it holds (only asked whether it holds one)
        self.copies = {t.target_id: set(map(_SHA256, t.copies)) for t in self.targets}
        self.pending = {t.target_id: {d.sha256 for d in t.pending} for t in self.targets}
        self.same_disk_ok = same_disk_ok(desired)
        #: target -> its phone: folders of one phone are one backup
        self.phones = phones_of(desired.targets)
        self.groups = backup_groups(
            {t.target_id: t.device for t in self.targets},
            library=world.library.device,
            same_disk_ok=self.same_disk_ok,
            phones=self.phones,
        )
        #: target -> its copies reached through a mount below its root, each
        #: judged on its own file's disk (``TargetState.elsewhere``)
        self.elsewhere = {t.target_id: t.elsewhere for t in self.targets if t.elsewhere}
        #: Targets whose copies count for a removal: a phone counts only
        #: after proving this run that it receives files.
        self.counting = {t.target_id for t in self.targets if t.alive and t.role != "conduit"}
        #: conduit target id -> bytes planned for it this run, and what the
        #: byte budget held back (files, bytes)
        self.conduit_bytes: dict[str, int] = {}
        self.held_back: dict[str, tuple[int, int]] = {}
        self.actions: list[Action] = []
        self.notes: list[Note] = []
        #: file identity (sha256, or the origin while unknown) -> ids of the
        #: actions that produce its copies, per target
        self.copy_actions: dict[str, dict[str, str]] = {}
        self.handled: set[str] = set()
        #: target -> path -> size, built when a remote file's hash is unknown
        self.by_path: dict[str, dict[str, tuple[int, str]]] | None = None
        self.accounted: set[str] = set()
        #: an original's content (fingerprint, or SHA-256) -> the item whose
        #: sidecar takes the plain name beside it
        self.sidecar_claims: dict[str, str] = {}
        #: file identity -> the action that puts it into the library
        self.placing: dict[str, str] = {}
        self.removals = 0
        #: source id -> file names that more than one of its items carries
        self.shared_names: dict[str, set[str]] = {}
        self.removal_bytes = 0
        #: original sha256 -> the RemoveFromSource planned for its item
        self.removing: dict[str, str] = {}
        #: an encoded library file's current sha256 -> the file (made on need)
        self.renditions: dict[str, LibraryFile] | None = None
        #: (library clips removed with a still, library stills' stems), made on need
        self.live: tuple[set[str], set[str], set[str]] | None = None
        #: (source id, item key) of every item planned from its source
        self.listed: set[tuple[str, str]] = set()

    def run(self) -> Plan:
        for t in self.world.targets:
            if not t.available:
                self._note(
                    "unavailable", f"target {t.target_id}", f"{t.problem}; nothing is written there"
                )
            elif not t.alive:
                self._note(
                    "waiting",
                    f"target {t.target_id}",
                    f"not proven alive this run: {t.liveness}; none of its copies counts "
                    "for a removal",
                )
        if not self.world.library.available:
            self._note(
                "unavailable", "library", f"{self.world.library.problem}; nothing is imported"
            )
        for tid, why in disk_problems(self.groups).items():
            self._note("shared-disk", f"target {tid}", why)
        for tid, held in self.elsewhere.items():
            lost = sum(1 for sha in held if self._groups(sha)[0].get(tid) is None)
            if lost:
                self._note(
                    "shared-disk",
                    f"target {tid}",
                    f"its copies of {lost} {'file' if lost == 1 else 'files'} are reached "
                    "through a mount below its folder and are no backup (see each item); "
                    "they are left there, not copied again",
                )
        for source in self.world.sources:
            if not source.trusted:
                self._note(
                    "blocked" if source.reachable else "unavailable",
                    f"source {source.source_id}",
                    f"{source.problem}; nothing is removed from it this run",
                )
            for subject, reason in source.remarks:
                self._note("skipped", subject, reason)
            oldest = self._oldest(source)
            for item in source.items:
                if (
                    oldest is not None
                    and item.captured_at is not None
                    and item.captured_at < oldest
                ):
                    continue  # older than the source's max_age_days: not ours to handle
                if not self._removed_before(source, item):
                    self._item(source, item)
        self._library_items()
        self._free_staging()
        self._release_settled()
        actions = sorted(self.actions, key=lambda a: _ORDER[type(a)])
        return Plan(
            actions=tuple(actions),
            notes=tuple(self.notes),
            created_at=self.now,
            config_digest=self.desired.digest,
        )

    def _named_like(self, target_id: str, item: SourceItem, f: MediaFile) -> bool:
        """A file of this name, size and date is on the target, and its
        content is no other file the tool knows (an archive made by another
        tool, or by us before the state DB was lost)."""
        if self.by_path is None:
            self.by_path = {
                t.target_id: {c.path: (c.size, c.sha256) for c in t.copies} for t in self.targets
            }
            self.accounted = set(self.world.known_sha256.values()) | self.world.removed_sha256
        found = self.by_path[target_id].get(dated_path(item.captured_at, f.name))
        return found is not None and found[0] == f.size and found[1] not in self.accounted

    def _oldest(self, source: SourceState) -> datetime | None:
        """The earliest capture date the source's ``max_age_days`` admits."""
        days = getattr(self.desired.sources.get(source.source_id), "max_age_days", 0)
        return self.now - timedelta(days=days) if days else None

    def _note(self, status: str, subject: str, reason: str) -> None:
        self.notes.append(Note(status=status, subject=subject, reason=reason))

    def _removed_before(self, source: SourceState, item: SourceItem) -> bool:
        """Is this the very item the tool already removed (a listing that lags
        behind a soft delete)? Only a remote source's key is an identity (the
        asset's record ids), and only while everything it holds now is what
        was removed. A file the tombstone does not name makes the item live
        again: one whose hash is not known yet is content the tool never saw
        (an asset restored from Recently Deleted and edited: a new rendered
        edit, new adjustment data), and so is metadata whose sidecar is not
        the one removed with it (restored, then favourited). A folder path
        is no identity: a new photo at a path the tool emptied (a camera
        counter reset) is a new item, and the same bytes coming back are
        planned as already archived."""
        removed = self.world.tombstones.get((source.source_id, item.key))
        if removed is None or not source.remote:
            return False
        known = self.world.known_sha256
        shas: dict[str, str] = {}
        for f in item.files:
            sha = f.sha256 or known.get((source.source_id, item.key, f.ref))
            if sha is None or sha not in removed:
                return False
            shas[f.ref] = sha
        if item.metadata is None or not removed - set(shas.values()):
            return True  # no sidecar was removed with it (none was kept then)
        return sidecar.digest(item, shas) in removed

    # ------------------------------------------------------------- per item

    def _item(self, source: SourceState, item: SourceItem) -> None:
        self.listed.add((source.source_id, item.key))
        # A folder's relative path tells same-named files apart; a remote
        # source's key (asset ids) would tell a person nothing.
        label = item.files[0].name if source.remote or not item.files else item.key
        if source.remote and item.files:
            label = self._named(source, item, label)
        subject = f"{source.source_id}:{label}"
        unreadable = [f for f in item.files if f.problem]
        for f in unreadable:
            self._note("unreadable", subject, f"{f.problem}; the item stays; the next run retries")
        shas: list[str | None] = []
        for f in item.files:
            shas.append(None if f.problem else self._file(source, item, f, subject))
        sidecar = self._sidecar(source, item, shas, subject)
        if not unreadable:
            self._removal(source, item, shas, subject, sidecar)

    def _named(self, source: SourceState, item: SourceItem, name: str) -> str:
        """A remote item's file name, made unmistakable where another item of
        the source has a file of that name (two IMG_0002.JPG): its capture
        date and a short id of its key."""
        shared = self.shared_names.get(source.source_id)
        if shared is None:
            seen: dict[str, str] = {}
            shared = self.shared_names[source.source_id] = set()
            for other in source.items:
                for f in other.files:
                    if seen.setdefault(f.name, other.key) != other.key:
                        shared.add(f.name)
        if name not in shared:
            return name
        day = f"{item.captured_at:%Y-%m-%d}" if item.captured_at else "date unknown"
        return f"{name} ({day}, #{hashlib.sha256(item.key.encode()).hexdigest()[:8]})"

    def _file(
        self, source: SourceState, item: SourceItem, f: MediaFile, subject: str
    ) -> str | None:
        sha = f.sha256 or self.world.known_sha256.get((source.source_id, item.key, f.ref))
        # Where the file comes from matters only while its hash is unknown:
        # made then only (not once per file of a converged library).
        origin: FileOrigin | None = None
        ident = sha or f"{source.source_id}:{item.key}:{f.ref}"
        if ident in self.handled:
            return sha  # the same content again (a duplicate): already planned
        self.handled.add(ident)
        flabel = self._named(source, item, f.name) if source.remote else f.ref
        fsubject = f"{source.source_id}:{flabel}" if len(item.files) > 1 else subject
        if sha is not None and sha not in self.library:
            kept = self._rendition(sha)
            if kept is not None:
                self._brought_back(sha, f, item, fsubject, kept)
                return sha
        placed: tuple[str, ...] = ()
        if not self.world.library.available:
            if sha is None:
                return None
        elif sha is None:
            origin = FileOrigin(source_id=source.source_id, item_key=item.key, ref=f.ref)
            dl = DownloadAsset(
                id=f"download:{ident}",
                subject=fsubject,
                reason="not downloaded yet",
                origin=origin,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
            )
            self.actions.append(dl)
            placed = (dl.id,)
        elif sha not in self.library:
            lib = CopyToLibrary(
                id=f"library:{sha}",
                subject=fsubject,
                reason="not in the library",
                sha256=sha,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
                role=f.role,
            )
            self.actions.append(lib)
            placed = (lib.id,)
        if placed:
            self.placing[ident] = placed[0]
        self._targets(sha, origin, ident, f, item, fsubject, placed)
        if self.world.library.available:
            self._encode(sha, origin, ident, f, item, fsubject, placed)
        return sha

    def _rendition(self, sha: str) -> LibraryFile | None:
        """The library file these bytes were made for by encoding: its
        current bytes, or an earlier encoding of it (made for a tier the
        item has since left, remembered by the state DB). Asked only of
        content not in the library as an original, so a converged run builds
        nothing. An earlier encoding whose original the library no longer
        holds is left to be an original: nothing else keeps that item."""
        if self.renditions is None:
            self.renditions = {
                lf.sha256: lf for lf in self.world.library.files if lf.sha256 != lf.original_sha256
            }
        kept = self.renditions.get(sha)
        if kept is None and sha in self.world.renditions:
            kept = self.library.get(self.world.renditions[sha])
        return kept

    def _brought_back(
        self, sha: str, f: MediaFile, item: SourceItem, subject: str, kept: LibraryFile
    ) -> None:
        """A library file made by encoding, found in a source again (a person
        re-importing from the library, a phone that synced it), or an
        earlier encoding of it (a copy made while the item was in a lighter
        tier): it is that library file's content, not a new original.
        Copying it into the library would land on the very file it came
        from (the same bytes at the same name) and make it an original
        there, or beside it as a second original of one photo; encoding it
        would compress it twice, and race the encode of its true original
        onto one library file. So it goes nowhere in the library, is never
        encoded, and is archived as it is (its item leaves the source only
        once its own bytes have their copies). Its original lives on as the
        library's item, planned from the library."""
        earlier = kept.sha256 != sha
        what = "an earlier encoding of the library's own" if earlier else "the library's own"
        tier = f"now tier {kept.tier}" if earlier else f"tier {kept.tier}"
        self._note(
            "skipped",
            subject,
            f"{what} {kept.path} ({tier}, made from original {kept.original_sha256[:10]}): "
            "archived as it is, never compressed twice",
        )
        self._targets(sha, None, sha, f, item, subject, ())

    def _targets(
        self,
        sha: str | None,
        origin: FileOrigin | None,
        ident: str,
        f: MediaFile,
        item: SourceItem,
        subject: str,
        placed: tuple[str, ...],
    ) -> None:
        for t in self.targets:
            if sha is not None and (
                sha in self.copies[t.target_id] or sha in self.pending[t.target_id]
            ):
                continue
            if sha is None and self._named_like(t.target_id, item, f):
                # A file of this name, size and date is there already (an
                # archive made by another tool): this run's download proves
                # it by hash, and only a mismatch is copied, next run.
                continue
            if sha is None and not placed:
                continue  # cannot be fetched this run (library unavailable)
            if t.role == "conduit" and not self._conduit_takes(t, sha, f.size):
                continue
            action = CopyToTarget(
                id=f"copy:{t.target_id}:{ident}",
                subject=subject,
                reason=f"no verified copy on {t.target_id}",
                depends_on=placed if sha is None else (),
                target_id=t.target_id,
                sha256=sha,
                origin=origin,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
            )
            self.actions.append(action)
            # Made only when a copy is planned: a converged library of 100k
            # files would otherwise keep an empty dict per file.
            self.copy_actions.setdefault(ident, {})[t.target_id] = action.id

    def _encode(
        self,
        sha: str | None,
        origin: FileOrigin | None,
        ident: str,
        f: MediaFile,
        item: SourceItem,
        subject: str,
        placed: tuple[str, ...],
    ) -> None:
        tier = tier_for(self.desired.policy.tiers, item.captured_at, self.now)
        # Only originals are encoded. A Live Photo's video stays as it is
        # (re-encoding drops the timed metadata track that pairs it with its
        # still); a rendered edit is what the person made, a RAW alternative
        # and an edit's adjustment data are not pictures to compress.
        role = f.role
        if role == ORIGINAL_ROLE and sha in self.library:
            # Content the library knows as something else of an item (another
            # item's rendered edit: a duplicate) is kept as it is: encoding it
            # would compress that item's edit too. A source's clip alone whose
            # library copy is a Live Photo's video (its still left the source
            # first: a run killed between the two removals) is that video
            # still: the library knows the pair.
            kept = self.library[sha]
            if kept.role not in ("", ORIGINAL_ROLE, SIDECAR_ROLE):
                role = kept.role
            elif media_kind(f.name) == "video" and self._is_live_video(kept):
                role = "live_video"
        want = encoding_for(tier if role == ORIGINAL_ROLE else None, f.name)
        current = self.library[sha].tier if sha in self.library else ORIGINAL_TIER
        if want.tier == current:
            return
        settled = self.world.settled.get((sha, want.tier)) if sha else None
        if (
            settled is not None
            and not settled.startswith(CANNOT_ENCODE)
            and lighter_tier(self.desired.policy.tiers, want.tier, current)
        ):
            # "Not worth it" for a lighter tier, while the library holds a
            # heavier tier's encode: that verdict weighed an encode against
            # some other file (the original at import, or, by an earlier
            # version, this compressed one); the photo must not stay at the
            # heavier quality for good. The applier weighs it against the
            # original, and brings the original back if it is not worth it.
            settled = None
        if settled is not None:
            if settled.startswith(CANNOT_ENCODE):
                self._note("error", subject, f"{settled}; the library keeps the file as it is")
            return
        if item.captured_at is not None:
            years = (self.now - item.captured_at) / timedelta(days=365.25)
            age = f"captured {item.captured_at:%Y-%m-%d}, {years:.1f} years ago"
        else:
            age = "capture date unknown"
        setting = (
            f"quality {want.quality}"
            if want.quality
            else f"crf {want.crf}"
            if want.crf
            else "original"
        )
        self.actions.append(
            EncodeForTier(
                id=f"encode:{ident}",
                subject=subject,
                reason=f"tier {want.tier} ({setting}), library has {current}",
                detail=age,
                depends_on=placed,
                sha256=sha,
                origin=origin,
                name=f.name,
                tier=want.tier,
                quality=want.quality,
                crf=want.crf,
            )
        )

    def _library_items(self) -> None:
        """Items that left their sources live on in the library: their copies
        are still kept (and repaired) and they still age into heavier tiers.
        Each file stays what it was in its item (the library remembers:
        ``LibraryFile.role``), so only an original is ever encoded; and the
        item's sidecar is kept on every target, as its files are."""
        sidecars: list[LibraryFile] = []
        for lf in self.world.library.files:
            sha = lf.original_sha256
            if sha in self.handled or not is_archivable(lf.path):
                continue  # planned with its source item, or junk (.DS_Store)
            if lf.role == SIDECAR_ROLE:
                sidecars.append(lf)  # once every file of its item is planned
                continue
            if sidecar.is_sidecar(lf.path):
                # Another program's .xmp (darktable's, beside a library file),
                # never copied: on a target it would take the name of the
                # item's own sidecar. Or one not read yet (it could not be).
                continue
            self.handled.add(sha)
            f, item = self._library_item(lf, lf.size)
            subject = f"{LIBRARY}:{lf.path}"
            self._targets(sha, None, sha, f, item, subject, ())
            self._unconfirmed(sha, subject)
            self._encode(sha, None, sha, f, item, subject, ())
        for lf in sidecars:
            self._library_sidecar(lf)
        self._lost_library_files()

    def _library_item(self, lf: LibraryFile, size: int) -> tuple[MediaFile, SourceItem]:
        """A library file as the one file of an item of its own, ``size``
        bytes (its original's, when it is put back)."""
        role = lf.role or ORIGINAL_ROLE
        if role == ORIGINAL_ROLE and media_kind(lf.path) == "video" and self._is_live_video(lf):
            role = "live_video"
        sha = lf.original_sha256
        f = MediaFile(
            name=posixpath.basename(lf.path), size=size, ref=lf.path, role=role, sha256=sha
        )
        # The recorded capture time, never the folder's midnight: an item a
        # second from a tier boundary must stay in the tier it was given.
        when = lf.captured_at or date_from_path(lf.path)
        if when is not None and is_placeholder_date(when):
            when = None  # recorded by an older version, which took 1970 as a date
        return f, SourceItem(source_id=LIBRARY, key=lf.path, files=(f,), captured_at=when)

    def _lost_library_files(self) -> None:
        """Library files gone (deleted, a disk replaced) whose items live
        only in the library: the library holds every item (its promise), so
        each is put back where it was from a target's verified copy, as what
        it was in its item, then encoded for its tier as any placed
        original; and the item's sidecar with it. An item still in a source
        is placed from there (``_item``), its sidecar written from it."""
        lost = [lf for lf in self.world.library.lost if lf.original_sha256 not in self.handled]
        if not lost:
            return
        wanted = {lf.original_sha256 for lf in lost}
        sizes = {c.sha256: c.size for t in self.targets for c in t.copies if c.sha256 in wanted}
        written = {
            a.sha256 for a in self.actions if isinstance(a, WriteSidecar) and a.store_id == LIBRARY
        }
        for lf in lost:
            sha = lf.original_sha256
            if sha in self.handled or sha in written:
                continue  # two rows of one content; a sidecar written anew
            self.handled.add(sha)
            subject = f"{LIBRARY}:{lf.path}"
            is_sidecar = lf.role == SIDECAR_ROLE
            if sha not in sizes:
                if not is_sidecar:  # (a sidecar rewritten since is on no target as it was)
                    self._gone_nowhere(subject)
                continue
            f, item = self._library_item(lf, sizes[sha])
            put = CopyToLibrary(
                id=f"library:{sha}",
                subject=subject,
                reason="gone from the library; put back from a target's copy",
                sha256=sha,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
                role=f.role,
                path=lf.path,
            )
            self.actions.append(put)
            if not is_sidecar:
                self._targets(sha, None, sha, f, item, subject, ())
                self._encode(sha, None, sha, f, item, subject, (put.id,))

    def _gone_nowhere(self, subject: str) -> None:
        """A library file gone that no target read this run holds: waiting
        while some target was not read (unplugged) or is a phone (whose copy
        may be there with none left here); else lost, which only a person
        can mend (a backup of their own), and said as an error."""
        if self.world.targets and all(
            t.available and t.kind == "filesystem" for t in self.world.targets
        ):
            why = (
                "gone from the library, and no target holds it any more; "
                "nothing here can put it back"
            )
            self._note("lost", subject, why)
        else:
            why = "gone from the library; put back once a target holding it is available"
            self._note("waiting", subject, why)

    def _library_sidecar(self, lf: LibraryFile) -> None:
        """The sidecar of an item that lives only in the library, on a target
        that lacks it (deleted there, a disk replaced): written there again,
        from the library's, beside the item's original. The applier writes it
        where the item's sidecar is (one per item and store, an older one
        rewritten in place), and never over another program's file or
        another item's sidecar. A conduit is left out (observe's
        ``_sidecars_missing``); an item still in a source has its sidecar
        planned from there (``_sidecar``)."""
        owner = self.world.library_sidecars.get(lf.sha256)
        if owner is None:
            return  # on every target (or it names no file of its item)
        whose = (owner.source_id, owner.item_key)
        if whose in self.listed:
            return
        self.listed.add(whose)  # a second sidecar of the item in the library is not copied
        plain, tagged = sidecar.owner_names(owner, "")
        name = tagged if lf.path.endswith(tagged[len(owner.original_name) :]) else plain
        original = owner.original_sha256
        for t in self.targets:
            tid = t.target_id
            if t.role == "conduit" or self._holds(tid, lf.sha256):
                continue
            placing = self.copy_actions.get(original, {}).get(tid)
            if placing is None and not self._holds(tid, original):
                continue  # nothing to sit beside there
            self.actions.append(
                WriteSidecar(
                    id=f"sidecar:{tid}:{owner.source_id}:{owner.item_key}",
                    subject=f"{tid}:{name}",
                    reason="sidecar missing or out of date (its item lives only in the library)",
                    depends_on=(placing,) if placing else (),
                    store_id=tid,
                    source_id=owner.source_id,
                    item_key=owner.item_key,
                    sha256=lf.sha256,
                    name=name,
                )
            )

    def _unconfirmed(self, sha: str, subject: str) -> None:
        """Say so where a live phone does not hold an item that lives only in
        the library now: its copy there is on its way, or was changed or lost
        on the phone, and does not count (nothing else would speak of it: no
        removal waits on it)."""
        for t in self.targets:
            if t.alive and sha in self.pending[t.target_id]:
                self._note(
                    "waiting",
                    subject,
                    f"{t.target_id} has not confirmed its copy this run (still on its way, "
                    "or changed or lost on the device); it does not count",
                )

    def _is_live_video(self, lf: LibraryFile) -> bool:
        """Is this library video a Live Photo's video? It is never encoded:
        that drops the timed metadata track pairing it with its still. While
        its item was in a source, the source said so; once the item left, the
        tool's record of removing it does: a video removed with a still in
        one item. That record is missing when the item left the source on
        its own, or with a lost state DB: then a still of the same name in
        the same folder says so. Names are compared without the collision
        tag (``IMG_1~<sha>.MOV``): the second of two same-named pairs of a
        day is placed as ``IMG_1~<sha of the still>.JPG`` and
        ``IMG_1~<sha of the video>.MOV``."""
        if self.live is None:
            self.live = self._live_index()
        removed_with_still, stems, unrecorded = self.live
        sha = lf.original_sha256
        if sha in self.world.removed_sha256:
            # Removed alone: an ordinary clip, unless its still left the
            # source with no record of it (a run killed between the two
            # removals, the next one taking the clip alone).
            return sha in removed_with_still or _pairing_stem(lf) in unrecorded
        return _pairing_stem(lf) in stems

    def _live_index(self) -> tuple[set[str], set[str], set[str]]:
        """Made on first need (most runs have no library video to ask about):
        the clips a removal took out with a still, the stills' stems, and the
        stems of stills no removal of the tool's names."""
        clips: set[str] = set()
        stills: set[str] = set()
        still_stems: set[str] = set()
        unrecorded: set[str] = set()
        for lf in (*self.world.library.files, *self.world.library.lost):
            kind = media_kind(lf.path)
            if kind == "video":
                clips.add(lf.original_sha256)
            elif extension(lf.path).lower() in STILL_EXTENSIONS:
                stills.add(lf.original_sha256)
                still_stems.add(_pairing_stem(lf))
                if lf.original_sha256 not in self.world.removed_sha256:
                    unrecorded.add(_pairing_stem(lf))
        removed_with_still: set[str] = set()
        for shas in self.world.tombstones.values():
            # (an item's tombstone also holds its sidecar's digest: not a still)
            if len(shas) > 1 and not shas.isdisjoint(stills):
                removed_with_still |= shas & clips
        return removed_with_still, still_stems, unrecorded

    # ------------------------------------------------------------- removal

    def _sidecar(
        self, source: SourceState, item: SourceItem, shas: list[str | None], subject: str
    ) -> _Sidecar | None:
        """The item's XMP sidecar, wanted beside its original in the library
        and on every available target: WriteSidecar where the current one
        (by digest) is missing. Its content needs every file's hash; while one
        is learned this run, the writes depend on those downloads."""
        if item.metadata is None or not self.world.library.available:
            return None
        name = sidecar.name_for(item)
        # Two items beside one original (a duplicate sharing it, or the same
        # file imported twice, each dated its own way) must not take turns
        # rewriting one sidecar: each store keeps the original once, so the
        # claim is by its content (iCloud's fingerprint: known before the
        # download), not by a dated path. The first listed keeps the plain
        # name, the others say whose they are. The applier has the last word:
        # it never replaces another item's sidecar (one already removed
        # included), and writes this one under the item's other name then.
        first, whose = item.files[0], f"{source.source_id}:{item.key}"
        claim = f"fp:{first.size}:{first.fingerprint}" if first.fingerprint else shas[0] or whose
        if self.sidecar_claims.setdefault(claim, whose) != whose:
            name = sidecar.name_for(item, unique=True)
        known = {f.ref: sha for f, sha in zip(item.files, shas, strict=True) if sha}
        wanted = sidecar.digest(item, known) if len(known) == len(item.files) else None
        idents = [
            sha or f"{source.source_id}:{item.key}:{f.ref}"
            for f, sha in zip(item.files, shas, strict=True)
        ]
        # Rendering needs every hash: wait for the downloads that learn them.
        learning = {
            self.placing[i]
            for i, sha in zip(idents, shas, strict=True)
            if not sha and i in self.placing
        }
        out = _Sidecar(digest=wanted, name=name)
        conduits = {t.target_id: t for t in self.targets if t.role == "conduit"}
        for store_id in [LIBRARY, *(t.target_id for t in self.targets)]:
            if wanted is not None and self._holds(store_id, wanted):
                continue
            conduit = conduits.get(store_id)
            if conduit is not None and not self._conduit_wants_sidecar(
                conduit, wanted, idents, shas
            ):
                continue
            if store_id == LIBRARY:
                placing = self.placing.get(idents[0])
            else:
                placing = self.copy_actions.get(idents[0], {}).get(store_id)
            deps = tuple(sorted(learning | ({placing} if placing else set())))
            action = WriteSidecar(
                id=f"sidecar:{store_id}:{source.source_id}:{item.key}",
                subject=f"{store_id}:{name}",
                reason="metadata not written yet"
                if wanted is None
                else "sidecar missing or out of date",
                depends_on=deps,
                store_id=store_id,
                source_id=source.source_id,
                item_key=item.key,
                sha256=wanted,
                name=name,
            )
            self.actions.append(action)
            out.planned[store_id] = action.id
        return out

    def _holds(self, store_id: str, sha: str) -> bool:
        if store_id == LIBRARY:
            return sha in self.library
        return sha in self.copies[store_id] or sha in self.pending[store_id]

    def _removal(
        self,
        source: SourceState,
        item: SourceItem,
        shas: list[str | None],
        subject: str,
        sidecar: _Sidecar | None = None,
    ) -> None:
        removal = self.desired.policy.removal
        if not removal.enabled or not self._removable(source) or not source.trusted:
            return
        if item.captured_at is None:
            self._note("waiting", subject, "capture date unknown; kept in the source")
            return
        age = self.now - item.captured_at
        if age < timedelta(0):
            self._note(
                "waiting",
                subject,
                f"captured in the future ({item.captured_at:%Y-%m-%d}; a wrong camera clock?); "
                "kept in the source",
            )
            return
        if age <= timedelta(days=removal.keep_recent_days):
            return
        if item.metadata is not None and item.metadata.unremovable:
            self._note("skipped", subject, f"{item.metadata.unremovable}; kept in the source")
            return
        need = self.desired.policy.copies
        deps: list[str] = []
        for f, sha in zip(item.files, shas, strict=True):
            ident = sha or f"{source.source_id}:{item.key}:{f.ref}"
            verified = [
                t.target_id
                for t in self.targets
                if sha
                and (
                    (sha in self.copies[t.target_id] and t.target_id in self.counting)
                    or (self._trusted(t.target_id) and sha in t.delivered)
                )
            ]
            planned = self.copy_actions.get(ident, {})
            # A planned copy counts only on a store that verifies at write
            # time; the phone's copy counts once Syncthing confirms it.
            coming = [tid for tid, _ in planned.items() if self._confirms_on_write(tid)]
            groups, not_counted = self._groups(sha, verified)
            if count_backups(verified + coming, groups) < need:
                waiting = [
                    t.target_id for t in self.targets if sha and sha in self.pending[t.target_id]
                ]
                why = f"{count_backups(verified, groups)} of {need} verified copies"
                if count_backups(verified, groups) < len(verified):
                    why += " (copies on one disk count once)"
                if not_counted:
                    why += f"; not counted: {', '.join(not_counted)}"
                if waiting:
                    why += f"; waiting for {', '.join(waiting)} to confirm"
                delivering = [tid for tid in planned if not self._confirms_on_write(tid)]
                if delivering:
                    why += f"; {', '.join(delivering)} must confirm the copy made this run"
                dead = [
                    t.target_id
                    for t in self.targets
                    if sha
                    and sha in self.copies[t.target_id]
                    and not t.alive
                    and t.role != "conduit"
                ]
                if dead:
                    why += f"; {', '.join(dead)} not proven alive this run"
                self._note("waiting", subject, f"{why}; kept in the source")
                return
            deps.extend(planned[tid] for tid in coming)
        if sidecar is not None:
            # The sidecar is part of the item: its metadata exists nowhere
            # else once the item has left the source.
            verified = [
                t.target_id
                for t in self.targets
                if sidecar.digest and sidecar.digest in self.copies[t.target_id]
            ]
            coming = [
                tid for tid in sidecar.planned if tid != LIBRARY and self._confirms_on_write(tid)
            ]
            groups, not_counted = self._groups(sidecar.digest, verified)
            if count_backups(verified + coming, groups) < need:
                why = f"{sidecar.name}: {count_backups(verified, groups)} of {need} verified copies"
                if not_counted:
                    why += f"; not counted: {', '.join(not_counted)}"
                self._note("waiting", subject, f"{why}; kept in the source")
                return
            deps.extend(sidecar.planned[tid] for tid in coming)
            if LIBRARY in sidecar.planned:
                # Not a backup, but the library's sidecar is the one its
                # targets' copies are kept from once the item is gone: it
                # must be the item's last word before the item leaves.
                deps.append(sidecar.planned[LIBRARY])
        size = item.size
        if over_budget(removal, self.removals, self.removal_bytes, size):
            self._note("waiting", subject, budget_reason(removal))
            return
        self.removals += 1
        self.removal_bytes += size
        for sha in shas:
            if sha:
                self.removing[sha] = f"remove:{source.source_id}:{item.key}"
        days = age / timedelta(days=1)
        self.actions.append(
            RemoveFromSource(
                id=f"remove:{source.source_id}:{item.key}",
                subject=subject,
                reason=(
                    f"archived ({need} verified copies), older than "
                    f"keep_recent_days ({removal.keep_recent_days})"
                ),
                detail=f"{days:.0f} days old",
                depends_on=tuple(deps),
                source_id=source.source_id,
                item_key=item.key,
                files=item.files,
                size=size,
            )
        )

    def _groups(self, sha: str | None, holding: Iterable[str] = ()) -> tuple[Groups, list[str]]:
        """The backup each target's copy of ``sha`` makes: its target's, by
        its root's disk; but a copy reached through a mount below the root
        goes by its own file's disk, as the removal gate judges it. With why
        those of ``holding`` that count for nothing do not (worded as the
        gate's refusal). Without such a mount: the targets' groups, as is."""
        found = [
            (tid, judged)
            for tid, held in self.elsewhere.items()
            if sha and (judged := held.get(sha)) is not None
        ]
        if not found:
            return self.groups, []
        groups = dict(self.groups)
        for tid, (device, why) in found:
            groups[tid] = (
                None
                if why
                else group_of(
                    tid,
                    device,
                    library=self.world.library.device,
                    same_disk_ok=self.same_disk_ok,
                    phones=self.phones,
                )
            )
        reasons = {tid: why or ON_THE_LIBRARYS_DISK for tid, (_, why) in found}
        not_counted = [
            f"{tid} ({reasons[tid]})" for tid in holding if tid in reasons and groups[tid] is None
        ]
        return groups, not_counted

    def _free_staging(self) -> None:
        """Free this machine's copy of what the phone holds, once its item has
        left the source (or leaves it in this plan) — when configured."""
        for t in self.targets:
            cfg = self.desired.targets.get(t.target_id)
            if not getattr(cfg, "delete_local_copy", False) or not t.alive:
                continue  # not configured, or the phone's hold cannot be proven now
            for c in t.copies:
                if c.path in t.freed:
                    continue
                removal = self.removing.get(c.sha256)
                if removal is None and c.sha256 not in self.world.removed_sha256:
                    continue
                self.actions.append(
                    FreeStagingCopy(
                        id=f"free:{t.target_id}:{c.path}",
                        subject=f"{t.target_id}:{c.path}",
                        reason="the phone holds it and its item left the source",
                        depends_on=(removal,) if removal else (),
                        target_id=t.target_id,
                        sha256=c.sha256,
                        path=c.path,
                    )
                )

    # ------------------------------------------------------------- conduit

    def _trusted(self, target_id: str) -> bool:
        """A conduit whose deliveries count as copies (Google Photos, trusted
        without verification, by the person's explicit choice)."""
        cfg = self.desired.targets.get(target_id)
        return bool(getattr(cfg, "role", "") == "conduit" and getattr(cfg, "count_as_copy", False))

    def _conduit_takes(self, t: TargetState, sha: str | None, size: int) -> bool:
        """Deliver to a conduit? Never twice; and within its byte budget, first
        come first served: once a file is held back, every later one waits
        behind it, so newer small files cannot keep the phone from draining
        and starve a large one. One file always goes when the phone holds
        none of the tool's unsettled files: a file larger than the whole
        budget goes then, alone."""
        if sha is not None and sha in t.delivered:
            return False  # released, or removed by the phone: never sent again
        budget = getattr(self.desired.targets.get(t.target_id), "max_bytes_on_phone", None)
        used = t.on_phone_bytes + self.conduit_bytes.get(t.target_id, 0)
        if budget is not None and (
            t.target_id in self.held_back or (used and used + size > budget)
        ):
            files, nbytes = self.held_back.get(t.target_id, (0, 0))
            self.held_back[t.target_id] = (files + 1, nbytes + size)
            return False
        self.conduit_bytes[t.target_id] = self.conduit_bytes.get(t.target_id, 0) + size
        return True

    def _conduit_wants_sidecar(
        self, t: TargetState, wanted: str | None, idents: list[str], shas: list[str | None]
    ) -> bool:
        """A sidecar travels to a conduit with its item's files, as they do:
        never once delivered (released or not), and only while every file of
        the item is on the phone or goes there this run (so within the budget
        they were let through by; a sidecar is a few kilobytes)."""
        if wanted is not None and wanted in t.delivered:
            return False
        tid = t.target_id
        return all(
            tid in self.copy_actions.get(ident, {})
            or (sha is not None and (sha in self.copies[tid] or sha in self.pending[tid]))
            for ident, sha in zip(idents, shas, strict=True)
        )

    def _release_settled(self) -> None:
        """A conduit's files leave the phone once settled, and what it remarked
        on (or held back) is said."""
        for t in self.targets:
            for subject, reason in t.remarks:  # any phone's (an ignore pattern)
                self._note("waiting", subject, reason)
            if t.role != "conduit":
                continue
            if t.target_id in self.held_back:
                files, nbytes = self.held_back[t.target_id]
                budget = getattr(self.desired.targets.get(t.target_id), "max_bytes_on_phone", 0)
                self._note(
                    "waiting",
                    f"target {t.target_id}",
                    f"{files} file(s) ({nbytes} bytes) held back: the phone holds "
                    f"{t.on_phone_bytes} of max_bytes_on_phone {budget} bytes; they follow as "
                    "earlier files settle",
                )
            days = float(getattr(self.desired.targets.get(t.target_id), "settle_days", 7.0))
            for c in t.copies:
                since = t.delivered.get(c.sha256)
                if since is None or self.now - since < timedelta(days=days):
                    continue
                self.actions.append(
                    ReleaseFromPhone(
                        id=f"release:{t.target_id}:{c.path}",
                        subject=f"{t.target_id}:{c.path}",
                        reason=(
                            f"delivered {since:%Y-%m-%d}, settled for {days:g} days "
                            "(Google Photos had time to back it up)"
                        ),
                        target_id=t.target_id,
                        sha256=c.sha256,
                        path=c.path,
                    )
                )

    def _removable(self, source: SourceState) -> bool:
        cfg = self.desired.sources.get(source.source_id)
        return bool(getattr(cfg, "remove_after_archive", True))

    def _confirms_on_write(self, target_id: str) -> bool:
        return next(t.kind for t in self.targets if t.target_id == target_id) != "syncthing"


def _pairing_stem(lf: LibraryFile) -> str:
    """A library path without its extension and its collision tag (the
    tag is made from the file's original, see ``layout.collision_path``)."""
    stem = posixpath.splitext(lf.path)[0]
    tag = f"~{lf.original_sha256[:10]}"
    return stem[: -len(tag)] if stem.endswith(tag) else stem


def fingerprint(world: World) -> str:
    """A digest of what the plan was computed from, for saved plans (its
    ``basis``). Taken only for a plan that is written out: it reads every
    file of every store again (6% of a no-op plan of 100k items), and a
    plan only shown, or applied at once, has no use for it."""
    h = hashlib.sha256()
    for s in world.sources:
        h.update(f"S{s.source_id}|{s.trusted}\n".encode())
        for item in s.items:
            files = ";".join(f"{f.ref}:{f.size}:{f.sha256}" for f in item.files)
            h.update(f"{item.key}|{item.version}|{files}\n".encode())
    for t in world.targets:
        # The same bytes as one joined line, fed in pieces: a target of 100k
        # copies would otherwise make a 6.5 MB string (and its encoding).
        h.update(f"T{t.target_id}|{t.available}|".encode())
        held = sorted(c.sha256 for c in t.copies)
        for i in range(0, len(held), 4096):
            h.update((b"," if i else b"") + ",".join(held[i : i + 4096]).encode())
        h.update(b"\n")
    for f in sorted(world.library.files, key=operator.attrgetter("path")):
        h.update(f"L{f.path}|{f.original_sha256}|{f.tier}|{f.sha256}|{f.role}\n".encode())
    return h.hexdigest()
