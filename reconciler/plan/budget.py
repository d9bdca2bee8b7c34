"""The deletion budget of one run (``policy.removal``): how many items and
bytes it may remove, judged alike by the planner and the applier."""

from __future__ import annotations

from reconciler.config import Removal


def over_budget(removal: Removal, removed: int, removed_bytes: int, size: int) -> bool:
    """Would removing an item of ``size`` bytes, after ``removed`` items of
    ``removed_bytes`` this run, pass the run's deletion budget? An item
    larger than the whole byte budget goes alone, as a run's first removal:
    it would otherwise wait for ever, each run promising the next (a 4K
    clip under a "500 MiB" budget). A budget of 0 removes nothing."""
    if removal.max_items_per_run == 0 or removal.max_bytes_per_run == 0:
        return True  # never, whatever the item weighs (an empty file too)
    if removed + 1 > removal.max_items_per_run:
        return True
    alone = removed == 0 and removal.max_bytes_per_run > 0
    return removed_bytes + size > removal.max_bytes_per_run and not alone


def budget_reason(removal: Removal) -> str:
    """Why a removal waits for the budget (``over_budget``)."""
    if removal.max_items_per_run == 0 or removal.max_bytes_per_run == 0:
        return "the deletion budget is 0; nothing is removed"
    return "deletion budget for this run reached; next run"
