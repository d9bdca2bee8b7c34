"""``reconcile apply``: under the run lock and signal handling, observe and
plan afresh (a saved plan only narrows what runs), ask, apply, report."""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

from providers.folder import ASIDE_MARK
from reconciler import config, planfile, render, visible
from reconciler.apply import Applier, ApplyResult, Outcome
from reconciler.commands.common import (
    DECLINED,
    EXIT_ERROR,
    EXIT_PERSON,
    Out,
    Problem,
    finish,
    is_tty,
    load,
    note_problems,
    observe_progress,
    selected,
)
from reconciler.commands.saved_plan import Learned, done_since, intersect
from reconciler.config import DesiredState
from reconciler.connect import Connected, connect
from reconciler.errors import StalePlanError
from reconciler.hashing import left_behind
from reconciler.interrupt import Interrupts
from reconciler.lock import RunLock
from reconciler.model import (
    Action,
    Plan,
)
from reconciler.observe import observe, paused_gc
from reconciler.plan import CANNOT_ENCODE
from reconciler.plan import plan as make_plan
from reconciler.progress import StageProgress
from reconciler.state import StateDB
from reconciler.sweep import Restoring, restore_aside, sweep_debris


def apply_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    desired = load(args)
    saved = planfile.load(Path(args.planfile)) if args.planfile else None
    if saved is not None and saved.config_digest != desired.digest:
        raise StalePlanError(
            f"{args.planfile} was made from a different {config.config_path(args.config)}; "
            "run reconcile plan --out again"
        )
    # Signals are handled before the lock is taken, so none can leave it
    # released while a worker of this run is still alive. The CLI's own
    # handling (``io.stop``) when it has one: it stays on after the return.
    stopping = nullcontext(io.stop) if io.stop is not None else Interrupts()
    with stopping as stop, RunLock(desired.state_dir) as lock:
        locked_at = time.time()
        db = StateDB.in_dir(desired.state_dir)
        try:
            conn = connect(desired)
            try:
                _sweep_crashed(io, desired, db, conn, locked_at)
                return _apply_locked(args, io, now, desired, db, conn, saved, stop, lock.fileno())
            finally:
                _left_behind(io, db)
                conn.close()
        finally:
            db.close()


def _sweep_crashed(
    io: Out, desired: DesiredState, db: StateDB, conn: Connected, locked_at: float
) -> None:
    """A run that never finished was killed: remove its temporaries, put
    back the source files it was removing, then mark it. Marked only once
    swept: a sweep cut short (a Ctrl-C) leaves the run unmarked, and the
    next run sweeps again. The sweep walks every tree holding no lock on
    the state DB (a plan beside it would wait on one).

    Files set aside are looked for wherever one may be (``restore_wanted``:
    a removal that could not put them back, a killed run's source that was
    out then), by every apply until its source is reachable: never only
    once, after the kill."""
    killed = bool(db.unfinished_runs())
    debris = killed or bool(db.sweep_wanted())
    wanted = db.restore_wanted()
    if not debris and not wanted:
        return
    removed = sweep_debris(desired, conn, before=locked_at) if debris else []
    if killed or wanted:
        listed = {sid for sid in desired.sources if db.listing_count(sid)}
        found = restore_aside(desired, None if killed else wanted, listed=listed)
        # before the killed run is marked: a source out now is looked at again
        db.restored(found.unreached)
    else:
        found = Restoring([], frozenset())
    crashed = db.mark_crashed()
    db.swept()
    _say_swept(io, crashed, removed if debris else None, found)


def _say_swept(io: Out, crashed: list[int], removed: list[Path] | None, found: Restoring) -> None:
    """What ``_sweep_crashed`` did: ``removed`` None when it did not look
    for temporaries."""
    back = len(found.restored)
    if crashed:
        runs = ", ".join(str(r) for r in crashed)
        io.say(
            f"Run {runs} never finished (killed?): marked crashed; "
            f"removed {len(removed or [])} temporary file(s) it left"
            + (f"; put back {back} source file(s) it was removing." if back else ".")
        )
    else:
        if removed is not None:
            io.say(f"Removed {len(removed)} temporary file(s) an earlier run could not remove.")
        if back:
            io.say(f"Put back {back} source file(s) an earlier run could not put back.")
    if found.unreached:
        io.say(
            f"{', '.join(sorted(found.unreached))}: a file an earlier run was removing may "
            f"still be set aside there (its name ending in {ASIDE_MARK}<token>) and cannot be "
            "put back now (not mounted, or read-only?); the next apply puts it back."
        )


