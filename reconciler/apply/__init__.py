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

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from functools import partial
from typing import Any

from reconciler import crashpoint
from reconciler.apply.outcomes import SUCCESS, ApplyResult, Effects, Outcome, Report, StageHook
from reconciler.apply.removals import Remover
from reconciler.errors import LoginRequiredError
from reconciler.model import (
    Action,
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FreeStagingCopy,
    Plan,
    ReleaseFromPhone,
    RemoveFromSource,
    WriteSidecar,
)

__all__ = ["SUCCESS", "Applier", "ApplyResult", "Outcome", "Report", "StageHook"]


class Applier(Remover):
    """Runs a plan stage by stage; each action's work is its part's (``copies``,
    ``sidecars``, ``encodes``, ``removals``) over ``runner``'s machinery."""

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
                    self._finish(a, ("skipped", blocked, Effects()), outcomes)
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

    def _run(self, a: Action) -> tuple[str, str, Effects]:
        handlers: dict[type[Action], Callable[[Any], tuple[str, str, Effects]]] = {
            DownloadAsset: self._download,
            CopyToLibrary: self._copy_to_library,
            CopyToTarget: self._copy_to_target,
            WriteSidecar: self._write_sidecar,
            EncodeForTier: self._encode,
        }
        if self._stopping():  # queued when the signal came: never starts
            return self._not_started()
        return self._catching(partial(handlers[type(a)], a), a)
