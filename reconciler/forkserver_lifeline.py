"""Imported only by the forkserver process (a preload module, see encoder_pool.py):
the forkserver dies with the run that started it (``reconciler.lifeline``).

The run names itself in ``RUN_PID_ENV`` before it starts the forkserver: a
run killed while the forkserver was still starting (before the line below
took effect) would leave it, and the resource tracker beside it, running
for ever; such a forkserver finds its parent gone and ends at once.

Importing it anywhere else would tie that process to its parent's life, so
nothing else imports it.
"""

from __future__ import annotations

import os

from reconciler.lifeline import RUN_PID_ENV, die_with_parent

die_with_parent()
_run = os.environ.get(RUN_PID_ENV, "")
if _run.isdigit() and os.getppid() != int(_run):
    os._exit(0)  # the run died before the line above took effect
