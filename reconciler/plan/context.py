"""What the planner reads and what it has planned so far (``Context``), with
the look-ups every part of it shares: notes, which copies count together
(one disk, one phone), which stores hold a file."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import attrs

from reconciler.config import DesiredState, same_disk_ok
from reconciler.independence import Groups, backup_groups, group_of, phones_of
from reconciler.layout import dated_path
from reconciler.model import (
    ORIGINAL_TIER,
    Action,
    FileCopy,
    LibraryFile,
    MediaFile,
    Note,
    SourceItem,
    SourceState,
    TargetState,
    World,
)

LIBRARY = "library"


#: How a settled encoding that failed on bad input starts its reason.
CANNOT_ENCODE = "cannot encode"


#: What marks, in its name, a copy of the library's encoded file archived in
#: place of an original that is lost (``IMG_1.JPG`` -> ``IMG_1.encoded.JPG``).
ENCODED_TAG = ".encoded"


#: Why a copy reached through a mount onto the library's disk is not counted.
ON_THE_LIBRARYS_DISK = "its file is on the library's disk, reached through a mount"


@attrs.define
class PlannedSidecar:
    """An item's sidecar as planned: its wanted digest (None until every
    file's hash is known) and the WriteSidecar action id per store."""

    digest: str | None
    name: str
    planned: dict[str, str] = attrs.field(factory=dict)


SHA256 = operator.attrgetter("sha256")


def here(t: TargetState) -> Iterator[FileCopy]:
    """The copies of ``t`` this run can read: not a phone's freed ones,
    which are on the phone only (its staging copy here is gone). What a
    copy or an encode reads bytes from is asked of these alone."""
    return (c for c in t.copies if c.path not in t.freed)


