"""The applier's encoder processes for one run: sized, started, and killed.

Encodes are CPU-bound, so they run in a process pool from a forkserver
(never a fork of a process that is running threads), sized per run so that
processes x threads per encoder = cores. The workers hold the run lock and
die with the run (``reconciler.lifeline``); a second signal kills them, and
their ffmpeg, at once (``reconciler.interrupt``).

A worker may also die of a signal the run did not send: systemd's stop
(KillMode=control-group) signals every process of the unit at once, and
the OOM killer picks the biggest process, often an encoder decoding a large
photo. Either way the whole pool breaks (every encode in flight is lost).
After a signal to the run that is its stop: the encodes are interrupted.
Without one, each lost encode fails (``EncoderLost``, tried again next
run) and the later encodes get a new pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

import attrs

from reconciler import lifeline, media
from reconciler.interrupt import Abandoned, Interrupts

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Why an encode ended when the run's first signal reached its encoder too.
STOPPED_WITH_THE_RUN = "encoder stopped with the run by a signal"

#: How long a lost encoder waits for the signal that may have come with its
#: death: systemd signals the run and its encoders in no set order, and the
#: run's handler runs only once its main thread next gets to it.
SIGNAL_GRACE_S = 2.0


class EncoderLost(media.EncodeTimeout):
    """The encoder process died during the encode, with no signal to the
    run (the OOM killer, a person's kill): the machine, not the file, failed
    it, so it is not settled and the next run tries again (as a timeout)."""


class _Pool(ProcessPoolExecutor):
    """A process pool whose ``submit`` never raises for a broken pool: the
    future it returns carries the error, so ``EncoderPool.result`` decides
    what a lost encode is, wherever the pool broke."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except BrokenProcessPool as e:
            lost: Future[_T] = Future()
            lost.set_exception(e)
            return lost

    @property
    def broken(self) -> bool:
        return bool(getattr(self, "_broken", False))  # no public API in 3.11


@attrs.define
class EncoderPool:
    #: Flags set by signals; a second one kills the encoders (``kill``).
    interrupts: Interrupts
    #: The run lock's descriptor: encoder workers hold a duplicate, so
    #: the lock outlives a killed run until its last worker is gone.
    lock_fd: int | None
    #: encoder processes, and threads each may use (set per run by ``size``)
    processes: int = attrs.field(factory=lambda: os.cpu_count() or 1)
    threads: int = 1
    _pool: _Pool | None = attrs.field(default=None, init=False)
    #: Encode threads share the pool, and replace it once it is broken.
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    #: Pools that broke: shut down with the run's (their workers are gone).
    _broken: list[_Pool] = attrs.field(factory=list, init=False)

    def size(self, actions: int) -> int:
        # CPU-bound: pool x threads per encoder = cores. Few encodes get
        # more threads each (one long video uses the whole machine);
        # many get one core each, which wastes nothing on sync.
        cores = os.cpu_count() or 1
        self.processes = max(1, min(cores, actions or cores))
        self.threads = max(1, cores // self.processes)
        return self.processes

    def executor(self) -> ProcessPoolExecutor:
        """The pool; a new one when the last broke (an encoder was killed),
        unless the run is stopping: then none starts, and what is submitted
        to the broken one is interrupted (``result``)."""
        with self._lock:
            stopping = self.interrupts.stopping.is_set()
            if self._pool is not None and self._pool.broken and not stopping:
                self._broken.append(self._pool)
                self._pool = None
            return self._started()

    def _started(self) -> _Pool:
        if self._pool is None:
            # forkserver: never fork a process that is running threads.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["reconciler.forkserver_lifeline"])
            from multiprocessing import forkserver

            os.environ[lifeline.RUN_PID_ENV] = str(os.getpid())  # (forkserver_lifeline)
            forkserver.ensure_running()
            lock = None if self.lock_fd is None else lifeline.InheritedFd(self.lock_fd)
            self._pool = _Pool(
                self.processes,
                mp_context=ctx,
                initializer=lifeline.encoder_init,
                initargs=(os.getpid(), lock),
            )
        return self._pool

    def close(self) -> None:
        with self._lock:
            pools = [*self._broken, *([self._pool] if self._pool is not None else [])]
            self._pool, self._broken = None, []
        for pool in pools:
            pool.shutdown()  # waits for every encoder process to exit

    def kill(self) -> None:
        """Second signal: encoders (and their ffmpeg) die now; their temporary
        outputs are removed by the workers' cleanup or the closing sweep."""
        processes = getattr(self._pool, "_processes", None) or {}  # no public API in 3.11
        try:
            procs = list(processes.values())
        except RuntimeError:  # the pool's manager thread changed it meanwhile
            procs = list(processes.values())
        for proc in procs:
            for kill in (os.killpg, os.kill):  # its group (with ffmpeg), else itself
                try:
                    kill(proc.pid, signal.SIGKILL)
                    break
                except (ProcessLookupError, PermissionError):
                    continue

    def result(self, fut: Future[media.EncodeResult]) -> media.EncodeResult:
        """The encode's result. Its encoder lost: ``Abandoned`` (the action
        is interrupted) when a signal to the run came with the loss, else
        ``EncoderLost`` (the action fails, tried again next run)."""
        try:
            return fut.result()
        except BrokenProcessPool:
            if self.interrupts.abandoning.is_set():  # we killed it
                raise Abandoned("encoder killed after a second signal") from None
            if self.interrupts.stopping.wait(SIGNAL_GRACE_S):
                raise Abandoned(STOPPED_WITH_THE_RUN) from None
            raise EncoderLost(
                "the encoder process was killed (out of memory? see the system log); "
                "the library keeps its file and the next run encodes it again"
            ) from None
