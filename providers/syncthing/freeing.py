"""A delivered file's staging copy freed here once the phone holds it (its
path ignored first, so the phone keeps its copy), and a conduit's settled
file released from the phone (``release``)."""

from __future__ import annotations

import contextlib
import os
import stat

import attrs

from providers.base import Confirmation
from providers.filesystem import folder_of
from providers.syncthing import ignores
from providers.syncthing.client import PROVIDER
from providers.syncthing.confirmations import Confirmer
from providers.syncthing.folder import check_rel, evidence_of
from reconciler.errors import ProviderError


def _is_file(name: str, folder: int) -> bool:
    """``name`` in ``folder`` is a regular file (a link is not)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


@attrs.define(kw_only=True)
class Freer(Confirmer):
    """A delivered file's staging copy freed here once the phone holds it (its"""

    def free_local(self, rel_path: str) -> Confirmation:
        """Delete the local staging copy so that the phone keeps its own,
        whatever the phone's folder settings; return the proof it still does.

        The path is first made ignored here (``.stignore``) and rescanned:
        Syncthing then records this machine's copy as invalid, and removing
        the file announces no deletion (a phone folder that does not ignore
        deletes keeps its copy: seen against the real pair). Only when the
        index shows that (this machine's record invalid, the phone holding
        the same valid version) is the file removed; otherwise the ignore line
        is taken back and ProviderError says why (transient when the phone
        cannot be asked now). A path that no plain ``.stignore`` line can
        name exactly is never freed.

        Once the file is removed this never raises: it is freed, and the
        caller must record it so. The phone's hold, asked once more after
        the removal, comes back held, or not held with why it could not be
        shown (the phone went offline meanwhile), carrying the evidence
        confirmed just before, which the next run asks about again.
        """
        rel = check_rel(rel_path)
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
            # freed before: check the phone's hold
            return self._held_after(rel, "", "freed here before", local_invalid=False)
        before = self.confirm(rel)
        if not before.held:
            raise ProviderError(f"not freed: {before.reason}", provider=PROVIDER)
        ignores.ensure(self.folder_path, line, ignores.FREED_COMMENT)
        self._freed_paths().add(rel)
        transient = False
        try:
            self._client.scan(self.folder_id, rel)
            ready = self._still_held(rel, before.evidence, local_invalid=True)
        except ProviderError as e:
            ready, transient = Confirmation(False, str(e)), e.transient
        if not ready.held:
            ignores.remove(self.folder_path, line)
            self._freed_paths().discard(rel)
            with contextlib.suppress(ProviderError):
                self._client.scan(self.folder_id, rel)
            raise ProviderError(
                f"not freed: {ready.reason}; the staging copy is kept",
                provider=PROVIDER,
                transient=transient or bool(self._away()),  # gone away: the next run's matter
            )
        try:
            os.unlink(name, dir_fd=folder)
        except OSError as e:
            raise ProviderError(f"freeing {rel} failed: {e}", provider=PROVIDER) from e
        # From here the copy is freed whatever the phone answers: nothing
        # may raise, or the caller would not record it freed, and the next
        # run, finding neither the file nor a freed row, would send it again.
        return self._held_after(rel, before.evidence, "freed here")

    def take_back(self, rel_path: str) -> Confirmation:
        """Undo a freeing that stopped half-way, and ask ``confirm`` afresh.

        ``free_local`` writes the path's ignore line, rescans, and only then
        deletes the staging copy: a run killed between the two (or whose
        take-back of the line failed, or a rescan of Syncthing's own in
        between) leaves the staging copy here under a line of ours, ignored,
        so the phone's copy of it could never be shown held again. That is
        a freeing that did not go through: the line is taken back and the
        path rescanned, which makes this machine's record of the file valid
        again at the very version it had (seen against the real pair), and
        the freeing is planned again on this run's proof of the phone.

        Only for a path that is one of the tool's freed lines with a file
        here, and only by a caller that has checked the file's bytes are
        the delivery's (a file of other content, un-ignored, would be sent
        over the phone's copy); anything else is ``confirm``'s answer as is.
        """
        rel = check_rel(rel_path)
        line = ignores.exact_line(rel)
        if line is not None and self.freed_here(rel) and (self.folder_path / rel).is_file():
            ignores.remove(self.folder_path, line)
            self._freed_paths().discard(rel)
            self._client.scan(self.folder_id, rel)
        return self.confirm(rel)

    def _held_after(
        self, rel: str, evidence: str, done: str, *, local_invalid: bool = True
    ) -> Confirmation:
        """The phone's hold on a copy no longer here, asked after a rescan:
        held, or why it could not be shown this time (the next run's
        ``confirm_freed`` asks again, with ``evidence``). Never raises."""
        try:
            self._client.scan(self.folder_id, rel)
            answer = self._still_held(rel, evidence, local_invalid=local_invalid)
        except ProviderError as e:
            answer = Confirmation(False, str(e))
        if answer.held:
            return answer
        return Confirmation(
            False,
            f"{done}; the phone's hold on it was not shown afterwards ({answer.reason}); "
            "the next run asks again",
            evidence,
        )

    def _away(self) -> str:
        """Why the phone cannot be asked now (``_gone_now``: not connected,
        or its folder stopped there); "" if it can, and "" too when Syncthing
        does not answer (said by the error that follows)."""
        try:
            away = self._gone_now()
        except ProviderError:
            return ""
        if away:
            self._went_away(away)
        return away

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
        rel = check_rel(rel_path)
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
        rel = check_rel(rel_path)
        if rel in ignores.ignored_paths(self.folder_path):
            return True
        self._client.scan(self.folder_id, rel)
        record = self._client.file(self.folder_id, rel)
        if record is not None and record.local.name:
            return record.local.invalid or record.local.ignored
        return (self.folder_path / rel).is_file() and bool(self._ignored_reason(rel))

    def _still_held(self, rel: str, evidence: str, *, local_invalid: bool = False) -> Confirmation:
        """Does Syncthing show ``rel`` held by the phone, the global version
        valid and (given ``evidence``) the one confirmed, and (given
        ``local_invalid``) this machine's record ignored, so that no deletion
        is announced? Held False says why not."""
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
            away = self._away()
            return Confirmation(
                False,
                away
                or f"Syncthing does not show {rel} ignored here and held unchanged by the phone",
            )
        evidence = evidence_of(glob)
        self._freed[rel] = evidence
        self._shown_holding(rel, evidence)
        return Confirmation(True, "freed here; the phone holds its copy", evidence)
