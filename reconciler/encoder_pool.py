"""The applier's encoder processes for one run: sized, started, and killed.

Encodes are CPU-bound, so they run in a process pool from a forkserver
(never a fork of a process that is running threads), sized per run so that
processes x threads per encoder = cores. The workers hold the run lock and
die with the run (``reconciler.lifeline``); a second signal kills them, and
their ffmpeg, at once (``reconciler.interrupt``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import attrs

from reconciler import lifeline, media
from reconciler.interrupt import Abandoned, Interrupts


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
    _pool: ProcessPoolExecutor | None = attrs.field(default=None, init=False)

    def size(self, actions: int) -> int:
        # CPU-bound: pool x threads per encoder = cores. Few encodes get
        # more threads each (one long video uses the whole machine);
        # many get one core each, which wastes nothing on sync.
        cores = os.cpu_count() or 1
        self.processes = max(1, min(cores, actions or cores))
        self.threads = max(1, cores // self.processes)
        return self.processes

    def executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork a process that is running threads.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["reconciler.forkserver_lifeline"])
            from multiprocessing import forkserver

            forkserver.ensure_running()
            lock = None if self.lock_fd is None else lifeline.InheritedFd(self.lock_fd)
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=ctx,
                initializer=lifeline.encoder_init,
                initargs=(os.getpid(), lock),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()  # waits for every encoder process to exit
            self._pool = None

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
        try:
            return fut.result()
        except BrokenProcessPool:
            if self.interrupts.abandoning.is_set():  # we killed it
                raise Abandoned("encoder killed after a second signal") from None
            raise
