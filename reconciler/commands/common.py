"""What every command shares: where text goes, the desired state, observing
and planning, and the exit code for what a plan could not look at."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from io import StringIO, TextIOBase, UnsupportedOperation
from typing import TextIO, cast

from reconciler import config, kept_plan, leftover, render, selection
from reconciler.config import DesiredState
from reconciler.connect import connect
from reconciler.errors import ConfigError
from reconciler.interrupt import Interrupts
from reconciler.model import Action, Plan, World
from reconciler.observe import observe, paused_gc
from reconciler.observe.hasher import Progress
from reconciler.plan import plan as make_plan
from reconciler.state import StateDB

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_PERSON, EXIT_LOCKED = 0, 1, 2, 3, 4


class Out:
    """Where text goes; tests pass their own streams. A stream that is None
    (Python's ``sys.stderr`` when the caller closed it: ``2>&-``) is
    /dev/null: what goes there is dropped, and a closed stdin is no
    terminal to ask."""

    def __init__(self, out: TextIO | None, err: TextIO | None, stdin: TextIO | None) -> None:
        self.out = out if out is not None else _nowhere()
        self.err = err if err is not None else _nowhere()
        self.stdin = stdin if stdin is not None else StringIO()  # at its end, no terminal
        #: For the run's record: its own row (an apply that acted), every
        #: "error:" line said (``reason``), and what the plan held.
        self.run_id: int | None = None
        self.reasons: list[str] = []
        self.summary: dict[str, int] = {}
        #: The state directory's log (plan, apply); -q keeps stdout quiet.
        self.log: logging.Logger | None = None
        self.quiet = False
        #: This command is the whole process (the console script): what it
        #: holds at its end may be left for the process's exit (``let_go``).
        self.ends_process = False
        #: The CLI's signal handling for this command, when it installed one.
        self.stop: Interrupts | None = None

    @property
    def reason(self) -> str:
        """Why the run ended as it did, for its record: each "error:" line
        said, in the order said (``finish`` says the one that chose the
        exit code first), one per line."""
        return "\n".join(self.reasons)

    def say(self, text: str = "") -> None:
        if self.log is not None and text:
            self.log.info(text)
        if not self.quiet:
            self.out = print_to(text, self.out, lambda e: self._lost("stdout", e))

    def warn(self, text: str) -> None:
        if text.startswith("error: "):
            self.reasons.append(text.removeprefix("error: ").splitlines()[0].strip())
        if self.log is not None:
            self.log.warning(text)
        self.err = print_to(text, self.err, lambda e: self._lost("stderr", e))

    def put(self, text: str, *, err: bool = False) -> None:
        """Write ``text`` as it is (a prompt, a live progress line) to stdout
        or stderr, failing as ``say`` and ``warn`` do: never the run."""
        if err:
            self.err = print_to(text, self.err, lambda e: self._lost("stderr", e), end="")
        else:
            self.out = print_to(text, self.out, lambda e: self._lost("stdout", e), end="")

    def live(self) -> TextIO:
        """stderr for a live line another module draws (``StageProgress``),
        written through ``put``."""
        return cast(TextIO, _Live(self))

    def _lost(self, which: str, e: OSError) -> None:
        """``which`` could not be written (a full disk under cron's ``>>
        file``, a quota, a terminal gone): said once, on stderr (unless it
        is stderr that failed) and in the log. The run goes on, and its exit
        is the work's (README: an apply under way is not abandoned because
        nobody reads its report)."""
        said = (
            f"warning: {which} cannot be written ({e.strerror or e}); the rest of this "
            "run's output there is dropped; the run goes on, its exit is the work's"
        )
        if self.log is not None:
            self.log.warning(said)
        if which != "stderr":
            self.err = print_to(said, self.err, lambda e: self._lost("stderr", e))


class _Live(TextIOBase):
    """stderr, as a stream whose writes are ``Out.put``'s."""

    def __init__(self, io: Out) -> None:
        super().__init__()
        self._io = io

    def write(self, text: str) -> int:
        self._io.put(text, err=True)
        return len(text)

    def isatty(self) -> bool:
        return is_tty(self._io.err)


def let_go(io: Out, value: object) -> None:
    """Done with ``value`` (the observed world). The caller's ``del`` frees
    it, unless the command is the whole process: then it is left to the
    process's exit (``reconciler.leftover``)."""
    if io.ends_process:
        leftover.leave(value)


def print_to(
    text: str, stream: TextIO, failed: Callable[[OSError], None] | None = None, *, end: str = "\n"
) -> TextIO:
    """Print to ``stream``; once it cannot be written the rest of the output
    is dropped and the command goes on: a reader gone (``reconcile plan |
    head -1``) is no error and is not told; any other failure (a full disk,
    a quota, EIO from a terminal that went away) is told to ``failed``,
    once. An apply under way is not abandoned because nobody reads its
    report."""
    try:
        print(text, file=stream, end=end, flush=True)
    except OSError as e:
        try:
            # The interpreter flushes sys.stdout once more at exit; point the
            # descriptor at /dev/null so that last flush cannot complain.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, UnsupportedOperation):
            pass
        if failed is not None and not isinstance(e, BrokenPipeError):
            failed(e)
        return _nowhere()
    return stream


