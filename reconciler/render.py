"""Text for people: plans and apply results, in the Terraform manner.

Pure functions returning strings; cli.py and reconciler/commands/ are the only code that prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.model import Action, CopyToTarget, Note, Plan
from reconciler.visible import escape_controls

if TYPE_CHECKING:  # names only: a plan shown does not load the applier
    from reconciler.apply import ApplyResult, Outcome

NO_CHANGES = "No changes. The library matches desired_state.toml."

_PHRASES = {
    "download": "to download",
    "copy-to-library": "to copy into the library",
    "copy-to-target": "to copy to targets",
    "write-sidecar": "sidecars to write",
    "encode": "to encode",
    "remove-from-source": "to remove from sources",
    "free-staging-copy": "staging copies to free",
    "release-from-phone": "settled files to release from the phone",
}
_NOTE_SYMBOL = {
    "waiting": "…",
    "unavailable": "!",
    "blocked": "!",
    "error": "x",
    "unreadable": "x",
    "lost": "x",
    "shared-disk": "!",
    "skipped": "·",
}


def action_line(a: Action) -> str:
    kind = f"{a.kind}[{a.target_id}]" if isinstance(a, CopyToTarget) else a.kind
    return escape_controls(f"  {a.symbol} {kind} {_named(a)}: {a.reason}")


def _named(a: Action) -> str:
    """The subject, with what is the item's own (``Action.detail``)."""
    return f"{a.subject} ({a.detail})" if a.detail else a.subject


def note_line(n: Note) -> str:
    return escape_controls(
        f"  {_NOTE_SYMBOL.get(n.status, '?')} {n.status} {n.subject}: {n.reason}"
    )


def summary(plan: Plan, *, pending: int = 0) -> str:
    """The plan's last line. ``pending``: actions to do that this plan
    leaves out (not selected, or not in a saved plan): a plan without
    actions then does not say the library matches."""
    counts = plan.counts()
    parts = [f"{counts[k]} {_PHRASES[k]}" for k in _PHRASES if counts.get(k)]
    notes: dict[str, int] = {}
    for n in plan.notes:
        notes[n.status] = notes.get(n.status, 0) + 1
    tail = ", ".join(f"{v} {k}" for k, v in sorted(notes.items()))
    incomplete = notes.get("unavailable") or notes.get("blocked")
    if parts:
        head = "Plan: " + ", ".join(parts) + "."
    elif pending:
        head = (
            f"Nothing to run now; {pending} action(s) left out are still to do: "
            "the library does not match desired_state.toml yet."
        )
    elif incomplete:
        head = "No changes for what could be read; the rest is not known to match."
    elif notes.get("lost"):
        head = "Nothing to run, but the library does not match desired_state.toml: files are lost."
    else:
        head = NO_CHANGES
    return f"{head} ({tail})" if tail and parts else head + (f" ({tail})" if tail else "")


#: Lines shown of each group without --detail: enough to see what kind of
#: thing it is, few enough that 100k items still read as a page.
GROUP_LINES = 5
T = TypeVar("T")


def _groups(things: Iterable[T], key: Callable[[T], tuple[str, ...]]) -> list[list[T]]:
    """Group by ``key``, groups in order of their first member (a plan's
    order: dependencies first), members in their own order."""
    out: dict[tuple[str, ...], list[T]] = {}
    for t in things:
        out.setdefault(key(t), []).append(t)
    return list(out.values())


def size_of(a: Action) -> int | None:
    size = getattr(a, "size", None)
    return size if isinstance(size, int) else None


def _count(n: int, sizes: Sequence[int | None]) -> str:
    """ "12" or "12, 34.5 MB" when every member's size is known."""
    if sizes and all(s is not None for s in sizes):
        return f"{n}, {size_text(sum(s or 0 for s in sizes))}"
    return str(n)


def _members(names: Sequence[str], limit: int) -> list[str]:
    lines = [f"      {escape_controls(name)}" for name in names[:limit]]
    if len(names) > limit:
        lines.append(f"      … and {len(names) - limit} more (--detail lists every one)")
    return lines


def _kind(a: Action) -> str:
    return f"{a.kind}[{a.target_id}]" if isinstance(a, CopyToTarget) else a.kind


def _action_group(group: Sequence[Action], limit: int) -> list[str]:
    if len(group) == 1:
        return [action_line(group[0])]
    a = group[0]
    count = _count(len(group), [size_of(x) for x in group])
    head = escape_controls(f"  {a.symbol} {_kind(a)} ({count}): {a.reason}")
    return [head, *_members([_named(x) for x in group], limit)]


def _note_group(group: Sequence[Note], limit: int) -> list[str]:
    if len(group) == 1:
        return [note_line(group[0])]
    n = group[0]
    head = escape_controls(
        f"  {_NOTE_SYMBOL.get(n.status, '?')} {n.status} ({len(group)}): {n.reason}"
    )
    return [head, *_members([x.subject for x in group], limit)]


def plan_text(
    plan: Plan, *, detail: bool = False, limit: int = GROUP_LINES, pending: int = 0
) -> str:
    """The plan for people. By default actions are grouped by kind and
    reason (notes by status and reason): one line per group with its count
    and bytes, then the first ``limit`` subjects; a group of one is its own
    line. ``detail``: every action and note on its own line. ``pending``:
    as for ``summary``."""
    lines: list[str] = []
    if plan.actions:
        lines.append("reconcile will perform these actions:")
        if detail:
            lines.extend(action_line(a) for a in plan.actions)
        else:
            for group in _groups(plan.actions, lambda a: (a.symbol, _kind(a), a.reason)):
                lines.extend(_action_group(group, limit))
    if plan.notes:
        if lines:
            lines.append("")
        lines.append("Not done this run:")
        if detail:
            lines.extend(note_line(n) for n in plan.notes)
        else:
            for notes in _groups(plan.notes, lambda n: (n.status, n.reason)):
                lines.extend(_note_group(notes, limit))
    if lines:
        lines.append("")
    lines.append(summary(plan, pending=pending))
    return "\n".join(lines)


