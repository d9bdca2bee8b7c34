"""Whether the phone holds a delivered file now, by what Syncthing here
knows of the phone's copy (``confirm``, ``confirm_freed``), and the
removal gate's re-check of a copy at the moment of a removal (``verify``)."""

from __future__ import annotations

import contextlib
import time

import attrs

from providers.base import Confirmation
from providers.syncthing.client import DbFile
from providers.syncthing.deliveries import Deliverer
from providers.syncthing.folder import RECHECK_S, check_rel, evidence_of
from providers.syncthing.liveness import unreachable
from reconciler.errors import ProviderError
from reconciler.hashing import sha256_file
from reconciler.model import FileCopy


@attrs.define(kw_only=True)
class Confirmer(Deliverer):
    """Whether the phone holds a delivered file now, by what Syncthing here"""

    def confirm(self, rel_path: str) -> Confirmation:
        """Is the phone proven to hold this exact file? Per file, from the index.

        Proof: the phone is in the file's ``availability`` (not from a
        temporary), the global version is not a deletion, and it is the
        version and size this machine has. Anything short of that is
        *waiting* (held False, with the reason), not an error. Syncthing
        itself unreachable raises ProviderError. (Whether the phone's folder
        works at all is ``prove_alive``'s question, not this one's.)

        A phone proven alive this run that cannot be asked now (gone offline
        since, paused here) raises a transient ProviderError instead of a
        "no" about its copy, as ``verify`` does: it is unavailable, and no
        caller may take its silence for a copy removed or lost there.
        """
        rel = check_rel(rel_path)
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
        answer = self._phone_answer(rel, record)
        ignored = record.local.invalid or record.local.ignored  # a fact of this machine's
        if not answer.held and not ignored and self._liveness is not None and self._liveness.alive:
            # (a delivery's "no" unconfirms at most: a canary made for
            # another "no" a moment ago covers it, see ``_folder_stopped``)
            self._reachable_now(since=time.monotonic() - RECHECK_S)
        return answer

    def _phone_answer(self, rel: str, record: DbFile) -> Confirmation:
        """What the index, as it stands, says of the phone's copy of ``rel``."""
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
            self._shown_holding(rel, evidence_of(glob))
            return Confirmation(True, "the phone holds this version", evidence_of(glob))
        if holder is not None:
            return Confirmation(False, "the phone is still receiving it")
        away = unreachable(self._client, self.device_id)
        if away:
            return Confirmation(False, f"{away}; waiting")
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

        A "no" is given only while the phone is connected: one that cannot
        be asked now (offline, paused here) raises a transient
        ProviderError, as it leaves Syncthing's availability the moment it
        goes. The caller forgets the freed copy on a "no" and sends the file
        again: that must never happen for a phone that merely went away.
        """
        rel = check_rel(rel_path)
        self._keep_ignored(rel)
        answer = self._freed_answer(rel, evidence)
        if not answer.held:
            self._reachable_now()
        return answer

    def _freed_answer(self, rel: str, evidence: str) -> Confirmation:
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
        self._shown_holding(rel, evidence)
        return Confirmation(True, "the phone still holds the freed copy", evidence)

    def freed_here(self, rel_path: str) -> bool:
        """Is ``rel_path`` one of the tool's freed paths: a line of ours in
        ``.stignore`` (under the freed comment, at the top) names it? Those
        lines are never removed, so they outlive a lost or restored state
        database: the tool freed a copy there, and the phone may hold it."""
        return check_rel(rel_path) in self._freed_paths()

    def recognise_freed(self, rel_path: str, size: int, evidence: str) -> Confirmation:
        """Does the phone hold the tool's freed copy at ``rel_path``, of
        ``size`` bytes, where no record of its freeing is left (the state
        database lost, or restored from a backup older than the freeing)?

        Proof, as ``confirm_freed``'s: the path is one of the tool's freed
        lines (``freed_here``), the global version is valid and the phone
        holds it (not from a temporary), with ``evidence`` (a confirmation
        recorded before) that very version and size; without it, a version
        of ``size`` bytes made by this machine (``_made_here``). Once the
        path was ignored here nothing more is announced from here for it,
        and a deletion or change on the phone makes the phone's version the
        global one: so the version made here is the delivery the tool freed
        there, whose content the caller's record names. Held carries the
        evidence, recorded as a new confirmation.

        A "no" is given only while the phone is connected, as
        ``confirm_freed``'s: one that cannot be asked now raises a transient
        ProviderError, never a "no" the caller would send the file again on.
        """
        rel = check_rel(rel_path)
        if not self.freed_here(rel):
            return Confirmation(False, f"{rel} is not freed here (no line of reconcile's names it)")
        answer = self._unrecorded_answer(rel, size, evidence)
        if not answer.held:
            self._reachable_now()
        return answer

    def _unrecorded_answer(self, rel: str, size: int, evidence: str) -> Confirmation:
        record = self._client.file(self.folder_id, rel)
        if record is None:
            return Confirmation(False, f"Syncthing no longer knows {rel}")
        glob = record.global_
        if glob.deleted or glob.invalid:
            return Confirmation(False, "the phone deleted or changed its copy")
        if glob.size != size:
            return Confirmation(False, "the phone announces another size than the one delivered")
        if evidence and evidence_of(glob) != evidence:
            return Confirmation(False, "the phone announces another version than the one confirmed")
        if not evidence and not self._made_here(glob):
            return Confirmation(
                False, "the phone announces a version not made here (changed there)"
            )
        if not self._phone_holds(record.availability):
            return Confirmation(False, "the phone no longer announces this version")
        found = evidence_of(glob)
        self._freed[rel] = found
        self._shown_holding(rel, found)
        return Confirmation(True, "the phone holds the copy freed here", found)

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
        asked = time.monotonic()
        rel = check_rel(copy.path)
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
            # the bytes here are right: is the phone there to ask? (a canary
            # made for this very "no", by ``confirm``, answers it)
            self._reachable_now(since=asked)
        return held
