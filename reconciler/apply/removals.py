"""What leaves a store: an item removed from its source through the removal
gate (RemoveFromSource), a staging copy freed (FreeStagingCopy), a conduit's
settled file released from the phone (ReleaseFromPhone)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta

from providers.base import ConfirmingStore, Store
from providers.folder import SetAsideError
from reconciler.apply.encodes import Encoder
from reconciler.apply.outcomes import Effects, Skip
from reconciler.config import SyncthingTarget as SyncthingTargetConfig
from reconciler.errors import InUseError, ProviderError
from reconciler.gate import GateRefused
from reconciler.hashing import open_to_read, sha256_file
from reconciler.model import FreeStagingCopy, ReleaseFromPhone, RemoveFromSource
from reconciler.plan.budget import budget_reason, over_budget


def holds_bytes(store: Store, rel: str, sha256: str) -> bool:
    """The store's file at ``rel`` is there and hashes to ``sha256`` now
    (read without following a link at its name)."""
    path = store.local_path(rel)
    if path is None:
        return False
    try:
        return sha256_file(open_to_read(path, follow=False)) == sha256
    except OSError:
        return False


class Remover(Encoder):
    """RemoveFromSource, FreeStagingCopy, ReleaseFromPhone."""

    def _remove(self, a: RemoveFromSource) -> tuple[str, str, Effects]:
        removal = self.desired.policy.removal
        if a.source_id in self.throttled:
            raise Skip("skipped", f"{a.source_id} is throttling this run; next run")
        if over_budget(removal, self.removed, self.removed_bytes, a.size):
            raise Skip("waiting", budget_reason(removal))
        if self.removed and removal.pace_seconds:
            # Before the gate, never between it and the removal: the copies
            # it reads must be there at the very moment of the removal (a
            # target emptied during the pause would otherwise not be seen).
            self.sleep(removal.pace_seconds)
        source = self.conn.sources[a.source_id]
        item = self.items[(a.source_id, a.item_key)]
        # The item's own files, by identity, before the source moves any aside.
        side = self.gate.source_side(a)
        shas: list[str] = []

        def proven() -> None:
            # The gate, asked by the source at the last moment before each
            # deletion it tries: after its slow steps (a clip moved aside and
            # hashed, the asset read again) and after every retry's wait,
            # so the copies it reads are there when the bytes go.
            shas[:] = self.gate.check(a, side)

        try:
            self._retry(f"remove {a.subject}", a.source_id, lambda: source.remove(item, proven))
            if not shas:  # gone from the source before: archived all the same?
                proven()
        except GateRefused as e:
            raise Skip("skipped" if e.unavailable else "refused", str(e)) from e
        except InUseError as e:
            raise Skip("waiting", str(e)) from e
        except BaseException as e:
            # A file could not be put back under its name (the card turned
            # read-only), or may not have been (the run abandoned in the
            # middle): every apply looks for it until it is back.
            if isinstance(e, SetAsideError) or not isinstance(e, Exception):
                with contextlib.suppress(sqlite3.Error, OSError):  # the message says where
                    self.db.want_restore(a.source_id)
            raise
        finally:
            # The path is emptied (or held new content the source refused to
            # remove): whatever is there next is read afresh, never taken
            # from the cache by its size and mtime.
            self.db.forget_hashes(str(p) for p in side.files)
        self.removed += 1
        self.removed_bytes += a.size
        self.removed_sha256.update(shas)
        self.db.record_tombstone(a.source_id, a.item_key, shas, a.size, self.run_id)
        count = self.db.listing_count(a.source_id)
        if count:
            self.db.record_listing_count(a.source_id, count - 1)
        return "changed", f"removed from {a.source_id}", Effects()

    def _free(self, a: FreeStagingCopy) -> tuple[str, str, Effects]:
        """Free a staging copy only while the phone's hold on it is provable,
        and only once its item is out of the source."""
        cfg = self.desired.targets.get(a.target_id)
        if not getattr(cfg, "delete_local_copy", False):
            raise Skip("refused", "delete_local_copy is off for this target")
        if a.sha256 not in self.removed_sha256:
            raise Skip("refused", "its item is still in the source; the copy is kept")
        store = self.conn.targets[a.target_id]
        if not isinstance(store, ConfirmingStore):
            raise Skip("refused", f"{a.target_id} has no staging copies to free")
        row = self.db.deliveries_for(a.target_id, a.path)
        if not row or row["sha256"] != a.sha256 or not row["confirmed_at"]:
            raise Skip("refused", "no confirmed copy of these bytes is recorded here; kept")
        live = store.prove_alive()
        if not live.alive:
            raise Skip("waiting", f"{a.target_id} not proven alive this run: {live.reason}")
        if not holds_bytes(store, a.path, a.sha256):
            raise Skip("refused", "its bytes here are not the ones the phone confirmed; kept")
        try:
            # A phone gone away since its canary cannot be asked: that is
            # the next run's matter (raised, transient), never a "no".
            held = store.confirm(a.path)
            if not held.held:
                # Not a safety gate either: the item left its source, and the
                # staging copy stays; the next run's observation says whether
                # the phone lost it (and it is sent again) or holds it.
                why = f"the phone's copy is not confirmed now ({held.reason}); kept"
                raise Skip("waiting", why)
            proof = store.free_local(a.path)  # ignored here first: the phone keeps its copy
        except ProviderError as e:
            # Not a safety gate: nothing leaves a source, and the staging
            # copy stays. Syncthing not answering is the next run's matter;
            # anything else (a name no ignore line can hold) is said as is.
            raise Skip("waiting" if e.transient else "skipped", f"{e}; kept") from e
        self.db.record_freed(a.target_id, a.path, proof.evidence)
        if proof.held:
            return "changed", "freed on this machine; the phone keeps its copy", Effects()
        return "changed", f"freed on this machine ({proof.reason})", Effects()

    def _release(self, a: ReleaseFromPhone) -> tuple[str, str, Effects]:
        """A conduit's settled file leaves the shared folder, and so the phone:
        only a file the tool itself put there (its deliveries row, for this
        path and these bytes, confirmed by this phone and folder), still
        holding exactly those bytes here (read now). Anything else in the
        folder is the person's: a copy of a delivered photo under another
        name, a PDF, a photo they edited in place."""
        cfg = self.desired.targets.get(a.target_id)
        if not isinstance(cfg, SyncthingTargetConfig) or cfg.role != "conduit":
            raise Skip("refused", f"{a.target_id} is not a conduit; nothing is released")
        store = self.conn.targets[a.target_id]
        row = self.db.deliveries_for(a.target_id, a.path)
        if (
            not isinstance(store, ConfirmingStore)
            or not row
            or not row["delivered_at"]
            or row["sha256"] != a.sha256
        ):
            raise Skip("refused", "the tool did not deliver this file here; kept")
        if row["freed_at"]:
            return "ok", "already released", Effects()
        if not row["confirmed_at"] or row["identity"] != store.identity:
            raise Skip("waiting", "the phone has not confirmed this delivery; kept")
        since = datetime.fromisoformat(row["confirmed_at"])
        if self.world.observed_at - since < timedelta(days=cfg.settle_days):
            raise Skip("waiting", "not settled yet")
        if not holds_bytes(store, a.path, a.sha256):
            raise Skip("refused", "its bytes here are not the ones delivered (changed); kept")
        try:
            store.release(a.path)
        except ProviderError as e:
            raise Skip("refused", str(e)) from e
        self.db.record_freed(a.target_id, a.path)
        return "changed", "released: Syncthing removes it from the phone", Effects()