def _left_behind(io: Out, db: StateDB) -> None:
    """Temporaries this run could not remove (``hashing.discard``: a disk
    gone read-only) are swept by the next apply, as a crashed run's are."""
    left = left_behind()
    if not left:
        return
    io.say(
        f"{len(left)} temporary file(s) could not be removed now (such as {left[0]}); "
        "the next apply removes them."
    )
    try:
        db.want_sweep(len(left) + db.sweep_wanted())
    except (sqlite3.Error, OSError) as e:  # the state disk failing too: said, not raised
        io.warn(f"warning: could not note them in the state database ({e})")


def _apply_locked(
    args: argparse.Namespace,
    io: Out,
    now: datetime | None,
    desired: DesiredState,
    db: StateDB,
    conn: Connected,
    saved: Plan | None,
    stop: Interrupts,
    lock_fd: int | None,
) -> int:
    with paused_gc():
        world = observe(
            desired,
            db,
            conn,
            now=now,
            progress=observe_progress(io),
            accept_shrink=args.accept_shrink,
        )
        fresh = make_plan(desired, world, now or world.observed_at)
    plan, stale = fresh, list[Outcome]()
    if saved is not None:
        known = world.known_sha256
        # Journaled under the ids they had then, or (a plain apply since a
        # download learned their file) under the ids they have now.
        ids = {a.id for a in saved.actions} | Learned.of(saved, known).ids()
        done = done_since(db, saved.created_at, ids)
        plan, stale = intersect(saved, fresh, done, known)
    held: tuple[Action, ...] = ()
    if args.only or args.target:
        plan, held = selected(args, desired, plan)
        if held:
            io.say(f"{len(held)} action(s) not selected by --only/--target; the next run does them")
    pending = len(fresh.actions) - len(plan.actions)  # to do, and not run now
    io.say(render.plan_text(plan, detail=args.detail, pending=pending))
    if stale:
        io.say(_outcomes_text(stale, {}, args.detail))
    # Every way out from here says the plan's notes and records them
    # (``finish``): whatever else ends the run, what it could not read is
    # said on stderr and kept with the run (census.verdict reads it).
    if not plan.actions:
        return finish(io, note_problems(plan, io) + _nothing_run(args, saved, stale, held, pending))
    if not args.yes:
        if not is_tty(io.stdin):
            problem = "apply needs --yes when there is no terminal to ask (cron: add --yes)"
            return finish(io, [(EXIT_ERROR, problem), *note_problems(plan, io, done=False)])
        io.put(f"\nApply these {len(plan.actions)} actions? [y/N] ")
        if io.stdin.readline().strip().lower() not in {"y", "yes"}:
            io.say("Nothing done.")
            # Exits as the plan shown would; the record says nothing was
            # done (status never takes it for an apply that worked).
            io.summary[DECLINED] = len(plan.actions)
            return finish(io, note_problems(plan, io, done=False))
    io.say("")
    stopped = False
    with stop.applying():  # from here on a signal stops the run, never unwinds it
        run_id = io.run_id = db.start_run("apply")
        result = ApplyResult(outcomes=())
        status = "failed"
        stages = _stage_progress(io)
        try:
            applier = Applier(
                desired,
                db,
                conn,
                world,
                run_id=run_id,
                report=lambda o, done, total: _report(io, o, args.detail, stages),
                stage=stages.stage,
                interrupts=stop,
                lock_fd=lock_fd,
            )
            result = applier.apply(plan)
            status = "failed" if result.failed else "done"
        finally:
            # Only a signal that came while actions could still start or
            # were running stopped anything; one after is late (``Interrupts``).
            stopped = stop.signum is not None
            if stopped:
                status = "interrupted"
            if stop.abandoning.is_set():  # every worker is gone: what is left is debris
                sweep_debris(desired, conn, before=time.time())
            db.finish_run(run_id, status, result.counts())
    if not args.detail and result.outcomes:
        io.say(_outcomes_text(result.outcomes, {a.id: render.size_of(a) for a in plan.actions}))
    io.say("")
    io.say(render.apply_summary(result, stale))
    io.summary = _bytes_moved(plan, result)
    return finish(
        io, _outcome_problems(result, stop if stopped else None) + note_problems(plan, io)
    )


