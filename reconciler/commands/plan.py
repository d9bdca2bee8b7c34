"""``reconcile plan``: observe, plan, print (text, ``--json``, ``--out``)."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime
from pathlib import Path

import attrs

from reconciler import places, planfile, render
from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_OK,
    Out,
    let_go,
    load,
    notes_exit,
    observe_and_plan,
    selected,
)
from reconciler.model import Action
from reconciler.plan import fingerprint
from reconciler.state import StateDB


def plan_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    desired = load(args)
    if args.out:
        places.refuse_output(desired, Path(args.out), "--out")
    db = StateDB.in_dir(desired.state_dir)
    try:
        world, plan = observe_and_plan(desired, db, io, now, args.accept_shrink, kept=True)
    finally:
        db.close()
    if (args.out or args.json) and world is not None:  # (a plan kept has its basis)
        plan = attrs.evolve(plan, basis=fingerprint(world))
    if not plan.actions:
        # Converged (cron's nightly plan): what follows is a few lines of
        # text. A plan with work to show renders it after the world is freed.
        let_go(io, world)
    del world
    held: tuple[Action, ...] = ()
    if args.only or args.target:
        plan, held = selected(args, desired, plan)
    io.summary = dict(Counter(a.kind for a in plan.actions))
    if args.out:
        Path(args.out).write_text(planfile.dumps(plan, held))
    if args.json:
        io.say(planfile.dumps(plan, held).rstrip("\n"))
    else:
        # actions --only/--target left out are still to do: never "matches"
        io.say(render.plan_text(plan, detail=args.detail, pending=len(held)))
        if held:
            io.say(f"{len(held)} action(s) not selected by --only/--target")
        if args.out:
            io.say(f"Saved to {args.out}; run: reconcile apply {args.out}")
    problem = notes_exit(plan, io)
    if problem:
        return problem
    # Changes pending whether or not --only/--target selected them: the
    # library does not match until the actions left out are done too.
    if args.detailed_exitcode and (plan.actions or held):
        return EXIT_CHANGES
    return EXIT_OK
