"""A saved plan (``reconcile apply PLANFILE``) against the plan made now:
which of its actions still hold (the fresh plan's, never the file's, run),
which an apply since it was made already did, and which are stale.

An action on a remote file is named by that file's origin until a download
learns its SHA-256, and by the content after: the saved actions are
rewritten through what the state database knows (``Learned``) before they
are compared, never through what the file claims.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs

from reconciler.apply import Outcome
from reconciler.model import (
    Action,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FileOrigin,
    Plan,
    WriteSidecar,
)
from reconciler.state import StateDB

#: (source id, item key, file ref): a remote file, as ``World.known_sha256`` keys it.
_FileKey = tuple[str, str, str]
_NOTHING_KNOWN: Mapping[_FileKey, str] = MappingProxyType({})


def intersect(
    saved: Plan,
    fresh: Plan,
    done: Collection[str] = frozenset(),
    known: Mapping[_FileKey, str] = _NOTHING_KNOWN,
) -> tuple[Plan, list[Outcome]]:
    """Run only what the saved plan promised *and* still holds now: an action
    of the fresh plan runs if the saved plan has the very same action and
    every action it depends on runs too. The same: its id, and everything
    it would do (the bytes a removal removes, an encode's tier and quality,
    the paths), all but the words of its reason. An id alone names a place
    (``remove:card:IMG_1.JPG``), not what is there: other bytes at that name,
    or a tier crossed since, are not what the person approved.

    The saved plan is read with what is known now (``known``: the world's
    ``known_sha256``): an action on a file its download has since learned
    is named by that file's content, as the fresh plan names it (``Learned``).

    Its dependencies may have shrunk: the fresh plan leaves out those an
    apply since the plan was saved did (``--only``, a run stopped half-way);
    every one left must be a saved one, and run now. A removal's copies are
    read again by the gate whatever this says.

    The saved actions not run are outcomes: ``ok`` when an apply since the
    plan was saved did them (``done``: their ids, as saved or as named now),
    else ``stale``."""
    learned = Learned.of(saved, known)
    promised: dict[str, list[Action]] = {}
    for was in saved.actions:
        promised.setdefault(learned.id(was.id), []).append(was)
    keep: list[Action] = []
    kept: set[str] = set()
    for a in fresh.actions:  # dependencies come first in a plan
        if any(_holds(learned.action(was, a), a, kept) for was in promised.get(a.id, ())):
            keep.append(a)
            kept.add(a.id)
    to_do = {a.id for a in fresh.actions}
    outcomes = []
    for was in saved.actions:
        now_id = learned.id(was.id)
        if now_id not in kept:
            finished = (was.id in done or now_id in done) and now_id not in to_do
            outcomes.append(_not_run(was, done=finished))
    plan = attrs.evolve(fresh, actions=tuple(keep))
    return plan, outcomes


def _holds(was: Action, now: Action, kept: Collection[str]) -> bool:
    """Is ``now`` the saved action ``was`` (as named now), with every
    dependency one the saved plan had, and running now?"""
    return (
        _same_but_dependencies(was, now)
        and set(now.depends_on) <= set(was.depends_on)
        and all(d in kept for d in now.depends_on)
    )


def _same_but_dependencies(was: Action, now: Action) -> bool:
    return attrs.evolve(was, reason="", detail="", depends_on=()) == attrs.evolve(
        now, reason="", detail="", depends_on=()
    )


@attrs.frozen
class Learned:
    """What downloads since a plan was saved learned of its files.

    Until a remote file is downloaded, the plan names what is done with it
    by where it comes from (``copy:nas:icloud:<asset>:original``, with its
    ``origin`` and no ``sha256``); once its SHA-256 is known (the state DB's
    record of the download, ``World.known_sha256``), by its content
    (``copy:nas:<sha256>``, the planner's ``ident``), and an item's sidecar,
    whose content needed every file's hash, by its digest. The action is the
    same: that is the work half done, not the world moved. Only this is read
    anew; anything else that differs still makes an action stale.

    ``renamed``: saved id -> (its id now, the file's SHA-256), for each copy
    and encode of a file whose content is known now. ``downloads``: the
    saved plan's downloads; ``downloaded``: those whose file is known now.
    Built from the saved actions' own fields and what the state DB says:
    nothing a plan file says is taken for what is known."""

    renamed: Mapping[str, tuple[str, str]]
    downloads: frozenset[str]
    downloaded: frozenset[str]

    @classmethod
    def of(cls, saved: Plan, known: Mapping[_FileKey, str]) -> Learned:
        renamed: dict[str, tuple[str, str]] = {}
        downloads: set[str] = set()
        downloaded: set[str] = set()
        for a in saved.actions:
            if isinstance(a, DownloadAsset):
                downloads.add(a.id)
                if _origin_key(a.origin) in known:
                    downloaded.add(a.id)
            elif isinstance(a, CopyToTarget | EncodeForTier) and a.sha256 is None and a.origin:
                sha = known.get(_origin_key(a.origin))
                ident = ":".join(_origin_key(a.origin))  # as the planner names it
                if sha is not None and a.id.endswith(f":{ident}"):
                    renamed[a.id] = (a.id[: -len(ident)] + sha, sha)
        return cls(renamed, frozenset(downloads), frozenset(downloaded))

    def id(self, saved_id: str) -> str:
        """A saved action's id as the planner names it now."""
        now = self.renamed.get(saved_id)
        return saved_id if now is None else now[0]

    def action(self, was: Action, now: Action) -> Action:
        """The saved action ``was`` as the planner writes it now, to be
        compared with the fresh action ``now`` of the same id."""
        changes: dict[str, Any] = {"depends_on": tuple(self.id(d) for d in was.depends_on)}
        if was.id in self.renamed:
            new_id, sha = self.renamed[was.id]
            changes |= {"id": new_id, "sha256": sha, "origin": None}
        elif (
            isinstance(was, WriteSidecar)
            and isinstance(now, WriteSidecar)
            and was.sha256 is None
            and self._content_learned(was.depends_on)
        ):
            # Left to the applier to render from the item once its files'
            # hashes were learned: that digest is what it would render.
            changes["sha256"] = now.sha256
        return attrs.evolve(was, **changes)

    def _content_learned(self, depends_on: Sequence[str]) -> bool:
        """Did the saved plan leave this content to downloads (some of
        ``depends_on``), every one of whose files is known now?"""
        waited = self.downloads.intersection(depends_on)
        return bool(waited) and waited <= self.downloaded

    def ids(self) -> set[str]:
        """The ids the saved actions have now where not the saved ones."""
        return {now for now, _ in self.renamed.values()}


def _origin_key(origin: FileOrigin) -> _FileKey:
    return (origin.source_id, origin.item_key, origin.ref)


def _not_run(a: Action, *, done: bool) -> Outcome:
    if done:
        # The journal says which apply did an action, not which plan it
        # ran: a plain apply (cron) since may have done it.
        status, detail = "ok", "already done by an apply since this plan was made"
    else:
        status, detail = (
            "stale",
            "the world changed since the plan was saved; not done (plan again)",
        )
    return Outcome(action_id=a.id, kind=a.kind, subject=a.subject, status=status, detail=detail)


#: What an action's journal says once it is done (DESIGN: journaled before and after).
_DONE = frozenset({"changed", "ok"})


def done_since(db: StateDB, since: datetime, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` applies left done since ``since`` (a saved plan's
    creation): the last journal row each has, of those written since,
    says changed or ok.

    Decided by when the work was done, not when its run started: a plan
    may be made while an apply is under way (it does not take the lock),
    and what that apply does after the plan was made is done since it.
    Its rows from before are not: the plan was made from a world that
    had them."""
    if since.tzinfo is None:  # a plan file edited by hand
        since = since.replace(tzinfo=UTC)
    done: set[str] = set()
    for run, started_since in _applies_since(db, since):
        counting = started_since
        for row in db.journal_rows(run):
            # Rows in the order they were written (their ids): once one was
            # written since, every later one was, whatever the clock said.
            counting = counting or _time(row.get("at")) >= since
            action_id = row["action_id"]
            if counting and action_id in ids and row["status"] != "started":
                if row["status"] in _DONE:
                    done.add(action_id)
                else:
                    done.discard(action_id)
    return done


def _applies_since(db: StateDB, since: datetime) -> list[tuple[int, bool]]:
    """The apply runs that may have acted since ``since``, oldest first,
    each with whether it started since: those started at or after it,
    and the last one started before it (under way then, or not: its
    journal says). Only that one can have been under way: one apply at
    a time holds the run lock. Found by the runs' order (their ids),
    newest first, not by sorting their clocks."""
    limit = 16
    while True:
        runs = db.last_runs(limit)  # newest first
        before = next((r for r in runs if _is_apply(r) and _time(r["started_at"]) < since), None)
        if len(runs) < limit or before is not None:
            break
        limit *= 4
    out: list[tuple[int, bool]] = []
    for r in runs:
        if r is before:
            out.append((int(r["id"]), False))
            break
        if _is_apply(r):
            out.append((int(r["id"]), True))
    return out[::-1]


def _is_apply(run: dict[str, Any]) -> bool:
    return bool(run["command"] == "apply")


def _time(value: object) -> datetime:
    """A recorded ISO time (a run's start, a journal row's); an unreadable
    one is taken for long ago."""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
