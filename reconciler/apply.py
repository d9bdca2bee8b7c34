"""The applier: the only code that changes the world.

It executes a Plan stage by stage (downloads, library, targets, encodes,
removals), running each stage's independent actions on a bounded pool, and
journals every action in the state DB before and after. It trusts the plan
for *what* to do, never for whether it is still *safe*:

- every action checks its postcondition first (already true: ``ok``);
- an action whose dependencies did not succeed is ``skipped``;
- **RemoveFromSource passes the removal gate here, at that moment**: each
  file of the item must have at least ``policy.copies`` copies on available
  backup targets that re-hash to the original's SHA-256 now (the phone: that
  Syncthing confirms it holds the file). The library never counts. Within
  the per-run budget, paced. Otherwise ``refused``, and the item stays.

Transient provider errors are retried with exponential backoff and jitter
(honouring Retry-After); a source that keeps throttling is left alone for
the rest of the run, and what is done stays done. Only the main thread
touches the state DB; workers return effects to it.

Signals (``reconciler.interrupt``): after the first, no action starts (each
is journaled ``interrupted``) and those in flight finish; after a second,
in-flight work is abandoned (encoder processes killed, copies stopped at
their next chunk) and reported ``interrupted`` too. Either way ``apply``
returns only once every worker thread and encoder process is gone.

Beside it: the removal gate's per-run side (``reconciler.gate``), where an
original's bytes are read from (``reconciler.originals``), the encoder
processes (``reconciler.encoder_pool``) and the state rows it records
(``reconciler.rows``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs

from providers.base import ConfirmingStore, Source, Store
from reconciler import crashpoint, media, rows, sidecar
from reconciler.config import DesiredState
from reconciler.config import SyncthingTarget as SyncthingTargetConfig
from reconciler.connect import Connected
from reconciler.encoder_pool import STOPPED_WITH_THE_RUN, EncoderPool
from reconciler.errors import (
    ForeignFileError,
    InUseError,
    LoginRequiredError,
    MediaError,
    ProviderError,
    SourceChangedError,
)
from reconciler.gate import GateRefused, RemovalGate, item_shas
from reconciler.hashing import copy_file_hashing, discard, open_to_read, read_file, sha256_file
from reconciler.interrupt import Abandoned, Interrupts
from reconciler.layout import dated_path
from reconciler.model import (
    ORIGINAL_TIER,
    Action,
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FileCopy,
    FileOrigin,
    FreeStagingCopy,
    LibraryFile,
    MediaFile,
    Plan,
    ReleaseFromPhone,
    RemoveFromSource,
    SidecarOwner,
    SourceItem,
    World,
    WriteSidecar,
)
from reconciler.originals import Originals
from reconciler.plan import CANNOT_ENCODE, LIBRARY
from reconciler.plan.budget import budget_reason, over_budget
from reconciler.plan.tiers import lighter_tier
from reconciler.state import LineageRow, StateDB

T = TypeVar("T")

#: How many holders of an original a copy reads before it gives up this run.
_HOLDERS_TRIED = 4

#: Outcome statuses. ``changed``/``ok`` succeed; the rest do not.
SUCCESS = frozenset({"changed", "ok"})


@attrs.frozen(kw_only=True)
class Outcome:
    action_id: str
    kind: str
    subject: str
    status: str  # changed | ok | failed | skipped | refused | waiting
    detail: str = ""


@attrs.frozen(kw_only=True)
class ApplyResult:
    outcomes: tuple[Outcome, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    @property
    def refused(self) -> bool:
        return any(o.status == "refused" for o in self.outcomes)


#: on_outcome(outcome, done, total): progress as actions finish.
Report = Callable[[Outcome, int, int], None]


def _silent(outcome: Outcome, done: int, total: int) -> None:
    pass


#: on_stage(event, kind, actions): event is "start" or "end"; a stage is
#: the plan's actions of one kind, run before the next kind starts.
StageHook = Callable[[str, str, Sequence[Action]], None]


def _no_stage(event: str, kind: str, actions: Sequence[Action]) -> None:
    pass


@attrs.define
class _Effects:
    """What a worker learned, for the main thread to record."""

    #: downloads: (file, its SHA-256, size, the source's fingerprint of it)
    source_files: list[tuple[FileOrigin, str, int, str]] = attrs.field(factory=list)
    lineage: list[LineageRow] = attrs.field(factory=list)
    target_copies: list[FileCopy] = attrs.field(factory=list)
    settled: list[tuple[str, str, str]] = attrs.field(factory=list)
    #: copies the gate read and found wrong: forgotten (``RemovalGate.forget_copy``)
    wrong_copies: list[FileCopy] = attrs.field(factory=list)


class _Skip(Exception):
    """An action that cannot run now (a reason, not a failure of the tool)."""

    def __init__(self, status: str, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


class Applier:
    def __init__(
        self,
        desired: DesiredState,
        db: StateDB,
        conn: Connected,
        world: World,
        *,
        run_id: int,
        report: Report = _silent,
        stage: StageHook = _no_stage,
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

    # ------------------------------------------------------------- driver

    def apply(self, plan: Plan) -> ApplyResult:
        outcomes: dict[str, Outcome] = {}
        self._total = len(plan.actions)
        stages: dict[type[Action], list[Action]] = {}
        for a in plan.actions:
            stages.setdefault(type(a), []).append(a)
        if stages.get(DownloadAsset):
            # A download's bytes are known only once fetched, in a worker
            # thread that may not touch the state DB: every file ever made
            # by encoding, read here (a run that downloads, not a no-op).
            self.made = self.db.renditions()
        try:
            for kind in (DownloadAsset, CopyToLibrary, CopyToTarget, WriteSidecar, EncodeForTier):
                actions = stages.get(kind, [])
                workers = self._worker_count(kind, len(actions))
                if kind is EncodeForTier and actions and not self._stopping():
                    # Started here, in the main thread: the forkserver's
                    # parent-death signal follows the thread that started it.
                    self.encoders.executor()
                    self.gate.prepare()  # its state read here, for the encodes' threads
                with self._staged(kind, actions):
                    self._stage(actions, outcomes, workers)
            with self._staged(RemoveFromSource, stages.get(RemoveFromSource, [])):
                for a in stages.get(RemoveFromSource, []):
                    assert isinstance(a, RemoveFromSource)
                    self._finish(a, self._guarded(a, outcomes, partial(self._remove, a)), outcomes)
            with self._staged(FreeStagingCopy, stages.get(FreeStagingCopy, [])):
                for a in stages.get(FreeStagingCopy, []):
                    assert isinstance(a, FreeStagingCopy)
                    self._finish(a, self._guarded(a, outcomes, partial(self._free, a)), outcomes)
            with self._staged(ReleaseFromPhone, stages.get(ReleaseFromPhone, [])):
                for a in stages.get(ReleaseFromPhone, []):
                    assert isinstance(a, ReleaseFromPhone)
                    self._finish(a, self._guarded(a, outcomes, partial(self._release, a)), outcomes)
        finally:
            self.close()  # no encoder outlives apply, whatever ended it
        return ApplyResult(outcomes=tuple(outcomes[a.id] for a in plan.actions if a.id in outcomes))

    @contextmanager
    def _staged(self, kind: type[Action], actions: Sequence[Action]) -> Iterator[None]:
        """Tell the stage hook a stage starts and ends (only stages with work;
        an interrupted stage has no end)."""
        if not actions:
            yield
            return
        self.stage("start", kind.kind, actions)
        yield
        self.stage("end", kind.kind, actions)

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

    def _not_started(self) -> tuple[str, str, _Effects]:
        why = f"not started: the run was stopped by {self.interrupts.name}; the next run does it"
        return "interrupted", why, _Effects()

    def _stage(self, actions: list[Action], outcomes: dict[str, Outcome], workers: int) -> None:
        if not actions:
            return
        with ThreadPoolExecutor(max(1, workers)) as pool:
            runnable: list[Action] = []
            for a in actions:
                blocked = self._blocked_by(a, outcomes)
                if self._stopping():
                    self._finish(a, self._not_started(), outcomes)
                elif blocked:
                    self._finish(a, ("skipped", blocked, _Effects()), outcomes)
                else:
                    runnable.append(a)
            with self.db.transaction():  # journaled before anything runs
                for a in runnable:
                    self.db.journal(self.run_id, a.id, a.kind, "started")
            crashpoint.reached("started", actions[0].kind)
            futures = {pool.submit(self._run, a): a for a in runnable}
            try:
                for fut in as_completed(futures):
                    self._finish(futures[fut], fut.result(), outcomes)
            except LoginRequiredError:
                for f in futures:
                    f.cancel()
                raise

    def _blocked_by(self, a: Action, outcomes: dict[str, Outcome]) -> str:
        for dep in a.depends_on:
            o = outcomes.get(dep)
            if o is None or o.status not in SUCCESS:
                return f"depends on {dep}, which did not succeed"
        return ""

    def _guarded(
        self, a: Action, outcomes: dict[str, Outcome], fn: Callable[[], tuple[str, str, _Effects]]
    ) -> tuple[str, str, _Effects]:
        blocked = self._blocked_by(a, outcomes)
        if self._stopping():
            return self._not_started()
        if blocked:
            return "skipped", blocked, _Effects()
        self.db.journal(self.run_id, a.id, a.kind, "started")
        crashpoint.reached("started", a.kind)
        return self._catching(fn)

    def _run(self, a: Action) -> tuple[str, str, _Effects]:
        handlers: dict[type[Action], Callable[[Any], tuple[str, str, _Effects]]] = {
            DownloadAsset: self._download,
            CopyToLibrary: self._copy_to_library,
            CopyToTarget: self._copy_to_target,
            WriteSidecar: self._write_sidecar,
            EncodeForTier: self._encode,
        }
        if self._stopping():  # queued when the signal came: never starts
            return self._not_started()
        return self._catching(partial(handlers[type(a)], a))

    def _catching(self, fn: Callable[[], tuple[str, str, _Effects]]) -> tuple[str, str, _Effects]:
        try:
            return fn()
        except _Skip as s:
            return s.status, s.detail, _Effects()
        except Abandoned as e:
            if str(e) == STOPPED_WITH_THE_RUN:
                how = str(e)  # systemd's stop signals the encoders with the run
            else:
                how = f"abandoned in flight after a second {self.interrupts.name}"
            return "interrupted", f"{how}; the next run does it", _Effects()
        except LoginRequiredError:
            raise
        except (ProviderError, MediaError) as e:
            return "failed", str(e), _Effects()
        except OSError as e:
            return "failed", f"{e.filename or ''}: {e.strerror or e}", _Effects()

    def _finish(
        self,
        a: Action,
        result: tuple[str, str, _Effects],
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

    def _record(self, fx: _Effects) -> None:
        for copy in fx.wrong_copies:
            self.gate.forget_copy(self.conn.targets[copy.store_id], copy)
        # originals found changed since hashed, by any action's thread
        self.db.forget_hashes(self.originals.to_forget())
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

    # ------------------------------------------------------------ helpers

    def _retry(self, what: str, provider: str, fn: Callable[[], T]) -> T:
        if provider in self.throttled:
            raise _Skip("skipped", f"{provider} is throttling this run; next run")
        attempts = max(1, self.desired.apply.retries)
        base = self.desired.apply.backoff_base_s
        for n in range(attempts):
            if n and self._stopping():
                raise _Skip("interrupted", f"not retried: stopped by {self.interrupts.name}")
            if n and provider in self.throttled:
                # A parallel stream spent its retries on the same throttling.
                raise _Skip("skipped", f"{provider} is throttling this run; next run")
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
            raise _Skip("skipped", "the download did not complete; nothing else happens to it")
        return found

    def _item_file(self, origin: FileOrigin) -> tuple[Source, SourceItem, MediaFile]:
        source = self.conn.sources[origin.source_id]
        item = self.items[(origin.source_id, origin.item_key)]
        file = next(f for f in item.files if f.ref == origin.ref)
        return source, item, file

    # ------------------------------------------------------------ actions

    def _download(self, a: DownloadAsset) -> tuple[str, str, _Effects]:
        key = (a.origin.source_id, a.origin.item_key, a.origin.ref)
        known = self.known.get(key)
        if known and known in self.library:
            return "ok", "already in the library", _Effects()
        source, item, file = self._item_file(a.origin)
        rel = dated_path(a.captured_at, a.name)
        lib = self.conn.library
        tmp = lib.temp_path(rel)

        def fetch() -> str:
            discard(tmp)
            sha = source.fetch(item, file, tmp)
            got = tmp.stat().st_size
            if got != file.size:
                raise ProviderError(
                    f"{a.subject}: received {got} of {file.size} bytes",
                    provider=source.id,
                    transient=True,
                )
            return sha

        try:
            sha = self._retry(f"download {a.subject}", source.id, fetch)
            mtime = rows.mtime_ns(a.captured_at)
            if mtime is not None:  # photo apps sort by it: the capture date
                os.utime(tmp, ns=(mtime, mtime))
        except BaseException:
            discard(tmp)
            raise
        # The fingerprint listed with the size the bytes were checked
        # against: the hash counts while the source lists both (observe).
        fx = _Effects(source_files=[(a.origin, sha, file.size, file.fingerprint)])
        if sha in self.library:
            discard(tmp)
            return "changed", f"downloaded; same content as {self.library[sha].path}", fx
        kept = self._rendition(sha)
        if kept is not None:
            # A library file made by encoding, uploaded back to iCloud (an
            # AirDrop to the phone): adopted, it would land on that very file
            # and be recorded as an original there, to be encoded again. An
            # earlier encoding of it (made for a lighter tier) would become a
            # second original of the photo, compressed again.
            discard(tmp)
            what = "the library's own" if kept.sha256 == sha else "an earlier encoding of"
            return "changed", f"downloaded; {what} {kept.path}, kept as it is", fx
        copy = lib.adopt(tmp, rel, sha)
        fx.lineage.append(rows.original_row(copy, a.captured_at, file.role))
        return "changed", f"downloaded to {copy.path}", fx

    def _rendition(self, sha: str) -> LibraryFile | None:
        """The library file these bytes were made for by encoding, now or
        earlier (as the planner's ``_rendition``)."""
        kept = self.renditions.get(sha)
        if kept is None and sha in self.made:
            kept = self.library.get(self.made[sha])
        return kept

    def _copy_to_library(self, a: CopyToLibrary) -> tuple[str, str, _Effects]:
        if a.sha256 in self.library:
            return "ok", "already in the library", _Effects()
        rel = a.path or dated_path(a.captured_at, a.name)
        mtime = rows.mtime_ns(a.captured_at)
        copy = self._from_original(
            a.sha256,
            lambda src: self._retry(
                f"copy {a.subject}",
                "library",
                lambda: self.conn.library.put(src, rel, a.sha256, mtime_ns=mtime),
            ),
        )
        return (
            "changed",
            f"copied to {copy.path}",
            _Effects(lineage=[rows.original_row(copy, a.captured_at, a.role)]),
        )

    def _copy_to_target(self, a: CopyToTarget) -> tuple[str, str, _Effects]:
        sha = self._sha(a.sha256, a.origin)
        store = self.conn.targets[a.target_id]
        existing = self.copies.get(a.target_id, {}).get(sha)
        if existing is not None:
            return "ok", f"already on {a.target_id} at {existing.path}", _Effects()
        avail = store.availability()
        if not avail.available:
            # It was available when observed: it vanished during the run
            # (unmounted, moved). A failure, not a skip: the run exits 1.
            raise ProviderError(
                f"{a.target_id} became unavailable during the run: {avail.reason}",
                provider=a.target_id,
            )
        rel = dated_path(a.captured_at, a.name)
        mtime = rows.mtime_ns(a.captured_at)
        copy = self._from_original(
            sha,
            lambda src: self._retry(
                f"copy {a.subject}", a.target_id, lambda: store.put(src, rel, sha, mtime_ns=mtime)
            ),
        )
        return "changed", f"copied to {a.target_id}:{copy.path}", _Effects(target_copies=[copy])

    def _from_original(self, sha: str, use: Callable[[Path], T]) -> T:
        """``use`` a readable file of the original ``sha``. One found, while
        read, not to hold those bytes (edited in place with its size and
        mtime kept, rotten: its cached hash was wrong) is distrusted, its
        hash forgotten, and the next holder read: a copy is never stuck on
        one bad file while another place holds the original."""
        for _ in range(_HOLDERS_TRIED):
            with self.originals.readable(sha) as src:
                try:
                    return use(src)
                except SourceChangedError as e:
                    self.originals.distrust(e.path or src)
                    last = e
        raise last

    def _write_sidecar(self, a: WriteSidecar) -> tuple[str, str, _Effects]:
        item = self.items.get((a.source_id, a.item_key))
        owner: SidecarOwner
        if item is not None:
            shas = item_shas(a.source_id, item, self.known)
            if shas is None:
                raise _Skip("skipped", "a file of the item was not downloaded; the sidecar waits")
            data = sidecar.render(item, shas)
            first = item.files[0]
            owner = SidecarOwner(item.source_id, item.key, shas[first.ref], first.name)
            captured_at = item.captured_at
        else:
            # An item that lives only in the library now: its sidecar there is
            # the only record of its metadata, copied as it is to a target
            # that lost its own (the planner's ``_library_sidecar``), once
            # the bytes read are those planned and still say whose they are.
            kept = self.library.get(a.sha256 or "") if a.store_id != LIBRARY else None
            path = self.conn.library.local_path(kept.path) if kept is not None else None
            if path is None:
                raise _Skip("skipped", "the library no longer holds the item's sidecar")
            data = read_file(path, sidecar.MAX_BYTES)
            found = sidecar.parse(data) if hashlib.sha256(data).hexdigest() == a.sha256 else None
            named = sidecar.owner_of(found) if found is not None else None
            if named is None or (named.source_id, named.item_key) != (a.source_id, a.item_key):
                raise _Skip("skipped", f"{path} changed since it was observed; next run")
            owner = named
            lib = self.library.get(owner.original_sha256)
            captured_at = lib.captured_at if lib is not None else None
        digest = hashlib.sha256(data).hexdigest()
        original = owner.original_sha256
        fallback = dated_path(captured_at, owner.original_name)
        store: Store
        if a.store_id == LIBRARY:
            if digest in self.library:
                return "ok", f"already at {self.library[digest].path}", _Effects()
            store = self.conn.library
            lib = self.library.get(original)
            base = lib.path if lib is not None else fallback
        else:
            held = self.copies.get(a.store_id, {})
            if digest in held:
                return "ok", f"already on {a.store_id} at {held[digest].path}", _Effects()
            store = self.conn.targets[a.store_id]
            avail = store.availability()
            if not avail.available:
                raise _Skip("skipped", f"{a.store_id} unavailable: {avail.reason}")
            copy = held.get(original)
            base = (
                copy.path
                if copy is not None
                else self.delivered.get((a.store_id, original), fallback)
            )
        mtime = rows.mtime_ns(captured_at)
        cut = len(owner.original_name)

        def put(name: str) -> tuple[str, FileCopy]:
            rel = base + name[cut:]  # ".xmp", or ".<item>.xmp"
            return rel, self._retry(
                f"write {a.subject}",
                a.store_id,
                lambda: store.put_sidecar(rel, data, mtime_ns=mtime),
            )

        # The planned name first, then the item's other one: another
        # program's .xmp (darktable's, archived from a folder), or another
        # item's sidecar beside the same original (a duplicate, the same file
        # imported twice, perhaps already removed), stays where it is, and
        # this item's goes under its other name; the gate finds it by digest.
        # Where this item's sidecar already is, it is rewritten there: one
        # sidecar per item and store, never a stale second one.
        names = sidecar.owner_names(owner, a.name)
        if self._sidecar_of(store, base + names[1][cut:], owner):
            names = names[::-1]
        try:
            rel, written = put(names[0])
        except ForeignFileError:
            rel, written = put(names[1])
        if a.store_id == LIBRARY:
            return (
                "changed",
                f"wrote {rel}",
                _Effects(lineage=[rows.original_row(written, captured_at)]),
            )
        return "changed", f"wrote {a.store_id}:{rel}", _Effects(target_copies=[written])

    @staticmethod
    def _sidecar_of(store: Store, rel: str, owner: SidecarOwner) -> bool:
        """Does ``rel`` on the store hold a sidecar of this very item? Read
        only when a sidecar is written, never on a converged run."""
        try:
            path = store.local_path(rel)
            data = read_file(path, sidecar.MAX_BYTES) if path is not None else b""
        except (OSError, ProviderError):
            return False
        return sidecar.owner(data) == (owner.source_id, owner.item_key)

    def _encode(self, a: EncodeForTier) -> tuple[str, str, _Effects]:
        sha = self._sha(a.sha256, a.origin)
        lib = self.library.get(sha)
        if lib is None:
            raise _Skip("skipped", "not in the library")
        if lib.tier == a.tier:
            return "ok", f"already at tier {a.tier}", _Effects()
        if lib.tier == ORIGINAL_TIER and not self.originals.elsewhere(sha):
            raise _Skip(
                "waiting",
                "the library holds the only copy of this original; encoded once it is archived",
            )
        if lib.tier == ORIGINAL_TIER and sha not in self.holders:
            # The encode replaces the library's own original, and no source
            # holds it any more: from then on the targets hold the only
            # original bytes, so they must hold them now, each copy read, as
            # for a removal. (While a source holds it, its removal is gated,
            # so an import's first encode reads nothing more.) A copy found
            # wrong is forgotten, and the next run copies the original again
            # from the library before it is encoded. Read here, on the
            # encode's own thread, so the reading overlaps other encodes.
            wrong: list[FileCopy] = []
            try:
                self.gate.archived(a.name, sha, on_mismatch=lambda _, copy: wrong.append(copy))
            except GateRefused as e:
                why = f"{e}; the library keeps its original until then"
                return "waiting", why, _Effects(wrong_copies=wrong)
            # Enough copies were right, and some may not have been: those are
            # forgotten too, whatever the encode does.
            status, detail, fx = self._encoded(a, sha, lib)
            fx.wrong_copies.extend(wrong)
            return status, detail, fx
        return self._encoded(a, sha, lib)

    def _encoded(self, a: EncodeForTier, sha: str, lib: LibraryFile) -> tuple[str, str, _Effects]:
        """The encode itself, once ``_encode`` found it may replace the file."""
        store = self.conn.library
        tmp = store.temp_path(lib.path)
        src: Path | None = None
        tier, detail = a.tier, ""
        settle: list[tuple[str, str, str]] = []
        # Back to a lighter tier from a heavier one's encode (the clock put
        # right, the photo re-dated later in Photos): the encode is weighed
        # against the original it stands for. Weighed against the compressed
        # file it would be "not worth it", settled for good, and the photo
        # kept at the heavier quality.
        lighter = lighter_tier(self.desired.policy.tiers, a.tier, lib.tier)
        got = ""  # the SHA-256 of the original copied back, when it is
        try:
            with self.originals.readable(sha) as src:
                if a.tier != ORIGINAL_TIER:
                    res = self.encoders.result(
                        self.encoders.executor().submit(
                            media.encode_file,
                            src,
                            tmp,
                            quality=a.quality,
                            crf=a.crf,
                            original_sha256=sha,
                            tier=a.tier,
                            replaces_size=src.stat().st_size if lighter else lib.size,
                            video_codec=self.desired.policy.video_codec,
                            heic_preset=self.desired.policy.heic_preset,
                            threads=self.encoders.threads,
                        )
                    )
                    status, detail = res.status, res.reason
                    if lighter and status != "encoded":
                        # No encode beats the original: the original comes
                        # back, and the verdict is kept (weighed against it).
                        tier, settle = ORIGINAL_TIER, [(sha, a.tier, detail)]
                if tier == ORIGINAL_TIER:
                    # Streamed (a clip is never held in memory whole), read
                    # as any file another program may have replaced, and
                    # the bytes written are the original's or nothing is.
                    got, _ = copy_file_hashing(src, tmp)
                    if got != sha:
                        why = "the original's bytes changed while they were read; next run"
                        return "failed", self.originals.label(why, sha, src), _Effects()
                    status = "encoded"
                    detail = f"original restored ({detail})" if detail else "original restored"
            if status != "encoded":
                # not worth it, or kept whole: said once here, then settled
                return "ok", detail, _Effects(settled=[(sha, a.tier, detail)])
            if lib.captured_at is not None:
                # Dated as every file placed in the library is: photo apps
                # sort by it, and a lost state DB reads a capture time back
                # from it (an encode's own time would make an old photo new).
                when = int(lib.captured_at.timestamp()) * 10**9
                with contextlib.suppress(OverflowError, OSError):  # a date no mtime holds
                    os.utime(tmp, ns=(when, when))
            # Recorded as the tool's before it lands: a run killed between
            # the replace and its record would leave a file that carries the
            # original's lineage and that no record vouches for.
            made = got if tier == ORIGINAL_TIER else sha256_file(tmp)  # (read once)
            if tier != ORIGINAL_TIER:
                self.db.record_made(made, sha, tier)
            copy = store.replace(tmp, lib.path, replaces=lib.sha256, sha256=made)
        except media.EncodeTimeout as e:
            # The machine, not the file, may be at fault: not settled, so
            # the next run tries again.
            return "failed", self.originals.label(str(e), sha, src), _Effects()
        except MediaError as e:
            # Bad input stays bad: tried once per tier, reported as a failure
            # the first time only; later plans list it as an error note.
            # The original is untouched.
            reason = f"{CANNOT_ENCODE}: {self.originals.label(str(e), sha, src)}"
            fx = _Effects(settled=[(sha, a.tier, reason)])
            if sha in self._known_bad:
                return "skipped", f"{reason}; known bad input, the library keeps the file", fx
            return "failed", f"{reason}; not retried, the library keeps the file", fx
        finally:
            discard(tmp)
        row = LineageRow(
            path=copy.path,
            original_sha256=sha,
            sha256=copy.sha256,
            tier=tier,
            size=copy.size,
            mtime_ns=copy.mtime_ns,
            captured_at=rows.ts(lib.captured_at),
        )
        return "changed", detail, _Effects(lineage=[row], settled=settle)

    # ------------------------------------------------------------- removal

    def _remove(self, a: RemoveFromSource) -> tuple[str, str, _Effects]:
        removal = self.desired.policy.removal
        if a.source_id in self.throttled:
            raise _Skip("skipped", f"{a.source_id} is throttling this run; next run")
        if over_budget(removal, self.removed, self.removed_bytes, a.size):
            raise _Skip("waiting", budget_reason(removal))
        if self.removed and removal.pace_seconds:
            # Before the gate, never between it and the removal: the copies
            # it reads must be there at the very moment of the removal (a
            # target emptied during the pause would otherwise not be seen).
            self.sleep(removal.pace_seconds)
        try:
            shas = self.gate.check(a)
        except GateRefused as e:
            raise _Skip("skipped" if e.unavailable else "refused", str(e)) from e
        source = self.conn.sources[a.source_id]
        item = self.items[(a.source_id, a.item_key)]
        try:
            self._retry(f"remove {a.subject}", a.source_id, lambda: source.remove(item))
        except InUseError as e:
            raise _Skip("waiting", str(e)) from e
        finally:
            # The path is emptied (or held new content the source refused to
            # remove): whatever is there next is read afresh, never taken
            # from the cache by its size and mtime.
            self.db.forget_hashes(str(p) for p in self.gate.source_side(a).files)
        self.removed += 1
        self.removed_bytes += a.size
        self.removed_sha256.update(shas)
        self.db.record_tombstone(a.source_id, a.item_key, shas, a.size, self.run_id)
        count = self.db.listing_count(a.source_id)
        if count:
            self.db.record_listing_count(a.source_id, count - 1)
        return "changed", f"removed from {a.source_id}", _Effects()

    def _free(self, a: FreeStagingCopy) -> tuple[str, str, _Effects]:
        """Free a staging copy only while the phone's hold on it is provable,
        and only once its item is out of the source."""
        cfg = self.desired.targets.get(a.target_id)
        if not getattr(cfg, "delete_local_copy", False):
            raise _Skip("refused", "delete_local_copy is off for this target")
        if a.sha256 not in self.removed_sha256:
            raise _Skip("refused", "its item is still in the source; the copy is kept")
        store = self.conn.targets[a.target_id]
        if not isinstance(store, ConfirmingStore):
            raise _Skip("refused", f"{a.target_id} has no staging copies to free")
        row = self.db.deliveries_for(a.target_id, a.path)
        if not row or row["sha256"] != a.sha256 or not row["confirmed_at"]:
            raise _Skip("refused", "no confirmed copy of these bytes is recorded here; kept")
        live = store.prove_alive()
        if not live.alive:
            raise _Skip("waiting", f"{a.target_id} not proven alive this run: {live.reason}")
        if not _holds_bytes(store, a.path, a.sha256):
            raise _Skip("refused", "its bytes here are not the ones the phone confirmed; kept")
        held = store.confirm(a.path)
        if not held.held:
            raise _Skip("refused", f"the phone's copy is not confirmed now ({held.reason}); kept")
        try:
            proof = store.free_local(a.path)  # ignored here first: the phone keeps its copy
        except ProviderError as e:
            # Not a safety gate: nothing leaves a source, and the staging
            # copy stays. Syncthing not answering is the next run's matter;
            # anything else (a name no ignore line can hold) is said as is.
            raise _Skip("waiting" if e.transient else "skipped", f"{e}; kept") from e
        self.db.record_freed(a.target_id, a.path, proof.evidence)
        return "changed", "freed on this machine; the phone keeps its copy", _Effects()

    def _release(self, a: ReleaseFromPhone) -> tuple[str, str, _Effects]:
        """A conduit's settled file leaves the shared folder, and so the phone:
        only a file the tool itself put there (its deliveries row, for this
        path and these bytes, confirmed by this phone and folder), still
        holding exactly those bytes here (read now). Anything else in the
        folder is the person's: a copy of a delivered photo under another
        name, a PDF, a photo they edited in place."""
        cfg = self.desired.targets.get(a.target_id)
        if not isinstance(cfg, SyncthingTargetConfig) or cfg.role != "conduit":
            raise _Skip("refused", f"{a.target_id} is not a conduit; nothing is released")
        store = self.conn.targets[a.target_id]
        row = self.db.deliveries_for(a.target_id, a.path)
        if (
            not isinstance(store, ConfirmingStore)
            or not row
            or not row["delivered_at"]
            or row["sha256"] != a.sha256
        ):
            raise _Skip("refused", "the tool did not deliver this file here; kept")
        if row["freed_at"]:
            return "ok", "already released", _Effects()
        if not row["confirmed_at"] or row["identity"] != store.identity:
            raise _Skip("waiting", "the phone has not confirmed this delivery; kept")
        since = datetime.fromisoformat(row["confirmed_at"])
        if self.world.observed_at - since < timedelta(days=cfg.settle_days):
            raise _Skip("waiting", "not settled yet")
        if not _holds_bytes(store, a.path, a.sha256):
            raise _Skip("refused", "its bytes here are not the ones delivered (changed); kept")
        try:
            store.release(a.path)
        except ProviderError as e:
            raise _Skip("refused", str(e)) from e
        self.db.record_freed(a.target_id, a.path)
        return "changed", "released: Syncthing removes it from the phone", _Effects()


def _holds_bytes(store: Store, rel: str, sha256: str) -> bool:
    """The store's file at ``rel`` is there and hashes to ``sha256`` now
    (read without following a link at its name)."""
    path = store.local_path(rel)
    if path is None:
        return False
    try:
        return sha256_file(open_to_read(path, follow=False)) == sha256
    except OSError:
        return False
