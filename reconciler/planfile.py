"""Plans as JSON: ``plan --json`` and ``plan --out FILE`` (format version 1).

The format is documented in README.md. A saved plan carries the digest of
the configuration and a fingerprint of the world it was computed from, so
``apply PLANFILE`` can refuse what no longer holds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import cattrs
from cattrs.cols import (
    is_namedtuple,
    namedtuple_dict_structure_factory,
    namedtuple_dict_unstructure_factory,
)

from reconciler.errors import StalePlanError
from reconciler.hashing import read_named
from reconciler.model import ACTION_TYPES, Action, Note, Plan

FORMAT_VERSION = 1
_BY_KIND = {cls.kind: cls for cls in ACTION_TYPES}

_conv = cattrs.Converter()
# A NamedTuple value in an action (``MediaFile``) is an object of its field
# names, as an attrs value is, not a list: the format stays what README.md
# documents, whichever kind of value the model uses.
_conv.register_unstructure_hook_factory(is_namedtuple, namedtuple_dict_unstructure_factory)
_conv.register_structure_hook_factory(is_namedtuple, namedtuple_dict_structure_factory)
_conv.register_unstructure_hook(datetime, lambda d: d.isoformat())
_conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))


def to_dict(plan: Plan, left_out: Sequence[Action] = ()) -> dict[str, Any]:
    """``left_out``: the actions ``--only``/``--target`` did not select. They
    are still to do, so a plan of none but them is not a converged one: a
    script reading only ``actions`` and ``notes`` could not tell the two
    apart. Counted only: they are not this plan's to run."""
    return {
        "format_version": FORMAT_VERSION,
        "created_at": plan.created_at.isoformat(),
        "config_digest": plan.config_digest,
        "basis": plan.basis,
        "summary": plan.counts(),
        "left_out": {"count": len(left_out), "summary": dict(Counter(a.kind for a in left_out))},
        "actions": [{"type": a.kind, **_conv.unstructure(a)} for a in plan.actions],
        "notes": [_conv.unstructure(n) for n in plan.notes],
    }


def dumps(plan: Plan, left_out: Sequence[Action] = ()) -> str:
    return json.dumps(to_dict(plan, left_out), indent=2, sort_keys=False) + "\n"


#: What is read at most. A plan takes about 800 bytes an action (an iCloud
#: one, measured; a folder's about 600): 500k actions, the first run of a
#: library of some 70k photos, are about 400 MB, and this is twice that.
#: Bytes are not memory: parsed, a plan takes some 4 times its size, other
#: JSON up to 25 (``[{},{},…]``); what the process cannot hold is refused
#: as a plan file, as a damaged one is (``loads``).
MAX_BYTES = 768 << 20


def load(path: Path) -> Plan:
    try:
        return loads(read_named(path, MAX_BYTES), str(path))
    except OSError as e:
        raise StalePlanError(f"{path}: not a readable plan file: {e}") from e
    except MemoryError as e:  # reading it (a limit on the process's memory)
        raise _too_big(str(path)) from e


def loads(text: str | bytes, path: str = "the plan") -> Plan:
    """A plan from its JSON (``dumps``); StalePlanError when it is none.
    ``left_out`` is not read: what a saved plan left out is no action of
    it, and ``apply`` counts what is still to do from its own fresh plan (a
    plan saved before the field existed reads the same)."""
    try:
        return _parsed(text, path)
    except MemoryError as e:
        # A file under MAX_BYTES whose values outgrow the memory the
        # process may take (a data export named by mistake): one clear
        # line, as for a damaged file, not an internal error.
        raise _too_big(path) from e


def _too_big(path: str) -> StalePlanError:
    return StalePlanError(
        f"{path}: not a readable plan file: too big for the memory this process may take; "
        "run reconcile plan --out again"
    )


def _parsed(text: str | bytes, path: str) -> Plan:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise StalePlanError(f"{path}: not a readable plan file: {e}") from e
    except RecursionError as e:  # '[' nested deeper than Python's stack: no plan is
        raise StalePlanError(
            f"{path}: not a readable plan file: nested too deeply; run reconcile plan --out again"
        ) from e
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise StalePlanError(
            f"{path}: plan format {raw.get('format_version') if isinstance(raw, dict) else '?'} "
            f"is not {FORMAT_VERSION}; run reconcile plan --out again"
        )
    try:
        actions: list[Action] = []
        for a in raw["actions"]:
            a = dict(a)
            cls = _BY_KIND[a.pop("type")]
            actions.append(_conv.structure(a, cls))
        notes = [_conv.structure(n, Note) for n in raw["notes"]]
        return Plan(
            actions=tuple(actions),
            notes=tuple(notes),
            created_at=datetime.fromisoformat(raw["created_at"]),
            basis=raw["basis"],
            config_digest=raw["config_digest"],
        )
    except (KeyError, TypeError, ValueError, RecursionError, cattrs.BaseValidationError) as e:
        raise StalePlanError(
            f"{path}: damaged plan file ({e}); run reconcile plan --out again"
        ) from e