class Context:
    """The planner's inputs, what it has planned so far, and shared look-ups."""

    def __init__(self, desired: DesiredState, world: World, now: datetime) -> None:
        self.desired = desired
        self.world = world
        self.now = now
        self.library = world.library.index()
        self.targets = [t for t in world.targets if t.available]
        #: target -> the SHA-256s it holds (only asked whether it holds one)
        self.copies = {t.target_id: set(map(SHA256, t.copies)) for t in self.targets}
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
        for t in self.targets:
            if t.not_a_backup:
                self.groups[t.target_id] = None  # what it will hold counts for nothing too
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
        #: SHA-256 -> the first source file holding that content as something
        #: never encoded (a Live Photo's video, an edit, a RAW alternative),
        #: with its source and item: the content is planned as that, whichever
        #: item lists it first (made on first need, ``_protector``)
        self.protectors: dict[str, tuple[SourceState, SourceItem, MediaFile]] | None = None
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
        #: (library clips removed with a still, the pairing stems of the stills
        #: the library holds or this run places there), made on need
        self.live: tuple[set[str], set[str]] | None = None
        #: (source id, item key) of every item planned from its source
        self.listed: set[tuple[str, str]] = set()
        #: the content this run can read outside the library's originals
        #: (``_readable``), made on first need
        self.readable: set[str] | None = None
        #: originals nothing here holds this run -> lost (every store read,
        #: ``_unsure``), each said once (``_original_missing``)
        self.missing: dict[str, bool] = {}
        #: the contents of the library's sidecars of the tool's (made on need)
        self.sidecar_contents: frozenset[str] | None = None
        #: how many source files' content is unknown this run (``_unsure``),
        #: counted on first need
        self.unknown_content: int | None = None

    def _note(self, status: str, subject: str, reason: str) -> None:
        self.notes.append(Note(status=status, subject=subject, reason=reason))

    def _unsure(self, *shas: str) -> str:
        """Why a content (any of ``shas``: an original, or its encode) that
        nothing read this run can read here may still be held somewhere:
        a target not read (unplugged, its listing failed), a target that
        lists it but not on this machine (a phone's copy, a freed one, one
        on its way), a source that could not be listed, a file that could
        not be read, or a source file whose content is not known yet (an
        iCloud asset not downloaded, a file not hashed: it may be that
        very content). "" when every store was read and none holds it: it
        is lost. Judged per content from what was read: a phone read this
        run lists every copy it holds and every path freed here, so content
        it lists neither way is not on it."""
        if not self.world.targets:
            return "no target is configured"
        for t in self.world.targets:
            if not t.available:
                return f"target {t.target_id} was not read"
            if any(s in self.copies[t.target_id] or s in self.pending[t.target_id] for s in shas):
                return f"target {t.target_id} lists it, but not as a file this run can read"
        for s in self.world.sources:
            if not s.trusted:
                return f"source {s.source_id} could not be listed"
        if self.world.unread:
            return f"{self.world.unread} file(s) could not be read"
        if self.unknown_content is None:
            self.unknown_content = self._unknown_content()
        if self.unknown_content:
            return (
                f"{self.unknown_content} source file(s) not read yet (not downloaded, or "
                "not hashed) may hold it"
            )
        return ""

    def _unknown_content(self) -> int:
        """How many source files this run does not know the content of, of
        those a run will read: not an item older than its source's
        ``max_age_days`` (never downloaded, never hashed: waiting on it, a
        lost original's only copy would wait for ever)."""
        known = self.world.known_sha256
        return sum(
            1
            for source in self.world.sources
            for oldest in (self._oldest(source),)
            for item in source.items
            if oldest is None or item.captured_at is None or item.captured_at >= oldest
            for f in item.files
            if f.problem or not (f.sha256 or known.get((source.source_id, item.key, f.ref)))
        )

    def _original_here(self, sha: str) -> bool:
        """Can this run read the bytes of ``sha``, as the applier looks for
        them (``Originals``): the library's file while it is still the
        original, a source's file, a target's copy on this machine (not a
        phone's freed one), or a library file holding those very bytes (an
        encode, archived as itself). Asked only of what is about to be
        planned, so a converged run builds nothing."""
        kept = self.library.get(sha)
        if kept is not None and kept.sha256 == sha and kept.tier == ORIGINAL_TIER:
            return True
        if self.readable is None:
            self.readable = self._readable()
        return sha in self.readable

    def _readable(self) -> set[str]:
        """Every content this run can read besides the library's originals."""
        found = {lf.sha256 for lf in self.world.library.files}
        known = self.world.known_sha256
        for source in self.world.sources:
            for item in source.items:
                for f in item.files:
                    sha = f.sha256 or known.get((source.source_id, item.key, f.ref))
                    if sha and not f.problem:
                        found.add(sha)
        for t in self.targets:
            found.update(c.sha256 for c in here(t))
        return found

    def _original_missing(self, sha: str, subject: str) -> bool:
        """Say, once for the original ``sha`` that nothing read this run
        holds, why what needs its bytes (a copy to a target, an encode for a
        tier, a Live Photo's video put back as it was) is not planned: it
        waits while something may still hold it (``_unsure``: a target not
        read, a phone's copy, a source not listed, a source file whose
        content is not known yet); with every store read and every source
        file's content known it is lost, which only a person can mend (a
        backup of their own), as a library file gone is (``_gone_nowhere``).
        Planned, it would fail on every run. True when lost: the library's
        encoded file is then archived in its place, so said lost only when
        it truly is (a download planned this run may bring it back)."""
        lost = self.missing.get(sha)
        if lost is not None:
            return lost
        why = self._unsure(sha)
        lost = not why
        self.missing[sha] = lost
        if lost:
            self._note(
                "lost",
                subject,
                "its original is on no store any more, every store read; nothing here "
                "can bring it back: the library's encoded file is archived in its place, "
                f"its name tagged {ENCODED_TAG}, and never encoded again",
            )
        else:
            self._note(
                "waiting",
                subject,
                f"its original is on no store read this run ({why}); what needs it (a copy "
                "to a target, an encode) waits until it can be read",
            )
        return lost

    def _oldest(self, source: SourceState) -> datetime | None:
        """The earliest capture date the source's ``max_age_days`` admits."""
        days = getattr(self.desired.sources.get(source.source_id), "max_age_days", 0)
        return self.now - timedelta(days=days) if days else None

    def _holds(self, store_id: str, sha: str) -> bool:
        if store_id == LIBRARY:
            return sha in self.library
        return sha in self.copies[store_id] or sha in self.pending[store_id]

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

    def _trusted(self, target_id: str) -> bool:
        """A conduit whose deliveries count as copies (Google Photos, trusted
        without verification, by the person's explicit choice)."""
        cfg = self.desired.targets.get(target_id)
        return bool(getattr(cfg, "role", "") == "conduit" and getattr(cfg, "count_as_copy", False))

    def _removable(self, source: SourceState) -> bool:
        cfg = self.desired.sources.get(source.source_id)
        return bool(getattr(cfg, "remove_after_archive", True))

    def _confirms_on_write(self, target_id: str) -> bool:
        return next(t.kind for t in self.targets if t.target_id == target_id) != "syncthing"
