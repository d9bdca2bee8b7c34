"""Text for people: plans and apply results, in the Terraform manner.

Pure functions returning strings; cli.py is the only place that prints.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.apply import ApplyResult, Outcome
from reconciler.model import Action, CopyToTarget, Note, Plan

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
    "shared-disk": "!",
}


def action_line(a: Action) -> str:
    kind = f"{a.kind}[{a.target_id}]" if isinstance(a, CopyToTarget) else a.kind
    return f"  {a.symbol} {kind} {a.subject}: {a.reason}"


def note_line(n: Note) -> str:
    return f"  {_NOTE_SYMBOL.get(n.status, '?')} {n.status} {n.subject}: {n.reason}"


def summary(plan: Plan) -> str:
    counts = plan.counts()
    parts = [f"{counts[k]} {_PHRASES[k]}" for k in _PHRASES if counts.get(k)]
    notes: dict[str, int] = {}
    for n in plan.notes:
        notes[n.status] = notes.get(n.status, 0) + 1
    tail = ", ".join(f"{v} {k}" for k, v in sorted(notes.items()))
    incomplete = notes.get("unavailable") or notes.get("blocked")
    if parts:
        head = "Plan: " + ", ".join(parts) + "."
    elif incomplete:
        head = "No changes for what could be read; the rest is not known to match."
    else:
        head = NO_CHANGES
    return f"{head} ({tail})" if tail and parts else head + (f" ({tail})" if tail else "")


def plan_text(plan: Plan) -> str:
    lines: list[str] = []
    if plan.actions:
        lines.append("reconcile will perform these actions:")
        lines.extend(action_line(a) for a in plan.actions)
    if plan.notes:
        if lines:
            lines.append("")
        lines.append("Not done this run:")
        lines.extend(note_line(n) for n in plan.notes)
    if lines:
        lines.append("")
    lines.append(summary(plan))
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
    return f"  {_OUTCOME_SYMBOL.get(o.status, '?')} {o.status} {o.kind} {o.subject}{detail}"


def apply_summary(result: ApplyResult, extra: Iterable[Outcome] = ()) -> str:
    counts = result.counts()
    for o in extra:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("changed", "ok", "waiting", "skipped", "interrupted", "stale", "refused", "failed")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return "Apply: " + (", ".join(parts) if parts else "nothing to do") + "."


def status_headline(run: dict[str, object], last_good: str | None) -> str:
    """One line: did the last apply (else run) work, and if not, why and since when."""
    code = run.get("exit_code")
    verdict = {  # by exit code (DESIGN.md)
        0: "worked",
        2: "worked (changes pending)",
        3: "needs a person",
        4: "did not run (another run held the lock)",
    }.get(code if isinstance(code, int) else -1, "failed" if code is not None else "unknown")
    line = f"last run: {run['command']} {verdict}, finished {run['finished_at'] or '-'}"
    line += f" (exit {code})" if code is not None else ""
    if run.get("reason"):
        line += f": {run['reason']}"
    if code not in (0, 2):
        line += f"; last apply that worked: {last_good or 'never'}"
    return line


def size_text(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