def _outcome_problems(result: ApplyResult, stopped: Interrupts | None) -> list[Problem]:
    """What ended the applier's work badly: a signal (``stopped``), a
    safety gate, failed actions."""
    out: list[Problem] = []
    if stopped is not None:
        out.append(
            (
                stopped.exit_code,
                f"stopped by {stopped.name}; what was done is kept and journaled, "
                "run apply again to continue",
            )
        )
    if result.refused:
        out.append(
            (
                EXIT_PERSON,
                "a safety gate kept some items in their source (see 'refused' above); "
                "check the targets, then run apply again",
            )
        )
    if result.failed:
        retried = any(
            o.status == "failed" and not o.detail.startswith(CANNOT_ENCODE) for o in result.outcomes
        )
        out.append(
            (
                EXIT_ERROR,
                "some actions failed (see 'failed' above); run apply again to retry them"
                if retried
                else "some originals cannot be decoded (see 'failed' above); the library "
                "keeps them as they are and they are not retried",
            )
        )
    return out


def _nothing_run(
    args: argparse.Namespace,
    saved: Plan | None,
    stale: Sequence[Outcome],
    held: Sequence[Action],
    pending: int,
) -> list[Problem]:
    """Nothing of a saved plan runs now while ``pending`` actions are still
    to do: the plan no longer holds (or never held anything) and must be
    made again, or --only/--target left out all of it. A saved plan whose
    every action an earlier apply already did is done: no error."""
    if saved is None or not pending:
        return []
    if held:
        problem = (
            f"--only/--target selects none of the {len(held)} action(s) of {args.planfile} "
            "that still hold; run apply again without them"
        )
    elif not saved.actions:
        problem = (
            f"{args.planfile} holds no action, but {pending} action(s) are to do now; "
            "run reconcile plan --out again"
        )
    elif any(o.status == "stale" for o in stale):
        problem = (
            f"none of the actions of {args.planfile} can run now (see 'stale' above), and "
            f"{pending} action(s) are to do; run reconcile plan --out again"
        )
    else:
        return []
    return [(EXIT_ERROR, visible.escape_controls(problem))]


def _stage_progress(io: Out) -> StageProgress:
    """On a terminal a live line per stage (stderr), its start and end lines
    only in the log; off one (cron) the start and end lines are output."""
    if is_tty(io.err) and not io.quiet:
        return StageProgress(lambda text: io.log.info(text) if io.log else None, io.live())
    return StageProgress(io.say)


def _report(io: Out, o: Outcome, detail: bool, stages: StageProgress) -> None:
    """An action finished: with --detail its line now; else only into the
    log (which keeps every line), the screen gets the grouped summary."""
    if detail:
        stages.clear()
        io.say(render.outcome_line(o))
    elif io.log is not None:
        io.log.info(render.outcome_line(o))
    stages.outcome(o)


def _outcomes_text(
    outcomes: Sequence[Outcome], sizes: dict[str, int | None], detail: bool = False
) -> str:
    if detail:
        return "\n".join(render.outcome_line(o) for o in outcomes)
    return render.outcomes_text(outcomes, sizes)


_BYTES_BY_KIND = {
    "download": "bytes_downloaded",
    "copy-to-library": "bytes_imported",
    "copy-to-target": "bytes_copied",
    "remove-from-source": "bytes_offloaded",
}


def _bytes_moved(plan: Plan, result: ApplyResult) -> dict[str, int]:
    """Bytes this run downloaded, imported, copied and off-loaded: the sizes
    of the actions that changed something (for the run's record)."""
    actions = {a.id: a for a in plan.actions}
    moved: dict[str, int] = {}
    for o in result.outcomes:
        key, action = _BYTES_BY_KIND.get(o.kind), actions.get(o.action_id)
        if key and action is not None and o.status == "changed":
            moved[key] = moved.get(key, 0) + int(getattr(action, "size", 0) or 0)
    return moved
