"""The applier's machinery: its state for a run, the journal row of each
action with what it did (``_finish``, ``_record``), dependencies, signals,
and retries of transient provider errors with backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from providers.base import ConfirmingStore, Source
from reconciler import crashpoint, rows
from reconciler.apply.outcomes import (
    SUCCESS,
    Effects,
    Outcome,
    Report,
    Skip,
    StageHook,
    no_stage,
    silent,
)
from reconciler.config import DesiredState
from reconciler.connect import Connected
from reconciler.encoder_pool import STOPPED_WITH_THE_RUN, EncoderPool
from reconciler.errors import LoginRequiredError, MediaError, ProviderError
from reconciler.gate import RemovalGate
from reconciler.interrupt import Abandoned, Interrupts
from reconciler.model import (
    Action,
    CopyToLibrary,
    DownloadAsset,
    EncodeForTier,
    FileCopy,
    FileOrigin,
    LibraryFile,
    MediaFile,
    SourceItem,
    World,
)
from reconciler.originals import Originals
from reconciler.plan import CANNOT_ENCODE
from reconciler.state import StateDB

T = TypeVar("T")


class Runner:
    """An action's run: journaled, guarded by its dependencies and the signals, retried."""

    def __init__(
        self,
        desired: DesiredState,
        db: StateDB,
        conn: Connected,
        world: World,
        *,
        run_id: int,
        report: Report = silent,
        stage: StageHook = no_stage,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        interrupts: Interrupts | None = None,
        lock_fd: int | None = None,
    ) -> None:
        self.desired = desired
        self.db = db
        self.conn = conn
        self.world = world
        self.run_id = run_id
        self.report = report
        self.stage = stage
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.known = dict(world.known_sha256)
        self.library: dict[str, LibraryFile] = world.library.index()
        #: an encoded library file's current sha256 -> the file (made once: a
        #: download of those very bytes is the library's own content)
        self.renditions = {
            lf.sha256: lf for lf in world.library.files if lf.sha256 != lf.original_sha256
        }
        #: a file made by encoding, now or earlier -> its original (what the
        #: sources were known to hold; every one once a download is to run)
        self.made: Mapping[str, str] = world.renditions
        self.copies: dict[str, dict[str, FileCopy]] = {
            t.target_id: t.index() for t in world.targets if t.available
        }
        self.items: dict[tuple[str, str], SourceItem] = {
            (s.source_id, i.key): i for s in world.sources for i in s.items
        }
        #: original sha256 -> the source files holding it (one lookup, not a
        #: scan of every item, for each copy or encode)
        self.holders: dict[str, list[tuple[str, SourceItem, MediaFile]]] = {}
        for (sid, _), item in self.items.items():
            for f in item.files:
                sha = f.sha256 or self.known.get((sid, item.key, f.ref))
                if sha:
                    self.holders.setdefault(sha, []).append((sid, item, f))
        self.originals = Originals(
            conn=conn,
            state_dir=desired.state_dir,
            library=self.library,
            holders=self.holders,
            copies=self.copies,
        )
        self.throttled: dict[str, str] = {}
        self.gate = RemovalGate(
            desired=desired,
            db=db,
            conn=conn,
            items=self.items,
            known=self.known,
            copies=self.copies,
        )
        self.removed = 0
        self.removed_bytes = 0
        self.removed_sha256 = set(world.removed_sha256)
        #: (target, sha256) -> where a copy waiting for confirmation lies
        self.delivered = {(t.target_id, d.sha256): d.path for t in world.targets for d in t.pending}
        self._done = 0
        self._total = 0
        #: originals an earlier run found undecodable (at any tier)
        self._known_bad = {
            sha for (sha, _), reason in world.settled.items() if reason.startswith(CANNOT_ENCODE)
        }
        #: Flags set by signals (a fresh Interrupts, never entered, never sets them).
        self.interrupts = interrupts or Interrupts()
        self.encoders = EncoderPool(self.interrupts, lock_fd)
        self.interrupts.on_abandon(self.encoders.kill)

    def _worker_count(self, kind: type[Action], actions: int = 0) -> int:
        if kind is EncodeForTier:
            return self.encoders.size(actions)
        if kind is DownloadAsset:
            return self.desired.apply.download_streams
        return self.desired.apply.workers

    def close(self) -> None:
        self.encoders.close()

    def _stopping(self) -> bool:
        return self.interrupts.stopping.is_set()

    def _not_started(self) -> tuple[str, str, Effects]:
        why = f"not started: the run was stopped by {self.interrupts.name}; the next run does it"
        return "interrupted", why, Effects()

    def _blocked_by(self, a: Action, outcomes: dict[str, Outcome]) -> str:
        for dep in a.depends_on:
            o = outcomes.get(dep)
            if o is None or o.status not in SUCCESS:
                return f"depends on {dep}, which did not succeed"
        return ""

    def _guarded(
        self, a: Action, outcomes: dict[str, Outcome], fn: Callable[[], tuple[str, str, Effects]]
    ) -> tuple[str, str, Effects]:
        blocked = self._blocked_by(a, outcomes)
        if self._stopping():
            return self._not_started()
        if blocked:
            return "skipped", blocked, Effects()
        self.db.journal(self.run_id, a.id, a.kind, "started")
        crashpoint.reached("started", a.kind)
        return self._catching(fn, a)

    def _catching(
        self, fn: Callable[[], tuple[str, str, Effects]], a: Action | None = None
    ) -> tuple[str, str, Effects]:
        """``fn``'s result, or what it raised as an outcome. ``a``: the
        action it runs, named in an error that names nothing."""
        try:
            return fn()
        except Skip as s:
            return s.status, s.detail, Effects()
        except Abandoned as e:
            if str(e) == STOPPED_WITH_THE_RUN:
                how = str(e)  # systemd's stop signals the encoders with the run
            else:
                how = f"abandoned in flight after a second {self.interrupts.name}"
            return "interrupted", f"{how}; the next run does it", Effects()
        except LoginRequiredError:
            raise
        except (ProviderError, MediaError) as e:
            return "failed", str(e), Effects()
        except OSError as e:
            return "failed", _unwrapped(e, a), Effects()

    def _finish(
        self,
        a: Action,
        result: tuple[str, str, Effects],
        outcomes: dict[str, Outcome],
    ) -> None:
        status, detail, fx = result
        crashpoint.reached("finish-before", a.kind)
        with self.db.transaction():  # what it did and its journal row, together
            self._record(fx)
            self.db.journal(self.run_id, a.id, a.kind, status, detail, subject=a.subject)
        crashpoint.reached("finish-after", a.kind)
        outcome = Outcome(
            action_id=a.id, kind=a.kind, subject=a.subject, status=status, detail=detail
        )
        outcomes[a.id] = outcome
        self._done += 1
        self.report(outcome, self._done, self._total)

    def _record(self, fx: Effects) -> None:
        for copy in fx.wrong_copies:
            self.gate.forget_copy(self.conn.targets[copy.store_id], copy)
        # originals found changed since hashed, by any action's thread
        self.db.suspect_hashes(self.originals.to_forget())
        written = [(self.conn.targets[c.store_id], c) for c in fx.target_copies]
        written += [(self.conn.library, rows.as_copy(row)) for row in fx.lineage]
        self.db.store_hashes(filter(None, (rows.cache_row(store, c) for store, c in written)))
        for origin, sha, size, fingerprint in fx.source_files:
            self.known[(origin.source_id, origin.item_key, origin.ref)] = sha
            _, item, file = self._item_file(origin)
            self.holders.setdefault(sha, []).append((origin.source_id, item, file))
            self.db.record_source_file(
                origin.source_id, origin.item_key, origin.ref, sha, size, fingerprint
            )
        for row in fx.lineage:
            self.db.record_lineage(row)
            self.library[row.original_sha256] = LibraryFile(
                path=row.path,
                sha256=row.sha256,
                original_sha256=row.original_sha256,
                tier=row.tier,
                size=row.size,
                captured_at=rows.from_ts(row.captured_at),
            )
        for copy in fx.target_copies:
            self.copies.setdefault(copy.store_id, {})[copy.sha256] = copy
            if isinstance(self.conn.targets[copy.store_id], ConfirmingStore):
                self.db.record_delivery(copy.store_id, copy.path, copy.sha256, copy.size)
        for sha, tier, reason in fx.settled:
            self.db.record_settled(sha, tier, reason)

    def _retry(self, what: str, provider: str, fn: Callable[[], T]) -> T:
        if provider in self.throttled:
            raise Skip("skipped", f"{provider} is throttling this run; next run")
        attempts = max(1, self.desired.apply.retries)
        base = self.desired.apply.backoff_base_s
        for n in range(attempts):
            if n and self._stopping():
                raise Skip("interrupted", f"not retried: stopped by {self.interrupts.name}")
            if n and provider in self.throttled:
                # A parallel stream spent its retries on the same throttling.
                raise Skip("skipped", f"{provider} is throttling this run; next run")
            try:
                return fn()
            except LoginRequiredError:
                raise
            except ProviderError as e:
                if not e.transient:
                    raise
                if n == attempts - 1:
                    if e.retry_after is not None:
                        self.throttled[provider] = str(e)
                    raise
                delay = e.retry_after if e.retry_after is not None else base * 2**n
                self.sleep(min(delay, 300.0) * self.rng.uniform(1.0, 1.5))
        raise AssertionError("unreachable")

    def _sha(self, sha: str | None, origin: FileOrigin | None) -> str:
        if sha:
            return sha
        assert origin is not None
        found = self.known.get((origin.source_id, origin.item_key, origin.ref))
        if not found:
            raise Skip("skipped", "the download did not complete; nothing else happens to it")
        return found

    def _item_file(self, origin: FileOrigin) -> tuple[Source, SourceItem, MediaFile]:
        source = self.conn.sources[origin.source_id]
        item = self.items[(origin.source_id, origin.item_key)]
        file = next(f for f in item.files if f.ref == origin.ref)
        return source, item, file


def _unwrapped(e: OSError, a: Action | None) -> str:
    """An OSError no provider wrapped, as a person reads it: with the file
    it names, else where the action ``a`` works (many calls, os.utime among
    them, name no file: a bare ": Read-only file system" says nothing of
    where)."""
    what = e.strerror or str(e) or type(e).__name__
    where = e.filename if e.filename else _place_of(a)
    return f"{where}: {what}" if where else what


def _place_of(a: Action | None) -> str:
    """The store (and file, where the action names one) an action writes or
    removes in: ``nas``, ``library``, ``phone:2022/01/01/IMG_1.JPG``."""
    store = (
        getattr(a, "target_id", None)
        or getattr(a, "store_id", None)
        or getattr(a, "source_id", None)
        or ("library" if isinstance(a, (DownloadAsset, CopyToLibrary, EncodeForTier)) else "")
    )
    path = getattr(a, "path", "")
    return f"{store}:{path}" if store and path else store