def _nowhere() -> TextIO:
    """Where the text for a closed stream goes: dropped."""
    return cast(TextIO, _Dropped())


class _Dropped(TextIOBase):
    """A stream that takes every write and keeps nothing (no descriptor to
    leave open, as /dev/null opened for it would)."""

    def write(self, text: str) -> int:
        return len(text)


def load(args: argparse.Namespace) -> DesiredState:
    return config.load(config.config_path(args.config))


def observe_progress(io: Out) -> Progress:
    tty = is_tty(io.err)

    def progress(label: str, done: int, total: int) -> None:
        if tty:
            io.put(f"\r{label}: {done}/{total}" + ("\n" if done == total else ""), err=True)

    return progress


def observe_and_plan(
    desired: DesiredState,
    db: StateDB,
    io: Out,
    now: datetime | None,
    accept_shrink: bool,
    *,
    kept: bool = False,
) -> tuple[World | None, Plan]:
    """Observe and plan. With ``kept`` (``reconcile plan``), a converged plan
    kept by an earlier run is given again while nothing it was made from
    changed (``reconciler.kept_plan``): then there is no world (None)."""
    conn = connect(desired)
    now = now or datetime.now(UTC)
    with paused_gc():
        try:
            found = kept_plan.check(desired, db, conn, now, accept_shrink) if kept else None
            if found is not None and found.kept is not None:
                return None, found.kept
            world = observe(
                desired,
                db,
                conn,
                now=now,
                progress=observe_progress(io),
                accept_shrink=accept_shrink,
                walked=found.walks if found is not None else None,
            )
        finally:
            conn.close()
        plan = make_plan(desired, world, now)
        if found is not None:
            kept_plan.keep(found, desired, db, world, plan, now)
        return world, plan


#: The run summary's count of source files that could not be read.
UNREADABLE = "unreadable"
#: The run summary's count of actions an apply showed and did not do: the
#: person answered N at its prompt (``status``: no apply that worked).
DECLINED = render.DECLINED


#: A problem that ends a run: its exit code and its "error:" line.
Problem = tuple[int, str]


def notes_exit(plan: Plan, io: Out) -> int:
    """Exit code and stderr lines for what the plan could not look at
    (``note_problems``), said and recorded."""
    return finish(io, note_problems(plan, io))


def note_problems(plan: Plan, io: Out, *, done: bool = True) -> list[Problem]:
    """What the plan could not look at, one problem per kind: a guard that
    wants a person (3), a store or source that could not be read, a
    library file no target holds, a source file not read (1). Waiting
    items and per-item errors are not run failures. Every kind present is
    said, whatever else ends the run: a guard beside an unreadable store
    names both (cron's ``-q`` hides the '!' notes on stdout), and the run's
    record names what it did not read (``census.verdict``). ``done``:
    False when the run did nothing (answered N, no ``--yes``): no line then
    says "the rest was done"."""
    rest = "the rest was done" if done else "nothing was done"
    blocked = [n.subject for n in plan.notes if n.status == "blocked"]
    unavailable = [n.subject for n in plan.notes if n.status == "unavailable"]
    unreadable = [n.subject for n in plan.notes if n.status == "unreadable"]
    lost = [n.subject for n in plan.notes if n.status == "lost"]
    if unreadable:
        # Kept with the run, whatever else ends it: the census knows nothing
        # of a file never read, and says no "every item is archived" beside
        # it (census.proof).
        io.summary[UNREADABLE] = len(unreadable)
    out: list[Problem] = []
    if blocked:
        out.append(
            (
                EXIT_PERSON,
                f"a guard held back {', '.join(blocked)} (see '!' above); "
                "check it, then run again (with --accept-shrink if the shrink is real)",
            )
        )
    if unavailable:
        out.append(
            (
                EXIT_ERROR,
                f"{', '.join(unavailable)} could not be read (see '!' above); {rest}",
            )
        )
    if lost:
        out.append(
            (
                EXIT_ERROR,
                f"{len(lost)} file(s) lost: held by no store any more (a library file "
                "gone, an encoded file's original) (see 'x' above); put them back from a "
                "backup of your own",
            )
        )
    if unreadable:
        out.append(
            (
                EXIT_ERROR,
                f"{len(unreadable)} file(s) could not be read (see 'x' above); "
                f"{rest}; fix them and the next run picks them up",
            )
        )
    return out


def finish(io: Out, problems: Sequence[Problem]) -> int:
    """Say every problem on stderr, one "error:" line each, the one that
    decides the exit code first, and return that code (README, Exit codes):
    a signal's 128 + N before a person needed (3) before an error (1);
    among equals, the first given. No problem: 0."""
    ranked = sorted(problems, key=lambda p: _RANK.get(p[0], 0 if p[0] >= 128 else 3))
    for _, text in ranked:
        io.warn(f"error: {text}")
    return ranked[0][0] if ranked else EXIT_OK


#: Which exit code wins when one run has several problems (lower first); a
#: signal's (128 + N) comes before them all.
_RANK = {EXIT_PERSON: 1, EXIT_ERROR: 2}


def selected(
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


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # closed
        return False
