"""What a command is done with, left for the process's exit to reclaim.

At 100k items the observed world is about two million small objects (an
item, its files, a copy per target file); freeing them one by one takes a
twentieth of a no-op plan (0.1 s), only to hand back memory that the
process's exit hands back at once. When the command is the whole process
(the console script), ``leave`` keeps such a value in a cycle moved, with
all else made so far, to the collector's permanent generation
(``gc.freeze``), which neither a collection nor the interpreter's teardown
visits: it is never freed, and nothing else is skipped (no ``os._exit``).

Work that needs as much memory again (a census counted anew after the
plan) calls ``reclaim`` first: what was left is freed then, and that work
reuses its memory, so the run's peak stays what it was.
"""

from __future__ import annotations

import gc

#: What was left: the list holds itself, so that once frozen nothing frees
#: it (the teardown only drops the module's own reference).
_LEFT: list[object] = []


def leave(value: object) -> None:
    """Keep ``value`` until the process exits, never freeing it. Only for a
    process that ends with the command: in one that goes on, it would stay."""
    if not _LEFT:
        _LEFT.append(_LEFT)
    _LEFT.append(value)
    gc.freeze()


def reclaim() -> None:
    """Free what was left, now."""
    _LEFT.clear()
