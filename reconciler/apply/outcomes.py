"""What the applier's actions end in (``Outcome``, ``ApplyResult``) and what
a worker hands back to the main thread to record (``Effects``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from reconciler.model import Action, FileCopy, FileOrigin
from reconciler.state import LineageRow

#: Outcome statuses. ``changed``/``ok`` succeed; the rest do not.
SUCCESS = frozenset({"changed", "ok"})


@attrs.frozen(kw_only=True)
class Outcome:
    action_id: str
    kind: str
    subject: str
    status: str  # changed | ok | failed | skipped | refused | waiting
    detail: str = ""


@attrs.frozen(kw_only=True)
class ApplyResult:
    outcomes: tuple[Outcome, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    @property
    def refused(self) -> bool:
        return any(o.status == "refused" for o in self.outcomes)


#: on_outcome(outcome, done, total): progress as actions finish.
Report = Callable[[Outcome, int, int], None]


def silent(outcome: Outcome, done: int, total: int) -> None:
    pass


#: on_stage(event, kind, actions): event is "start" or "end"; a stage is
#: the plan's actions of one kind, run before the next kind starts.
StageHook = Callable[[str, str, Sequence[Action]], None]


def no_stage(event: str, kind: str, actions: Sequence[Action]) -> None:
    pass


@attrs.define
class Effects:
    """What a worker learned, for the main thread to record."""

    #: downloads: (file, its SHA-256, size, the source's fingerprint of it)
    source_files: list[tuple[FileOrigin, str, int, str]] = attrs.field(factory=list)
    lineage: list[LineageRow] = attrs.field(factory=list)
    target_copies: list[FileCopy] = attrs.field(factory=list)
    settled: list[tuple[str, str, str]] = attrs.field(factory=list)
    #: copies the gate read and found wrong: forgotten (``RemovalGate.forget_copy``)
    wrong_copies: list[FileCopy] = attrs.field(factory=list)


class Skip(Exception):
    """An action that cannot run now (a reason, not a failure of the tool)."""

    def __init__(self, status: str, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)
