"""The command line: ``main(argv) -> int``.

With reconciler/commands/, the only code that prints, prompts or picks exit codes (DESIGN.md):
0 converged / success; 1 error; 2 changes pending (plan --detailed-exitcode);
3 a person is needed (login expired, a safety gate refused a removal);
4 another run holds the lock; 128 + N stopped by signal N (130 SIGINT, 129 SIGHUP,
143 SIGTERM: ``apply`` stops cleanly, see reconciler/interrupt.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from reconciler import config, history, logfile, render, selection, visible
from reconciler.commands.common import (
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_PERSON,
    Out,
    load,
    print_to,
)
from reconciler.errors import (
    ConfigError,
    LockHeldError,
    LoginRequiredError,
    ReconcileError,
    SafetyError,
    StateError,
)
from reconciler.interrupt import Interrupted, Interrupts, stops_on
from reconciler.state import unusable


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconcile")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, the package's version looked up only when asked:
    importlib.metadata (with email's parser) would otherwise load, and scan
    the installed packages, at every command's start."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser._print_message(f"reconcile {_version()}\n", sys.stdout)
        parser.exit()


def _stages(text: str) -> frozenset[str]:
    try:
        return selection.parse_stages(text)
    except selection.UnknownStage as e:
        raise argparse.ArgumentTypeError(str(e)) from e


_DETAIL_HELP = (
    "one line per action, item and outcome (default: grouped by kind and reason, "
    f"the first {render.GROUP_LINES} of each)"
)


def _add_selection(sub: argparse.ArgumentParser) -> None:
    """--only and --target, the same for plan (what a saved plan holds) and apply."""
    sub.add_argument(
        "--only",
        metavar="STAGES",
        type=_stages,
        default=frozenset(),
        help=f"run only these stages, comma-separated: {', '.join(selection.STAGES)} "
        "(an action whose dependency is not selected waits for a later run)",
    )
    sub.add_argument(
        "--target",
        metavar="ID",
        action="append",
        default=[],
        help="act only on this source, target or 'library', with what that needs "
        "(repeatable); removals still need their verified copies",
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
    p.add_argument("--version", action=_VersionAction)
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
    _add_selection(sp)

    sa = sub.add_parser("apply", parents=[common], help="make the world match the desired state")
    sa.add_argument("planfile", nargs="?", help="a plan saved with `plan --out`")
    sa.add_argument("--yes", "-y", action="store_true", help="do not ask (cron)")
    sa.add_argument(
        "--accept-shrink",
        action="store_true",
        help="trust a source listing that shrank sharply since the last run",
    )
    _add_selection(sa)
    sa.add_argument("--detail", action="store_true", help=_DETAIL_HELP)

    ss = sub.add_parser(
        "status", parents=[common], help="did the last run work, and what is waiting"
    )
    form = ss.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the same, as JSON for scripts")
    form.add_argument(
        "--html", metavar="FILE", help="write the HTML report with plots to FILE (as `report`)"
    )
    sr = sub.add_parser(
        "report", parents=[common], help="write the run history as an HTML page with plots"
    )
    sr.add_argument("html", metavar="FILE", help="the page to write (replaced whole)")
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
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (argcomplete's own test)
        import argcomplete

        argcomplete.autocomplete(parser)
    _fill_closed_descriptors()
    # A stream the caller closed is None here: Out makes it /dev/null.
    io = Out(stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin)
    io.ends_process = argv is None  # the console script: the process ends with the command
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage, --help, --version: said, nothing to record
        with _finishing(program=argv is None):
            return EXIT_ERROR if e.code else EXIT_OK
    started = datetime.now(UTC)
    io.quiet = args.quiet
    # One signal handling for the whole command (apply's included): a signal
    # stops the work (exit 128 + N, one line on stderr) until the work is
    # done and its exit chosen; from then on (the run being recorded, the
    # interpreter's teardown) it is only noted, and neither loses the run's
    # record nor turns that exit into death by a signal.
    stop = io.stop = Interrupts(process=argv is None) if args.command in _STOPPABLE else None
    code: int | None = None
    try:
        with stop if stop is not None else contextlib.nullcontext():
            try:
                try:
                    if args.command in ("plan", "apply"):
                        _open_log(args, io)
                    code = _dispatch(args, io, now)
                finally:
                    if stop is not None:
                        stop.over()
            except (KeyboardInterrupt, Interrupted) as e:  # before it began, or as it returned
                code = _stopped_outside(io, code, e)
            if args.command in ("plan", "apply"):
                _record_run(args, io, started, code)
                if io.log is not None:
                    for signum in stop.late if stop is not None else ():
                        name = signal.Signals(signum).name
                        io.log.info(f"{name} after the run was done; its exit stands")
                    io.log.info(f"{args.command} exited {code}")
    finally:
        logfile.close_log()
    return code


#: The commands a signal stops cleanly (exit 128 + N, one stderr line); the
#: others (login, emulator…) keep Python's own Ctrl-C.
_STOPPABLE = frozenset({"plan", "apply", "status", "report"})


def _stopped_outside(io: Out, code: int | None, e: BaseException) -> int:
    """A signal that stopped the command outside its own handling: before it
    began (opening the log), or once it had returned (``code``: chosen, it
    stands)."""
    if code is not None:
        return code
    io.warn(f"error: {_INTERRUPTED}")
    return 128 + e.signum if isinstance(e, Interrupted) else EXIT_SIGINT


def _fill_closed_descriptors() -> None:
    """Put /dev/null at a standard descriptor the caller closed (``<&-``,
    ``2>&-``). Left free, the next file this run opens (the state database,
    the log) would take its number, and what writes to "stderr" (ffmpeg
    beneath us, a library's warning) would write into that file."""
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, mode)  # the lowest free number: fd itself, as a rule
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)  # as a standard descriptor is, for the tools we run
    # Python found them closed at its start and made them None; a library
    # that asks ``sys.stdout.isatty()`` as it is imported (pyicloud does)
    # would fail the run: they read and write nowhere instead.
    if sys.stdin is None:
        sys.stdin = open(os.devnull)  # noqa: SIM115 (the process's own, for its life)
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


