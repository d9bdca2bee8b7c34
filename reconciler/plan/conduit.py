"""A conduit phone (``role = "conduit"``): what it takes this run (its byte
budget), whether it gets a sidecar, and when a settled delivery is released
from it; and the staging copies freed once the phone holds them."""

from __future__ import annotations

from datetime import timedelta

from reconciler.model import FreeStagingCopy, ReleaseFromPhone, TargetState
from reconciler.plan.context import Context


class ConduitPlanner(Context):
    """The conduit's rules and the staging copies' freeing."""

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
