"""Run ``reconcile`` as its console script does, SIGKILLed at a chosen system
call of its main process (a test helper, run as a script).

``RECONCILE_TEST_KILL_ON="EVENT|REGEX|N"`` kills the process the N-th time
the audit event EVENT (``os.rename``, ``os.link``, ``open``, ``os.remove`` ...)
has a path argument matching REGEX: kills at points the journal's crash
points (``reconciler.crashpoint``) do not reach, with nothing of the tool
changed."""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any


def _kill_on(spec: str) -> None:
    event, pattern, n = spec.split("|")
    rx, want, seen = re.compile(pattern), int(n), [0]

    def hook(ev: str, args: tuple[Any, ...]) -> None:
        if ev != event:
            return
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)) and rx.search(os.fsdecode(a)):
                seen[0] += 1
                if seen[0] == want:
                    os.kill(os.getpid(), signal.SIGKILL)
                return

    sys.addaudithook(hook)


if __name__ == "__main__":
    if spec := os.environ.get("RECONCILE_TEST_KILL_ON", ""):
        _kill_on(spec)
    from reconciler.cli import main

    sys.exit(main())
