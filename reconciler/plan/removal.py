"""When an item leaves its source: enough independent verified copies of the
whole item (its sidecar too), old enough, within the run's deletion budget;
and an item the tool already removed, listed again, is not planned twice."""

from __future__ import annotations

from datetime import timedelta

from reconciler import sidecar
from reconciler.independence import count_backups
from reconciler.model import SIDECAR_ROLE, RemoveFromSource, SourceItem, SourceState
from reconciler.plan.budget import budget_reason, over_budget
from reconciler.plan.conduit import ConduitPlanner
from reconciler.plan.context import LIBRARY, PlannedSidecar


class RemovalPlanner(ConduitPlanner):
    """Removals from a source, and items already removed."""

    def _a_sidecar_of_ours(self, shas: list[str | None]) -> bool:
        """Is a file of the item one of the library's sidecars of the tool's
        (a copy of one put in an import folder)? Its copies on the targets
        are that item's sidecar, replaced in place when its metadata changes
        (the one file ever replaced on a target): counted as backups of this
        file, the file was removed and its bytes later rewritten everywhere."""
        if self.sidecar_contents is None:
            self.sidecar_contents = frozenset(
                lf.sha256 for lf in self.world.library.files if lf.role == SIDECAR_ROLE
            )
        return any(sha in self.sidecar_contents for sha in shas if sha)

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

    def _removal(
        self,
        source: SourceState,
        item: SourceItem,
        shas: list[str | None],
        subject: str,
        sidecar: PlannedSidecar | None = None,
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
        if self._a_sidecar_of_ours(shas):
            self._note(
                "skipped",
                subject,
                "its bytes are a sidecar this tool writes for an item, whose copies on the "
                "targets are rewritten whenever that item's metadata changes: no copy of it "
                "lasts; kept in the source",
            )
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
                if count_backups(verified, groups) < len(verified) - len(not_counted):
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
