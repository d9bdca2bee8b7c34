"""``reconcile report FILE`` (also ``status --html FILE``): the run history
as one self-contained HTML page with plots (reconciler/report.py).

Read from the state database alone, like ``status`` without its phone and
session lines: no source, target or service is asked, so the report can be
made while a run holds the lock, and from a copy of the database.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from reconciler import lock, places
from reconciler.census import counted_now, proof
from reconciler.commands.common import EXIT_ERROR, EXIT_OK, Out, load
from reconciler.state import StateDB

#: Runs plotted: years of nightly plan and apply, few enough to draw in a second.
RUNS_PLOTTED = 2000
#: Runs listed in the table, newest first.
RUNS_LISTED = 15


def report_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    # Here, not at the top: matplotlib takes most of a second to import, and
    # every other command (a cron apply, a shell completion) would pay it.
    from reconciler import report

    desired = load(args)
    places.refuse_output(desired, Path(args.html), "the report")
    db = StateDB.in_dir(desired.state_dir)
    try:
        history = db.census_history(RUNS_PLOTTED)
        runs = db.last_runs(RUNS_LISTED)
        last_apply = db.last_apply()
        state_path = str(db.path)
        # What may be said of the census now, by status's own rules.
        proven = proof(db, desired, counted_now(db, desired))
    finally:
        db.close()
    # The plots are drawn by C++ that calls back into Python: a signal then
    # stops the report between plots, never inside a callback (``deferred``).
    stop = io.stop
    with stop.deferred() if stop is not None else nullcontext():
        text = report.page(
            history=history,
            runs=runs,
            generated_at=now or datetime.now(UTC),
            state_path=state_path,
            proof=proven,
            checkpoint=stop.check if stop is not None else None,
            # a run with no exit: alive while it holds the lock, as status says
            running=lock.held_now(desired.state_dir),
            last_apply=last_apply,
        )
    path = Path(args.html)
    if not report.write(path, text):
        io.warn(f"error: {path} is being written by another report; run again once it is done")
        return EXIT_ERROR
    io.say(f"report written to {path} ({len(history)} run(s) with figures, {len(runs)} listed)")
    return EXIT_OK