_INTERRUPTED = "interrupted; what was done is kept, run again to continue"
#: 128 + SIGINT, as shells report a process Ctrl-C stopped (README, Exit codes).
EXIT_SIGINT = 128 + signal.SIGINT


@contextlib.contextmanager
def _finishing(*, program: bool) -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP only noted (in the list given) while the run is
    recorded; handlers restored afterwards, or, for the program, ignored
    from then on: nothing is left to stop."""
    late: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield late
        return
    previous = {
        sig: signal.signal(sig, lambda signum, _: late.append(signum)) for sig in stops_on()
    }
    try:
        yield late
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if program else handler)


def _open_log(args: argparse.Namespace, io: Out) -> None:
    """The run's log file; a config that does not load is reported by the
    command itself (and then there is no state directory to log into)."""
    try:
        desired = load(args)
        io.log = logfile.open_log(
            desired.state_dir,
            max_bytes=max(1, int(desired.log.max_file_size_mb * 1_000_000)),
            backups=desired.log.backup_count,
            verbose=args.verbose,
            failed=lambda text: _tell(io, text),
        )
    except ReconcileError:
        return
    except OSError as e:
        # The run goes on without its log; the person is told why.
        shown = visible.escape_controls(f"{e.filename or ''}: {e.strerror or e}")
        io.warn(f"warning: not logging this run to the state directory ({shown}); fix that")
        return
    shown = visible.escape_controls(str(config.config_path(args.config)))
    io.log.info(f"reconcile {args.command} (config {shown})")


def _tell(io: Out, text: str) -> None:
    """``text`` on stderr alone: what the log could not take."""
    io.err = print_to(visible.escape_controls(text), io.err)


#: command -> (module under reconciler.commands, function): a command's
#: module is imported when it runs, so a plan does not load the applier,
#: the report or the iCloud login (0.25 s of every start before).
_COMMANDS = {
    "plan": ("plan", "plan_command"),
    "apply": ("apply", "apply_command"),
    "status": ("status", "status_command"),
    "report": ("report", "report_command"),
    "validate": ("setup", "validate_command"),
    "init-target": ("setup", "init_target_command"),
    "import-legacy": ("setup", "import_legacy_command"),
    "login": ("setup", "login_command"),
    "emulator": ("setup", "emulator_command"),
}


def _handler(command: str) -> Callable[[argparse.Namespace, Out, datetime | None], int]:
    module, name = _COMMANDS[command]
    handler: Callable[[argparse.Namespace, Out, datetime | None], int] = getattr(
        importlib.import_module(f"reconciler.commands.{module}"), name
    )
    return handler


def _dispatch(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    command = args.command
    if command == "status" and args.html:
        command = "report"  # `status --html FILE`, the name for it
    try:
        return _handler(command)(args, io, now)
    except ConfigError as e:
        for line in e.problems:
            io.warn(f"error: {visible.escape_controls(line)}")
        return EXIT_ERROR
    except LoginRequiredError as e:
        io.warn(f"error: {visible.escape_controls(str(e))}")
        return EXIT_PERSON
    except SafetyError as e:
        io.warn(f"error: {visible.escape_controls(str(e))}")
        return EXIT_PERSON
    except LockHeldError as e:
        io.warn(f"error: {visible.escape_controls(str(e))}")
        return EXIT_LOCKED
    except ReconcileError as e:  # provider, state, stale plan, media…
        io.warn(f"error: {visible.escape_controls(str(e))}")
        return EXIT_ERROR
    except Interrupted as e:
        if command == "apply":  # stopped before the applier began
            io.warn(f"error: {e} before anything was changed; run again to continue")
        else:
            io.warn(f"error: {_INTERRUPTED}")
        return 128 + e.signum
    except KeyboardInterrupt:  # Ctrl-C in a command without Interrupts (plan, status…)
        io.warn(f"error: {_INTERRUPTED}")
        return EXIT_SIGINT
    except sqlite3.DatabaseError as e:
        # Raised mid-query by a damaged file (truncated, disk error), a lock
        # another program holds, or a file that became read-only: the state
        # database is named with what to do.
        _log_bug(args)
        problem = _state_problem(args, e)
        io.warn(f"error: {visible.escape_controls(str(problem))}")
        return EXIT_LOCKED if isinstance(problem, LockHeldError) else EXIT_ERROR
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            return _bug(args, io, e)
        # A full disk, a read-only mount, a missing folder or a permission
        # on a path the person chose: theirs to fix, not a bug.
        _log_bug(args)
        where = f"{e.filename}: " if e.filename else ""
        shown = visible.escape_controls(f"{where}{e.strerror or e}")
        io.warn(f"error: {shown}; fix that, then run again")
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


def _record_run(args: argparse.Namespace, io: Out, started: datetime, code: int) -> None:
    """Every plan and apply goes into the history, whatever its exit."""
    try:
        desired = load(args)
    except ReconcileError:
        return  # no valid config: no state directory to record in
    problem = history.record(
        desired,
        run_id=io.run_id,
        command=args.command,
        started_at=started,
        exit_code=code,
        reason=io.reason,
        summary=io.summary,
        warn=io.warn,
    )
    if problem is not None:  # the run's exit stands; its history could not be kept
        io.warn(f"warning: the run could not be recorded: {visible.escape_controls(problem)}")


def _bug(args: argparse.Namespace, io: Out, e: BaseException) -> int:
    where = _log_bug(args)
    shown = visible.escape_controls(f"{type(e).__name__}: {e}")
    io.warn(f"error: internal error ({shown}); this is a bug. Traceback: {where}")
    return EXIT_ERROR


def _state_problem(args: argparse.Namespace, e: sqlite3.DatabaseError) -> ReconcileError:
    try:
        state_dir = config.load(config.config_path(args.config)).state_dir
    except ReconcileError:
        return StateError(f"the state database is damaged ({e}); move it aside and run again")
    return unusable(state_dir / "state.db", e)


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
            # Never waiting on a pipe at the log's name (O_NONBLOCK: a FIFO
            # without a reader refuses at once).
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
            with open(fd, "a") as f:
                f.write(f"--- {datetime.now(UTC).isoformat()}\n{text}\n")
        except OSError:
            continue
        return str(path)
    return "(no writable place for the log)"


if __name__ == "__main__":
    sys.exit(main())
