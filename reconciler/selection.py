"""``apply --only STAGES`` and ``--target ID``: run part of a plan.

As the seed pipeline's ``--stages`` and Terraform's ``-target``: a person
fixing one disk, or catching up downloads before a trip, runs only those
actions. A selection never widens what may happen: it only drops actions,
and the applier's removal gate is the same whatever was chosen (a removal
still needs ``copies`` verified copies, read at that moment). An action whose
dependency was not selected is not run: it waits for a later, wider run.

Pure: a Plan in, a smaller Plan out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs

from reconciler.model import (
    Action,
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FreeStagingCopy,
    Plan,
    ReleaseFromPhone,
    RemoveFromSource,
    WriteSidecar,
)

#: Stage name (as typed after --only) -> the action kinds it runs, in the
#: applier's order.
STAGES: dict[str, type[Action]] = {
    "download": DownloadAsset,
    "library": CopyToLibrary,
    "copy": CopyToTarget,
    "sidecar": WriteSidecar,
    "encode": EncodeForTier,
    "remove": RemoveFromSource,
    "free": FreeStagingCopy,
    "release": ReleaseFromPhone,
}

LIBRARY = "library"


class UnknownStage(ValueError):
    """A name after --only that is no stage."""


def parse_stages(text: str) -> frozenset[str]:
    """``download,copy`` -> the stage names; unknown names are refused."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise UnknownStage(
            f"unknown stage {', '.join(unknown) or repr(text)}; stages: {', '.join(STAGES)}"
        )
    return frozenset(names)


def store_of(a: Action) -> str:
    """The source, target or library an action writes to or removes from."""
    if isinstance(a, DownloadAsset):
        return a.origin.source_id
    if isinstance(a, (CopyToLibrary, EncodeForTier)):
        return LIBRARY
    if isinstance(a, WriteSidecar):
        return a.store_id
    if isinstance(a, RemoveFromSource):
        return a.source_id
    if isinstance(a, (CopyToTarget, FreeStagingCopy, ReleaseFromPhone)):
        return a.target_id
    return ""


def select(
    plan: Plan, stages: Collection[str] = (), targets: Collection[str] = ()
) -> tuple[Plan, tuple[Action, ...]]:
    """The plan's actions in the chosen stages that act on the chosen stores
    (with what they depend on, as Terraform's -target), and the actions left
    out. Empty ``stages`` / ``targets``: no restriction."""
    by_id = {a.id: a for a in plan.actions}
    wanted = {a.id for a in plan.actions if not targets or store_of(a) in targets}
    if targets:
        todo = list(wanted)
        while todo:  # what a targeted action needs comes along
            for dep in by_id[todo.pop()].depends_on:
                if dep in by_id and dep not in wanted:
                    wanted.add(dep)
                    todo.append(dep)
    kinds = tuple(STAGES[s] for s in stages)
    kept: list[Action] = []
    kept_ids: set[str] = set()
    for a in plan.actions:  # dependencies come first in a plan
        if a.id not in wanted or (kinds and not isinstance(a, kinds)):
            continue
        if all(d in kept_ids for d in a.depends_on):
            kept.append(a)
            kept_ids.add(a.id)
    left = tuple(a for a in plan.actions if a.id not in kept_ids)
    return attrs.evolve(plan, actions=tuple(kept)), left


def unknown_stores(targets: Sequence[str], known: Collection[str]) -> list[str]:
    return [t for t in targets if t not in known and t != LIBRARY]