_OUTCOME_SYMBOL = {
    "changed": "+",
    "ok": "=",
    "failed": "x",
    "skipped": "-",
    "refused": "!",
    "waiting": "…",
    "stale": "-",
    "interrupted": "-",
}


def outcome_line(o: Outcome) -> str:
    detail = f": {o.detail}" if o.detail else ""
    return escape_controls(
        f"  {_OUTCOME_SYMBOL.get(o.status, '?')} {o.status} {o.kind} {o.subject}{detail}"
    )


def outcomes_text(
    outcomes: Iterable[Outcome],
    sizes: Mapping[str, int | None] | None = None,
    *,
    limit: int = GROUP_LINES,
) -> str:
    """What apply did, grouped by status and kind (one line per group with
    its count and, where known, bytes; then its first ``limit`` items with
    their detail). ``sizes``: action id -> bytes. A group of one is its own
    line, as with --detail."""
    lines: list[str] = []
    for group in _groups(outcomes, lambda o: (o.status, o.kind)):
        if len(group) == 1:
            lines.append(outcome_line(group[0]))
            continue
        o = group[0]
        count = _count(len(group), [(sizes or {}).get(x.action_id) for x in group])
        lines.append(f"  {_OUTCOME_SYMBOL.get(o.status, '?')} {o.status} {o.kind} ({count})")
        lines.extend(
            _members([f"{x.subject}: {x.detail}" if x.detail else x.subject for x in group], limit)
        )
    return "\n".join(lines)


def apply_summary(result: ApplyResult, extra: Iterable[Outcome] = ()) -> str:
    counts = result.counts()
    for o in extra:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("changed", "ok", "waiting", "skipped", "interrupted", "stale", "refused", "failed")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return "Apply: " + (", ".join(parts) if parts else "nothing to do") + "."


#: A run with no exit recorded, by whether a live run holds the lock now.
UNFINISHED = {True: "is running now", False: "did not finish (killed or crashed)", None: "unknown"}
#: A run's status until it records its exit (``Runs.start_run``).
RUNNING = "running"
#: The summary key of an apply declined at its prompt: it did nothing.
DECLINED = "declined"


def with_liveness(runs: Sequence[Mapping[str, Any]], live: bool | None) -> list[dict[str, Any]]:
    """``runs`` (newest first, as ``StateDB.last_runs`` gives them), each
    with no exit recorded given ``running_now``: whether it is alive. Only
    the newest such run can hold the run lock (an apply makes its row as
    it starts, a plan at its end: a plan beside a running apply is newer,
    and finished), so it is alive as ``live`` says (``lock.held_now``; None:
    cannot tell); an older one was killed, and the next apply marks it."""
    out = [dict(r) for r in runs]
    newest = True
    for r in out:
        if r.get("status") == RUNNING:
            r["running_now"] = live if newest else False
            newest = False
    return out


def run_state(run: Mapping[str, Any]) -> str:
    """A run's status as a person reads it: one with no exit recorded is
    running now or was killed (``running_now``: ``with_liveness``), never
    simply "running", which the database says of both."""
    state = str(run.get("status") or "")
    return UNFINISHED[run.get("running_now")] if state == RUNNING else state


def headline_run(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The run a headline is about: the work, so the last apply not declined
    at its prompt (cron's, under way or ended), else the last run. A plan
    beside a running apply is newer than it, and says nothing of the work."""
    for r in runs:
        if r.get("command") == "apply" and not declined(r):
            return r
    return runs[0] if runs else None


def declined(run: Mapping[str, Any]) -> bool:
    """Was ``run`` an apply declined at its prompt (``DECLINED`` in its summary)?"""
    try:
        return bool(json.loads(run.get("summary") or "{}").get(DECLINED))
    except (ValueError, TypeError, AttributeError):
        return False


def status_headline(
    run: dict[str, object], last_good: str | None, *, running: bool | None = None
) -> str:
    """One line: did the last apply (else run) work, and if not, why and since
    when. ``running``: for a run with no exit recorded, whether a live run
    holds the lock now (``lock.held_now``)."""
    code = run.get("exit_code")
    verdict = {  # by exit code (DESIGN.md, README's exit codes)
        0: "worked",
        2: "worked (changes pending)",
        3: "needs a person",
        4: "did not run (another run held the lock)",
        130: "was interrupted (Ctrl-C); what was done is kept",
        143: "was interrupted (SIGTERM); what was done is kept",
        129: "was interrupted (SIGHUP: the terminal closed); what was done is kept",
    }.get(code if isinstance(code, int) else -1, "failed" if code is not None else "")
    verdict = verdict or UNFINISHED[running]
    line = f"last run: {run['command']} {verdict}, finished {utc_text(run['finished_at'])}"
    line += f" (exit {code})" if code is not None else ""
    if run.get("reason"):
        line += f": {escape_controls(str(run['reason']))}"
    if code not in (0, 2):
        line += f"; last apply that worked: {utc_text(last_good) if last_good else 'never'}"
    return line


def utc_text(iso: object) -> str:
    """A recorded ISO time as a person reads it (minutes, UTC)."""
    if not iso:
        return "-"
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def size_text(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
