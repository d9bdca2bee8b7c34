"""Apply's progress, stage by stage (downloads, library, targets, sidecars,
encodes, removals…).

Off a terminal (cron, a pipe, a log) one plain line when a stage starts and
one when it ends: its name, how many actions, their bytes, how long it took
and how they ended. Never a progress bar there: carriage returns make a log
unreadable. On a terminal a single live line per stage (done/total, bytes,
ETA) that ends as the stage's summary line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from reconciler.apply import Outcome
from reconciler.model import Action
from reconciler.render import size_of, size_text


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageProgress:
    """Receives the applier's stage events and outcomes. ``line`` takes every
    start and end line (off a terminal: the output and the log; on one: the
    log only); ``live`` is the terminal for the live line, or None."""

    def __init__(
        self,
        line: Callable[[str], None],
        live: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line, self.live, self.clock = line, live, clock
        self.kind = ""
        self.total = 0
        self.total_bytes: int | None = None
        self.sizes: Mapping[str, int | None] = {}
        self.done = 0
        self.done_bytes = 0
        self.statuses: dict[str, int] = {}
        self.started = 0.0
        self.drawn_at = 0.0

    def stage(self, event: str, kind: str, actions: Sequence[Action]) -> None:
        if event == "start":
            self._start(kind, actions)
        else:
            self._end()

    def _start(self, kind: str, actions: Sequence[Action]) -> None:
        self.kind, self.total, self.done, self.done_bytes = kind, len(actions), 0, 0
        self.sizes = {a.id: size_of(a) for a in actions}
        known = list(self.sizes.values())
        self.total_bytes = sum(s or 0 for s in known) if known and None not in known else None
        self.statuses = {}
        self.started = self.clock()
        self.line(f"stage {kind}: started, {self._amount(self.total, self.total_bytes)}")
        if self.live is not None:
            self._draw()

    def _end(self) -> None:
        took = _duration(self.clock() - self.started)
        outcomes = ", ".join(f"{n} {s}" for s, n in self.statuses.items())
        text = (
            f"stage {self.kind}: ended in {took}, "
            f"{self._amount(self.total, self.total_bytes)}: {outcomes or 'none finished'}"
        )
        if self.live is not None:
            self.clear()
            self.live.write(text + "\n")
            self.live.flush()
        self.line(text)
        self.kind = ""

    def outcome(self, o: Outcome) -> None:
        if not self.kind or o.kind != self.kind:
            return
        self.done += 1
        self.done_bytes += self.sizes.get(o.action_id) or 0
        self.statuses[o.status] = self.statuses.get(o.status, 0) + 1
        # 100k small files must not mean 100k terminal writes: ten a second.
        if self.live is not None and (
            self.done == self.total or self.clock() - self.drawn_at >= 0.1
        ):
            self._draw()

    def clear(self) -> None:
        """Wipe the live line (before other text is printed on the terminal)."""
        if self.live is not None and self.kind:
            self.live.write("\r\x1b[K")
            self.live.flush()

    @staticmethod
    def _amount(count: int, size: int | None) -> str:
        noun = "action" if count == 1 else "actions"
        return f"{count} {noun}" + (f" ({size_text(size)})" if size is not None else "")

    def _draw(self) -> None:
        assert self.live is not None
        width = 20
        share = self.done / self.total if self.total else 1.0
        if self.total_bytes:
            share = self.done_bytes / self.total_bytes
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        text = f"\r\x1b[K{self.kind} [{bar}] {self.done}/{self.total}"
        if self.total_bytes is not None:
            text += f" {size_text(self.done_bytes)}/{size_text(self.total_bytes)}"
        elapsed = self.clock() - self.started
        if 0 < share < 1:
            text += f" ETA {_duration(elapsed / share - elapsed)}"
        self.live.write(text)
        self.live.flush()
        self.drawn_at = self.clock()
