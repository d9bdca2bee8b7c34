"""SIGINT, SIGTERM and SIGHUP during a run: stop cleanly, never half-way.

``Interrupts`` installs handlers for the length of a command (main thread
only, restored afterwards). Before the applier starts, nothing has changed
the world yet, so the first signal raises ``Interrupted`` at once (observe
and plan only read). Once ``applying()`` is entered the handlers never
raise: a raise would unwind the main thread past worker threads that are
still writing, and past the lock that keeps the next run out. Instead:

- the first signal sets ``stopping``: no action starts any more, actions in
  flight finish and are journaled, and the run ends ``interrupted``;
- a second signal sets ``abandoning``: in-flight work is abandoned at its
  next safe point (a chunk of a copy, an encoder process killed), its
  temporaries are removed, and the run ends as soon as every worker is gone.

Some work runs C code that calls back into Python (matplotlib's renderer
drawing the report's plots): raised inside such a callback, ``Interrupted``
would become that code's own error, or be dropped. Within ``deferred()``
the first signal only sets a flag; ``check()``, called between plots and
as the block ends, raises it there.

The exit code is 128 + the signal number (130 for SIGINT, 143 for SIGTERM,
129 for SIGHUP),
as shells report a process a signal stopped.

Once the applier has returned (every action finished, or stopped), or
``over()`` says the command's work is done, a signal is late: it is noted
in ``late`` and changes nothing. It stopped nothing, so it must not turn a
finished run into an "interrupted" one (systemd's stop as the report prints).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

#: The signals a run stops on: Ctrl-C, what cron, systemd and kill send,
#: and a hangup (the terminal closed, an ssh session dropped), which would
#: otherwise kill the run as SIGKILL does, unrecorded. A signal the command
#: was started with ignored (``nohup``, ``cmd &`` in a script) stays ignored.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Those the process was started with ignored, as it found them on import
#: (before any handler of ours).
_IGNORED = frozenset(sig for sig in SIGNALS if signal.getsignal(sig) is signal.SIG_IGN)


def stops_on() -> tuple[signal.Signals, ...]:
    """The signals a command handles: ``SIGNALS`` but those it was started
    with ignored (``nohup`` ignores SIGHUP so that the run outlives the
    terminal; a handler of ours would undo that)."""
    return tuple(sig for sig in SIGNALS if sig not in _IGNORED)


class Interrupted(BaseException):
    """A signal stopped the command before it changed anything.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` on the
    way up may swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


#: Set while a run is abandoning its in-flight work (a second signal): long
#: copies check it between chunks. Process-wide because a signal is.
ABANDON = threading.Event()


class Abandoned(BaseException):
    """Raised inside in-flight work once the run is abandoning it."""


def check_abandoned() -> None:
    """A safe point in long work: give up here if the run is abandoning."""
    if ABANDON.is_set():
        raise Abandoned("abandoned after a second signal")


class Interrupts:
    """Signal state for one command; a context manager that owns the handlers."""

    def __init__(self, *, process: bool = False) -> None:
        #: The command is the whole process (the console script): once it is
        #: over, signals stay ignored through the interpreter's teardown.
        self.process = process
        self.signum: int | None = None
        self.stopping = threading.Event()
        self.abandoning = threading.Event()
        self._applying = False
        self._applied = False
        self._over = False
        self._deferring = False
        #: A signal that came while raising was deferred (``deferred``).
        self._deferred: int | None = None
        #: Signals that came once the work was done (see the module's docstring).
        self.late: list[int] = []
        self._on_abandon: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in stops_on():
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.process else handler)
        self._previous.clear()
        ABANDON.clear()

    @contextmanager
    def applying(self) -> Iterator[None]:
        """While the world is being changed, signals only set flags."""
        self._applying = self._applied = True
        try:
            if self.signum is not None:  # arrived just before: stop at once
                self.stopping.set()
            yield
        finally:
            self._applying = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """While C code that calls back into Python runs (matplotlib's Agg
        renderer drawing the report's plots): a signal only sets a flag,
        raised as ``Interrupted`` by ``check`` at the next safe point, and
        at the latest as this block ends. Raised at any bytecode, it would
        surface inside such a callback, where the C code turns it into
        another error ("Invalid bounding box") or drops it."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

    def check(self) -> None:
        """A safe point of deferred work: stop here if a signal came."""
        signum, self._deferred = self._deferred, None
        if signum is not None:
            raise Interrupted(signum)

    def over(self) -> None:
        """The command's work is done and its exit chosen: a signal from
        now on is late."""
        self._over = True

    def on_abandon(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (from the signal handler) when a second signal arrives."""
        self._on_abandon.append(fn)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._over or (self._applied and not self._applying):
            self.late.append(signum)  # reporting what was done: nothing to stop
            return
        first = self.signum is None
        if first:
            self.signum = signum
        if not self._applying:
            if first and self._deferring:
                self._deferred = signum  # raised at the next safe point (``check``)
            elif first:
                raise Interrupted(signum)
            return  # unwinding: let it finish
        if not self.stopping.is_set():
            self.stopping.set()
            return
        if not self.abandoning.is_set():
            self.abandoning.set()
            ABANDON.set()
            for fn in self._on_abandon:
                fn()
