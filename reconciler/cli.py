"""The command line: ``main(argv) -> int``.

The only module that prints, prompts or picks exit codes (DESIGN.md):
0 converged / success; 1 error; 2 changes pending (plan --detailed-exitcode);
3 a person is needed (login expired, a safety gate refused a removal);
4 another run holds the lock; 128 + N stopped by signal N (130 SIGINT,
143 SIGTERM: ``apply`` stops cleanly, see reconciler/interrupt.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from io import UnsupportedOperation
from pathlib import Path
from typing import Any, TextIO

import argcomplete
import attrs

from reconciler import config, history, logfile, planfile, preflight, render, selection
from reconciler.apply import Applier, ApplyResult, Outcome
from reconciler.config import DesiredState
from reconciler.connect import (
    Connected,
    UnavailableStore,
    connect,
    connect_target,
    icloud_session_dir,
)
from reconciler.errors import (
    ConfigError,
    LockHeldError,
    LoginRequiredError,
    ReconcileError,
    SafetyError,
    StalePlanError,
)
from reconciler.interrupt import Interrupted, Interrupts
from reconciler.lock import RunLock
from reconciler.model import Action, Plan, World
from reconciler.observe import Progress, observe
from reconciler.plan import CANNOT_ENCODE
from reconciler.plan import plan as make_plan
from reconciler.progress import StageProgress
from reconciler.state import StateDB, damaged
from reconciler.sweep import sweep_debris

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_PERSON, EXIT_LOCKED = 0, 1, 2, 3, 4


class _Out:
    """Where text goes; tests pass their own streams."""

    def __init__(self, out: TextIO, err: TextIO, stdin: TextIO) -> None:
        self.out, self.err, self.stdin = out, err, stdin
        #: For the run's record: its own row (an apply that acted), the last
        #: "error:" line said, and what the plan held.
        self.run_id: int | None = None
        self.reason = ""
        self.summary: dict[str, int] = {}
        #: The state directory's log (plan, apply); -q keeps stdout quiet.
        self.log: logging.Logger | None = None
        self.quiet = False

    def say(self, text: str = "") -> None:
        if self.log is not None and text:
            self.log.info(text)
        if not self.quiet:
            self.out = _print(text, self.out)

    def warn(self, text: str) -> None:
        if text.startswith("error: "):
            self.reason = text.removeprefix("error: ").splitlines()[0].strip()
        if self.log is not None:
            self.log.warning(text)
        self.err = _print(text, self.err)


def _print(text: str, stream: TextIO) -> TextIO:
    """Print to ``stream``; once its reader has gone (``reconcile plan |
    head -1``) the rest of the output is dropped and the command ends as it
    would have, quietly: a closed pipe is not an error, and an apply under
    way is not abandoned because nobody reads its report."""
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        try:
            # The interpreter flushes sys.stdout once more at exit; point the
            # descriptor at /dev/null so that last flush cannot complain.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, UnsupportedOperation):
            pass
        return open(os.devnull, "w")  # lives as long as the command
    return stream


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconcile")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _stages(text: str) -> frozenset[str]:
    try:
        return selection.parse_stages(text)
    except selection.UnknownStage as e:
        raise argparse.ArgumentTypeError(str(e)) from e


_DETAIL_HELP = (
    "one line per action, item and outcome (default: grouped by kind and reason, "
    f"the first {render.GROUP_LINES} of each)"
)


def build_parser() -> argparse.ArgumentParser:
    config_help = f"desired state file (default ./{config.DEFAULT_CONFIG} or ${config.ENV_CONFIG})"
    # -c is accepted before or after the command; SUPPRESS keeps the
    # subcommand's absent -c from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help
    )
    p = argparse.ArgumentParser(
        prog="reconcile",
        description="Declarative, idempotent reconciler for a photo and video library.",
    )
    p.add_argument("-c", "--config", metavar="FILE", default=None, help=config_help)
    p.add_argument("--version", action="version", version=f"reconcile {_version()}")
    for parser, default in ((p, False), (common, argparse.SUPPRESS)):
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=default,
            help="also write the libraries' debug records to the log file",
        )
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=default,
            help="print only errors (the log file still gets everything)",
        )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = sub.add_parser("plan", parents=[common], help="show what apply would do")
    sp.add_argument("--out", metavar="FILE", help="save the plan for `apply FILE`")
    sp.add_argument("--json", action="store_true", help="print the plan as JSON")
    sp.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes to make, 0 when converged",
    )
    sp.add_argument("--accept-shrink", action="store_true", help=argparse.SUPPRESS)
    sp.add_argument("--detail", action="store_true", help=_DETAIL_HELP)

    sa = sub.add_parser("apply", parents=[common], help="make the world match the desired state")
    sa.add_argument("planfile", nargs="?", help="a plan saved with `plan --out`")
    sa.add_argument("--yes", "-y", action="store_true", help="do not ask (cron)")
    sa.add_argument(
        "--accept-shrink",
        action="store_true",
        help="trust a source listing that shrank sharply since the last run",
    )
    sa.add_argument(
        "--only",
        metavar="STAGES",
        type=_stages,
        default=frozenset(),
        help=f"run only these stages, comma-separated: {', '.join(selection.STAGES)} "
        "(an action whose dependency is not selected waits for a later run)",
    )
    sa.add_argument(
        "--target",
        metavar="ID",
        action="append",
        default=[],
        help="act only on this source, target or 'library', with what that needs "
        "(repeatable); removals still need their verified copies",
    )
    sa.add_argument("--detail", action="store_true", help=_DETAIL_HELP)

    ss = sub.add_parser(
        "status", parents=[common], help="did the last run work, and what is waiting"
    )
    ss.add_argument("--json", action="store_true", help="the same, as JSON for scripts")
    sv = sub.add_parser(
        "validate", parents=[common], help="check the desired state file and this machine"
    )
    sv.add_argument(
        "--online",
        action="store_true",
        help="also reach iCloud and Syncthing (session, key, folder, phone)",
    )

    sl = sub.add_parser("login", parents=[common], help="log in to a service (interactive)")
    sl.add_argument("service", choices=["icloud"])
    sl.add_argument("--source", metavar="ID", help="which icloud source (default: the first)")

    se = sub.add_parser("emulator", parents=[common], help="the iCloud emulator")
    se.add_argument("action", choices=["serve"])
    se.add_argument("--port", type=int, default=8765)
    seed = se.add_mutually_exclusive_group()
    seed.add_argument("--generate", type=int, default=50, metavar="N", help="generate N items")
    seed.add_argument("--seed-folder", metavar="DIR", help="serve the media files under DIR")

    sm = sub.add_parser(
        "import-legacy",
        parents=[common],
        help="adopt the seed pipeline's history (its media.db) without downloading again",
    )
    sm.add_argument("media_db", metavar="MEDIA_DB", help="the seed pipeline's media.db")

    si = sub.add_parser("init-target", parents=[common], help="mark a folder as a store")
    si.add_argument("path", help="the folder (it must exist; see --create)")
    si.add_argument("--id", required=True, help="the store's id in desired_state.toml")
    si.add_argument("--create", action="store_true", help="make the folder if it does not exist")
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    parser = build_parser()
    argcomplete.autocomplete(parser)
    io = _Out(stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_ERROR if e.code else EXIT_OK
    started = datetime.now(UTC)
    io.quiet = args.quiet
    if args.command in ("plan", "apply"):
        _open_log(args, io)
    try:
        code = _dispatch(args, io, now)
        if args.command in ("plan", "apply"):
            _record_run(args, io, started, code)
            if io.log is not None:
                io.log.info(f"{args.command} exited {code}")
    finally:
        logfile.close_log()
    return code


def _open_log(args: argparse.Namespace, io: _Out) -> None:
    """The run's log file; a config that does not load is reported by the
    command itself (and then there is no state directory to log into)."""
    try:
        desired = _load(args)
        io.log = logfile.open_log(
            desired.state_dir,
            max_bytes=max(1, int(desired.log.max_file_size_mb * 1_000_000)),
            backups=desired.log.backup_count,
            verbose=args.verbose,
        )
    except (ReconcileError, OSError):
        return
    io.log.info(f"reconcile {args.command} (config {config.config_path(args.config)})")


def _dispatch(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    handlers = {
        "plan": _plan,
        "apply": _apply,
        "status": _status,
        "validate": _validate,
        "init-target": _init_target,
        "import-legacy": _import_legacy,
        "login": _login,
        "emulator": _emulator,
    }
    try:
        return handlers[args.command](args, io, now)
    except ConfigError as e:
        for line in e.problems:
            io.warn(f"error: {line}")
        return EXIT_ERROR
    except LoginRequiredError as e:
        io.warn(f"error: {e}")
        return EXIT_PERSON
    except SafetyError as e:
        io.warn(f"error: {e}")
        return EXIT_PERSON
    except LockHeldError as e:
        io.warn(f"error: {e}")
        return EXIT_LOCKED
    except ReconcileError as e:  # provider, state, stale plan, media…
        io.warn(f"error: {e}")
        return EXIT_ERROR
    except Interrupted as e:
        io.warn(f"error: {e} before anything was changed; run again to continue")
        return 128 + e.signum
    except KeyboardInterrupt:
        io.warn("error: interrupted; what was done is kept, run again to continue")
        return EXIT_ERROR
    except sqlite3.DatabaseError as e:
        # Raised mid-query by a damaged file (truncated, disk error): the
        # state database is named with what to do; nothing is lost by moving it.
        _log_bug(args)
        io.warn(f"error: {_damaged_state(args, e)}")
        return EXIT_ERROR
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            return _bug(args, io, e)
        # A full disk, a read-only mount, a missing folder or a permission
        # on a path the person chose: theirs to fix, not a bug.
        _log_bug(args)
        where = f"{e.filename}: " if e.filename else ""
        io.warn(f"error: {where}{e.strerror or e}; fix that, then run again")
        return EXIT_ERROR
    except Exception as e:
        return _bug(args, io, e)


_ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EIO,
        errno.ENAMETOOLONG,
    }
)


def _record_run(args: argparse.Namespace, io: _Out, started: datetime, code: int) -> None:
    """Every plan and apply goes into the history, whatever its exit."""
    try:
        desired = _load(args)
    except ReconcileError:
        return  # no valid config: no state directory to record in
    history.record(
        desired,
        run_id=io.run_id,
        command=args.command,
        started_at=started,
        exit_code=code,
        reason=io.reason,
        summary=io.summary,
    )


def _bug(args: argparse.Namespace, io: _Out, e: BaseException) -> int:
    where = _log_bug(args)
    io.warn(f"error: internal error ({type(e).__name__}: {e}); this is a bug. Traceback: {where}")
    return EXIT_ERROR


def _damaged_state(args: argparse.Namespace, e: sqlite3.DatabaseError) -> str:
    try:
        return damaged(config.load(config.config_path(args.config)).state_dir / "state.db", e)
    except ReconcileError:
        return f"the state database is damaged ({e}); move it aside and run again"


def _log_bug(args: argparse.Namespace) -> str:
    """Append the traceback to the log in the state directory (never the
    current folder: cron's is often /, or the person's home)."""
    text = traceback.format_exc()
    candidates: list[Path] = []
    with contextlib.suppress(ReconcileError):
        candidates.append(config.load(config.config_path(args.config)).state_dir)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    candidates += [Path(xdg) / "reconcile", Path(tempfile.gettempdir())]
    for folder in candidates:
        path = folder / "reconcile.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(f"--- {datetime.now(UTC).isoformat()}\n{text}\n")
        except OSError:
            continue
        return str(path)
    return "(no writable place for the log)"


def _load(args: argparse.Namespace) -> DesiredState:
    return config.load(config.config_path(args.config))


def _progress(io: _Out) -> Progress:
    tty = io.err.isatty()

    def progress(label: str, done: int, total: int) -> None:
        if tty:
            end = "\n" if done == total else ""
            io.err.write(f"\r{label}: {done}/{total}{end}")
            io.err.flush()

    return progress


def _observe(
    desired: DesiredState, db: StateDB, io: _Out, now: datetime | None, accept_shrink: bool
) -> tuple[World, Plan]:
    conn = connect(desired)
    try:
        world = observe(
            desired, db, conn, now=now, progress=_progress(io), accept_shrink=accept_shrink
        )
    finally:
        conn.close()
    return world, make_plan(desired, world, now or world.observed_at)


# ---------------------------------------------------------------- commands


def _validate(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    desired = _load(args)
    io.say(
        f"ok    {config.config_path(args.config)}: valid ({len(desired.sources)} source(s), "
        f"{len(desired.targets)} target(s), {desired.policy.copies} copies required)"
    )
    for tid, cfg in desired.targets.items():
        if isinstance(cfg, config.SyncthingTarget) and cfg.count_as_copy:
            io.say(
                f"note: targets.{tid}.count_as_copy: trusting Google Photos without "
                "verification (a conduit's delivery counts as a copy; it cannot be read back)"
            )
    checks = preflight.offline(desired, os.environ)
    if args.online:
        checks += preflight.online(desired, os.environ, now or datetime.now(UTC))
    for c in checks:
        io.say(f"{_CHECK_WORD[c.status]:<5} {c.subject}: {c.message}")
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        io.warn(
            f"error: {failed} of {len(checks) + 1} checks failed (FAIL above); fix them, "
            "then run reconcile validate again"
        )
        return EXIT_ERROR
    return EXIT_OK


_CHECK_WORD = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


def _plan(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    desired = _load(args)
    db = StateDB.in_dir(desired.state_dir)
    try:
        _, plan = _observe(desired, db, io, now, args.accept_shrink)
    finally:
        db.close()
    io.summary = dict(Counter(a.kind for a in plan.actions))
    if args.out:
        Path(args.out).write_text(planfile.dumps(plan))
    if args.json:
        io.say(planfile.dumps(plan).rstrip("\n"))
    else:
        io.say(render.plan_text(plan, detail=args.detail))
        if args.out:
            io.say(f"Saved to {args.out}; run: reconcile apply {args.out}")
    problem = _notes_exit(plan, io)
    if problem:
        return problem
    if args.detailed_exitcode and plan.actions:
        return EXIT_CHANGES
    return EXIT_OK


def _notes_exit(plan: Plan, io: _Out) -> int:
    """Exit code and stderr line for what the plan could not look at:
    a guard that wants a person (3) before a store or source that could not
    be read (1). Waiting items and per-item errors are not run failures."""
    blocked = [n.subject for n in plan.notes if n.status == "blocked"]
    unavailable = [n.subject for n in plan.notes if n.status == "unavailable"]
    unreadable = [n.subject for n in plan.notes if n.status == "unreadable"]
    if blocked:
        io.warn(
            f"error: a guard held back {', '.join(blocked)} (see '!' above); "
            "check it, then run again (with --accept-shrink if the shrink is real)"
        )
        return EXIT_PERSON
    if unavailable:
        io.warn(
            f"error: {', '.join(unavailable)} could not be read (see '!' above); the rest was done"
        )
        return EXIT_ERROR
    if unreadable:
        io.warn(
            f"error: {len(unreadable)} source file(s) could not be read (see 'x' above); "
            "the rest was done; fix them and the next run picks them up"
        )
        return EXIT_ERROR
    return EXIT_OK


def _apply(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    desired = _load(args)
    saved = planfile.load(Path(args.planfile)) if args.planfile else None
    if saved is not None and saved.config_digest != desired.digest:
        raise StalePlanError(
            f"{args.planfile} was made from a different {config.config_path(args.config)}; "
            "run reconcile plan --out again"
        )
    # Signals are handled before the lock is taken, so none can leave it
    # released while a worker of this run is still alive.
    with Interrupts() as stop, RunLock(desired.state_dir) as lock:
        locked_at = time.time()
        db = StateDB.in_dir(desired.state_dir)
        try:
            conn = connect(desired)
            try:
                _sweep_crashed(io, desired, db, conn, locked_at)
                return _apply_locked(args, io, now, desired, db, conn, saved, stop, lock.fileno())
            finally:
                conn.close()
        finally:
            db.close()


def _sweep_crashed(
    io: _Out, desired: DesiredState, db: StateDB, conn: Connected, locked_at: float
) -> None:
    """A run that never finished was killed: mark it, remove its temporaries."""
    crashed = db.mark_crashed()
    if not crashed:
        return
    removed = sweep_debris(desired, conn, before=locked_at)
    runs = ", ".join(str(r) for r in crashed)
    io.say(
        f"Run {runs} never finished (killed?): marked crashed; "
        f"removed {len(removed)} temporary file(s) it left."
    )


def _apply_locked(
    args: argparse.Namespace,
    io: _Out,
    now: datetime | None,
    desired: DesiredState,
    db: StateDB,
    conn: Connected,
    saved: Plan | None,
    stop: Interrupts,
    lock_fd: int | None,
) -> int:
    world = observe(
        desired, db, conn, now=now, progress=_progress(io), accept_shrink=args.accept_shrink
    )
    fresh = make_plan(desired, world, now or world.observed_at)
    plan, stale = fresh, list[Outcome]()
    if saved is not None:
        plan, stale = _intersect(saved, fresh)
    if args.only or args.target:
        plan, held = _selected(args, desired, plan)
        if held:
            io.say(f"{len(held)} action(s) not selected by --only/--target; the next run does them")
    io.say(render.plan_text(plan, detail=args.detail))
    if stale:
        io.say(_outcomes_text(stale, {}, args.detail))
    if not plan.actions:
        return _notes_exit(plan, io)
    if not args.yes:
        if not io.stdin.isatty():
            io.warn("error: apply needs --yes when there is no terminal to ask (cron: add --yes)")
            return EXIT_ERROR
        io.out.write(f"\nApply these {len(plan.actions)} actions? [y/N] ")
        io.out.flush()
        if io.stdin.readline().strip().lower() not in {"y", "yes"}:
            io.say("Nothing done.")
            return EXIT_OK
    io.say("")
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
            if stop.signum is not None:
                status = "interrupted"
            if stop.abandoning.is_set():  # every worker is gone: what is left is debris
                sweep_debris(desired, conn, before=time.time())
            db.finish_run(run_id, status, result.counts())
    if not args.detail and result.outcomes:
        io.say(_outcomes_text(result.outcomes, {a.id: render.size_of(a) for a in plan.actions}))
    io.say("")
    io.say(render.apply_summary(result, stale))
    io.summary = _bytes_moved(plan, result)
    if stop.signum is not None:
        io.warn(
            f"error: stopped by {stop.name}; what was done is kept and journaled, "
            "run apply again to continue"
        )
        return stop.exit_code
    if result.refused:
        io.warn(
            "error: a safety gate kept some items in their source (see 'refused' above); "
            "check the targets, then run apply again"
        )
        return EXIT_PERSON
    if result.failed:
        retried = any(
            o.status == "failed" and not o.detail.startswith(CANNOT_ENCODE) for o in result.outcomes
        )
        io.warn(
            "error: some actions failed (see 'failed' above); run apply again to retry them"
            if retried
            else "error: some originals cannot be decoded (see 'failed' above); the library "
            "keeps them as they are and they are not retried"
        )
        return EXIT_ERROR
    return _notes_exit(plan, io)


def _selected(
    args: argparse.Namespace, desired: DesiredState, plan: Plan
) -> tuple[Plan, tuple[Action, ...]]:
    known = [*desired.sources, *desired.targets]
    unknown = selection.unknown_stores(args.target, known)
    if unknown:
        raise ConfigError(
            [
                f"--target {t}: no such source or target (known: library, {', '.join(known)})"
                for t in unknown
            ]
        )
    return selection.select(plan, args.only, args.target)


def _stage_progress(io: _Out) -> StageProgress:
    """On a terminal a live line per stage (stderr), its start and end lines
    only in the log; off one (cron) the start and end lines are output."""
    if _is_tty(io.err) and not io.quiet:
        return StageProgress(lambda text: io.log.info(text) if io.log else None, io.err)
    return StageProgress(io.say)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # closed
        return False


def _report(io: _Out, o: Outcome, detail: bool, stages: StageProgress) -> None:
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


def _intersect(saved: Plan, fresh: Plan) -> tuple[Plan, list[Outcome]]:
    """Run only what the saved plan promised *and* still holds now: an action
    of the fresh plan runs if the saved plan has it and every action it
    depends on runs too."""
    saved_ids = {a.id for a in saved.actions}
    keep: list[Action] = []
    kept: set[str] = set()
    for a in fresh.actions:  # dependencies come first in a plan
        if a.id in saved_ids and all(d in kept for d in a.depends_on):
            keep.append(a)
            kept.add(a.id)
    stale = [
        Outcome(
            action_id=a.id,
            kind=a.kind,
            subject=a.subject,
            status="stale",
            detail="the world changed since the plan was saved; not done (plan again)",
        )
        for a in saved.actions
        if a.id not in kept
    ]
    plan = attrs.evolve(fresh, actions=tuple(keep))
    return plan, stale


def _status(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    """Did it work? The last run and why, what the tool has done overall, and
    what waits; the run history last. Only the database, the session files
    and (for the phone) Syncthing are read: no source is listed."""
    desired = _load(args)
    db = StateDB.in_dir(desired.state_dir)
    try:
        runs = db.last_runs(5)
        # The headline is about the work: the last apply (cron's), else the last run.
        headline = db.last_run_of("apply") or (runs[0] if runs else None)
        figures = db.figures()
        waiting = {}
        for tid in desired.targets:
            pending = [d for d in db.deliveries(tid).values() if not d["confirmed_at"]]
            if pending:
                since = min(d["delivered_at"] for d in pending)
                waiting[tid] = {"files": len(pending), "since": since}
        state_path = str(db.path)
        phones: list[str] = []
        for tid, cfg in desired.targets.items():
            if isinstance(cfg, config.SyncthingTarget):
                phones.append(_phone_line(tid, cfg))
                phones.append(_canary_line(tid, db.liveness(tid)))
                if cfg.role == "conduit":
                    phones.append(_conduit_line(tid, cfg, db.deliveries(tid).values()))
    finally:
        db.close()
    sessions = _session_lines(desired, runs)
    if args.json:
        doc = {
            "state": state_path,
            "runs": [dict(r, summary=json.loads(r["summary"] or "{}")) for r in runs],
            **figures,
            "waiting": waiting,
            "sessions": sessions,
            "phones": phones,
        }
        io.say(json.dumps(doc, indent=2, default=str))
        return EXIT_OK
    io.say(f"state: {state_path}")
    if not runs:
        io.say("no runs yet")
    else:
        io.say(render.status_headline(headline or runs[0], figures["last_good_apply"]))
    tiers = ", ".join(f"{t} {n}" for t, n in figures["library_tiers"].items()) or "none yet"
    io.say(
        f"library files by tier: {tiers}; compression saved "
        f"{render.size_text(figures['bytes_saved_by_compression'])}"
    )
    removed = figures["removed"]
    total = sum(r["items"] for r in removed.values())
    per = "".join(
        f"; {sid}: {r['items']} ({render.size_text(r['bytes'])})" for sid, r in removed.items()
    )
    io.say(f"removed from sources by this tool: {total} item(s){per}")
    for line in sessions + phones:
        io.say(line)
    for tid, w in waiting.items():
        io.say(f"{tid}: {w['files']} file(s) waiting for confirmation since {w['since']}")
    for r in runs:
        exit_code = "-" if r.get("exit_code") is None else r["exit_code"]
        io.say(
            f"run {r['id']}: {r['command']} {r['status']} started {r['started_at']} "
            f"finished {r['finished_at'] or '-'} exit {exit_code} {r['summary'] or ''}".rstrip()
        )
        if r.get("reason"):
            io.say(f"  {r['reason']}")
    return EXIT_OK


def _icloud_source(desired: DesiredState, wanted: str | None) -> tuple[str, config.ICloudSource]:
    found = [
        (sid, cfg)
        for sid, cfg in desired.sources.items()
        if isinstance(cfg, config.ICloudSource) and (wanted is None or sid == wanted)
    ]
    if not found:
        raise ConfigError([f"no icloud source{' ' + wanted if wanted else ''} in the config"])
    return found[0]


def _login(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    import getpass
    import os

    from providers.icloud.session import login_interactive

    desired = _load(args)
    sid, cfg = _icloud_source(desired, args.source)
    username = os.environ.get("ICLOUD_USERNAME", "")
    if not username:
        raise ConfigError([f"sources.{sid}: set ICLOUD_USERNAME in the environment"])
    if not io.stdin.isatty():
        io.warn(
            "error: login asks for the password and a two-factor code: run it in a terminal "
            "(cron and pipes cannot answer)"
        )
        return EXIT_ERROR
    password = os.environ.get("ICLOUD_PASSWORD") or getpass.getpass(
        f"Apple ID password for {username}: "
    )

    def prompt_code(prompt: str) -> str:
        io.out.write(f"{prompt} ")
        io.out.flush()
        return io.stdin.readline().strip()

    login_interactive(
        username, password, icloud_session_dir(desired), prompt_code, cfg.endpoint or None
    )
    where = icloud_session_dir(desired)
    io.say(f"Logged in to iCloud as {username}; the trusted session is in {where}.")
    return EXIT_OK


def _emulator(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    from providers.icloud.emulator.__main__ import serve

    if not 0 <= args.port <= 65535:
        io.warn(f"error: --port {args.port}: a port is 0 to 65535 (0: any free port)")
        return EXIT_ERROR
    if args.seed_folder and not Path(args.seed_folder).is_dir():
        io.warn(f"error: --seed-folder {args.seed_folder}: no such folder")
        return EXIT_ERROR
    try:
        serve(
            port=args.port,
            generate=None if args.seed_folder else args.generate,
            seed_folder=Path(args.seed_folder) if args.seed_folder else None,
        )
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        io.warn(
            f"error: cannot listen on 127.0.0.1:{args.port}: {e.strerror} (another emulator?); "
            "pick another --port, or --port 0 for any free one"
        )
        return EXIT_ERROR
    return EXIT_OK


def _phone_line(tid: str, cfg: config.SyncthingTarget) -> str:
    """Connection and progress of the phone, from Syncthing (progress only:
    copies count by per-file confirmation, never by this percentage)."""
    import os

    from providers.syncthing.target import SyncthingTarget

    target = connect_target(tid, cfg, os.environ)
    if isinstance(target, UnavailableStore):
        return f"{tid}: {target.reason}"
    assert isinstance(target, SyncthingTarget)
    with target:
        st = target.status_summary()
    if not st.reachable:
        return f"{tid}: Syncthing unreachable: {st.problem}"
    seen = f"last seen {st.last_seen:%Y-%m-%d %H:%M} UTC" if st.last_seen else "never seen"
    folder = f"folder here {st.folder_state}" if st.folder_state else "folder state unknown"
    if not st.connected:
        # Completion is this machine's guess of what the phone has: while it
        # is away the figure says nothing, and "100%" would be a lie.
        return f"{tid}: phone offline, {seen}; {folder}; its progress is unknown"
    done = f"{st.completion:.0f}% synced" if st.completion is not None else "progress unknown"
    deletes = f", {st.need_deletes} deletion(s) not applied there" if st.need_deletes else ""
    return (
        f"{tid}: phone connected; {folder}; {done} by this machine's index "
        f"({st.need_items or 0} file(s) to go{deletes}; the phone's own folder state is not "
        "visible here)"
    )


def _conduit_line(tid: str, cfg: config.SyncthingTarget, rows: Iterable[dict[str, Any]]) -> str:
    """What a conduit delivered, what settles (until when), what it released."""
    confirmed = [r for r in rows if r["confirmed_at"]]
    released = [r for r in confirmed if r["freed_at"]]
    settling = [r for r in confirmed if not r["freed_at"]]
    on_phone = sum(r["size"] or 0 for r in settling)
    line = (
        f"{tid} (conduit): {len(confirmed)} delivered, {len(settling)} settling "
        f"({on_phone} bytes on the phone"
    )
    if cfg.max_bytes_on_phone is not None:
        line += f" of max {int(cfg.max_bytes_on_phone)}; delivery holds back beyond it"
    line += f"), {len(released)} released from the phone"
    if settling:
        first = min(datetime.fromisoformat(r["confirmed_at"]) for r in settling)
        due = first + timedelta(days=cfg.settle_days)
        line += f"; next release due {due:%Y-%m-%d %H:%M} UTC"
    return line


def _canary_line(tid: str, row: dict[str, Any] | None) -> str:
    """The last run's liveness proof: the only sign from here that the phone's
    folder really receives files."""
    if row is None:
        return f"{tid}: no canary sent yet (the next plan or apply sends one)"
    if row["alive"]:
        return (
            f"{tid}: last canary reached the phone at {row['at']} "
            f"(round trip {row['round_trip_s'] or 0:.2f} s)"
        )
    return f"{tid}: last canary FAILED at {row['at']}: {row['reason']}; its copies did not count"


def _session_lines(desired: DesiredState, runs: Sequence[dict[str, object]] = ()) -> list[str]:
    """Each iCloud source's session as the runs found it: a session file of
    any age means nothing once Apple refused it (the newest run that either
    worked or was refused a login decides)."""
    import os

    from providers.icloud.errors import LOGIN_HINT

    refused = None
    for r in runs:  # newest first
        if r.get("exit_code") in (EXIT_OK, EXIT_CHANGES):
            break
        if r.get("exit_code") == EXIT_PERSON and LOGIN_HINT in str(r.get("reason") or ""):
            refused = r
            break
    lines = []
    for sid, cfg in desired.sources.items():
        if not isinstance(cfg, config.ICloudSource):
            continue
        from providers.icloud.session import session_age

        username = os.environ.get("ICLOUD_USERNAME", "")
        age = session_age(icloud_session_dir(desired), username) if username else None
        if refused is not None:
            lines.append(
                f"{sid}: Apple refused the session in run {refused['id']} "
                f"({refused['finished_at']}); run: reconcile login icloud"
            )
        elif age is None:
            lines.append(f"{sid}: no trusted iCloud session; run: reconcile login icloud")
        else:
            lines.append(
                f"{sid}: trusted iCloud session is {age.days} day(s) old "
                "(Apple asks for 2FA again after about 30 days)"
            )
    return lines


def _import_legacy(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    from reconciler.legacy import import_legacy

    desired = _load(args)
    with RunLock(desired.state_dir):
        db = StateDB.in_dir(desired.state_dir)
        try:
            report = import_legacy(desired, db, Path(args.media_db))
        finally:
            db.close()
    io.say(
        f"imported {report.rows} row(s) from {args.media_db}: {report.adopted} item(s) adopted "
        f"({report.files} file(s) hashed where they are; {report.originals} item(s) with an "
        "unmodified iCloud original), "
        f"{report.deleted_from_icloud} recorded as deleted from iCloud by the seed pipeline"
    )
    for name in report.missing[:10]:
        io.say(f"  not on any store: {name}")
    if len(report.missing) > 10:
        io.say(f"  … and {len(report.missing) - 10} more not on any store")
    io.say("Nothing imported counts as a copy until reconcile reads it; run: reconcile plan")
    return EXIT_OK


def _init_target(args: argparse.Namespace, io: _Out, now: datetime | None) -> int:
    from providers.filesystem import write_marker

    path = Path(args.path)
    if path.exists() and not path.is_dir():
        io.warn(f"error: {path} is not a folder")
        return EXIT_ERROR
    if not path.exists() and not args.create:
        io.warn(
            f"error: {path} does not exist; is the disk mounted? "
            "To make a new folder there, add --create"
        )
        return EXIT_ERROR
    hazard = preflight.mount_hazard(path)
    if hazard:
        io.warn(f"warning: {hazard}")
    try:
        marker = write_marker(path, args.id)
    except OSError as e:
        io.warn(f"error: cannot mark {path} as the store {args.id!r}: {e.strerror or e}")
        return EXIT_ERROR
    io.say(f"{args.path} is now the store {args.id!r} ({marker.name} written)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
