"""Whether "every item is archived" may be said (``proof``): every item's state
shows the copies, no action failed, the last run that said what it saw read
every source file, and no target holding copies is unproven now."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import attrs

from providers.filesystem import read_marker
from reconciler.census.counts import STATES, Census, Failure
from reconciler.census.items import SHA
from reconciler.config import DesiredState, FilesystemTarget
from reconciler.state import StateDB


def last_failures(db: StateDB) -> tuple[list[tuple[Failure, str]], int | None]:
    """The failed actions of the last apply that acted (the journal's newest
    run), each with its action id, oldest first."""
    row = db.conn.execute("select max(run_id) from journal").fetchone()
    if row is None or row[0] is None:
        return [], None
    run_id = int(row[0])
    sql = (
        "select action_id, kind, detail, at, subject from journal "
        "where run_id = ? and status = 'failed' order by id"
    )
    out = [
        (Failure(subject=subject or action_id, kind=kind, error=detail or "", at=at), action_id)
        for action_id, kind, detail, at, subject in db.conn.execute(sql, (run_id,))
    ]
    return out, run_id


def failed_item(failure: tuple[Failure, str], by_sha: Mapping[str, str]) -> str:
    """The item a failed action was about: by the SHA-256 in its id where the
    item is known, else by the file it named."""
    f, action_id = failure
    for sha in SHA.findall(action_id):
        if sha in by_sha:
            return by_sha[sha]
    return f.subject


#: The fewest copies each state proves an item has; the others prove none.
#: ``removed`` needs ``policy.copies`` (an off-loaded item with fewer is
#: counted by the copies it has).
_PROVEN = {"archived_1": 1, "archived_2plus": 2}


@attrs.frozen(kw_only=True)
class Proof:
    """What may be said of a census now: whether every item counted shows
    ``copies`` copies with no action of the last apply failed, and which
    targets holding copies are not proven now (target id -> why: their
    copies count as last recorded)."""

    copies: int
    all_archived: bool
    unproven: Mapping[str, str]

    @property
    def archived(self) -> bool:
        """Every item archived, and every copy that says so proven now."""
        return self.all_archived and not self.unproven


def proof(db: StateDB, desired: DesiredState, c: Census) -> Proof:
    copies = desired.policy.copies
    # An action that failed in the last apply is work left undone (a file
    # not fetched, a copy or a sidecar not written): whatever the states
    # say, "every item is archived" is not said beside it.
    return Proof(
        copies=copies,
        all_archived=(
            c.oldest_unarchived is None
            and not c.items.get("failed")
            and _last_run_saw_everything(db)
            and all_archived(c.items, copies)
        ),
        unproven=unproven(db, desired, c),
    )


def _last_run_saw_everything(db: StateDB) -> bool:
    """Did the last plan or apply that observed the world read every source
    file (``_last_seen``)? One it could not read (mode 000, an I/O error)
    is in no state of the census (never hashed, never copied), nor is what
    a source or the library it could not read holds now, and "every item
    is archived" is not said beside them. (A target that could not be read
    is named instead: ``unproven``.) With no such run, nothing is said."""
    seen = _last_seen(db)
    return (
        seen is not None
        and not seen.unreadable
        and all(store.startswith("target ") for store in seen.not_read)
    )


class _Seen(NamedTuple):
    """What a run that observed the world said it could not read."""

    run_id: int
    #: Source files it could not read.
    unreadable: int
    #: Stores it could not read at all, as its error names them:
    #: "target nas", "source incoming", "library".
    not_read: frozenset[str]


#: The error line of a run that could not read a store (``notes_exit`` of
#: reconciler.commands.common; the run keeps it as its reason).
_NOT_READ = re.compile(r"(.+) could not be read \(see '!' above\); (?:the rest|nothing) was done")


def _last_seen(db: StateDB) -> _Seen | None:
    """What the newest plan or apply whose record says what it observed
    saw: one that read everything (exit 0 or 2), or said what it could not
    read (source files: ``unreadable`` in its summary; stores: a line of
    its reason), however it ended (a guard, a failed action, a signal
    beside them). A run that observed nothing (locked out, exit 4; a usage
    error), or whose record does not say (ended by a failed action, a
    guard, a signal, a mistyped ``--target`` after observing, and nothing
    unread besides) is passed over: what an older run saw is not hidden by
    it. None: no run ever said.

    Newest by id, never by the times recorded (a clock reset at boot, NTP
    stepping it back): a plan's row is made as it ends, an apply's as it
    begins to act, once it has observed; so of a plan and an apply side by
    side, the one that finished observing last counts."""
    sql = (
        "select id, exit_code, summary, reason from runs "
        "where command in ('plan', 'apply') and exit_code is not null order by id desc"
    )
    for run_id, code, summary, reason in db.conn.execute(sql):
        unreadable = int(json.loads(summary or "{}").get("unreadable") or 0)
        lines = [_NOT_READ.fullmatch(line) for line in (reason or "").splitlines()]
        stores = frozenset(s for m in lines if m for s in m[1].split(", "))
        if code in (0, 2) or unreadable or stores:
            return _Seen(int(run_id), unreadable, stores)
    return None


def all_archived(items: Mapping[str, int], copies: int) -> bool:
    """Whether every item counted holds at least ``copies`` copies, as far
    as its state can show (an undated item in its source shows none)."""
    held = [state for state in STATES if state != "failed" and items.get(state)]
    return bool(held) and all(
        (copies if state == "removed" else _PROVEN.get(state, 0)) >= copies for state in held
    )


def unproven(db: StateDB, desired: DesiredState, c: Census) -> dict[str, str]:
    """Targets holding copies the census counts that are not proven now: a
    disk without its marker (unplugged, not mounted), a phone whose last
    canary failed, and a disk or phone the last run that said what it read
    could not read (a listing that failed, a store nested in it; Syncthing
    down: the phone could not be asked, ``_last_seen``). Their copies are a
    record, not a proof."""
    out = {}
    seen = _last_seen(db)
    for tid, cfg in desired.targets.items():
        if not c.targets.get(tid, (0, 0))[0]:
            continue
        not_read = seen is not None and f"target {tid}" in seen.not_read
        if isinstance(cfg, FilesystemTarget):
            if read_marker(Path(cfg.path)) != tid:
                out[tid] = f"cannot be read ({cfg.path} has no marker of it: not mounted?)"
            elif seen is not None and not_read:
                out[tid] = (
                    f"could not be read in run {seen.run_id} (the last that said what it read)"
                )
        elif cfg.role != "conduit" or cfg.count_as_copy:
            why = _phone_unproven(db, tid, seen if not_read else None)
            if why:
                out[tid] = why
    return out


def _phone_unproven(db: StateDB, tid: str, not_reached: _Seen | None) -> str | None:
    """Why phone ``tid`` is not proven now, if it is not: no canary ever,
    its last one failed, or ``not_reached``: the last run that said what it
    read could not ask it at all (no canary recorded then, so the last is
    older). Told by the runs' order, never by comparing the canary's time
    with the runs' (a plan recorded while the clock was behind would hide
    it)."""
    alive = db.liveness(tid)
    if alive is None:
        return "has no canary recorded: never proven alive"
    if not alive["alive"]:
        return "failed its last canary"
    if not_reached is None:
        return None
    return (
        f"was not reached in the last run (run {not_reached.run_id}; Syncthing unreachable?): "
        f"its last canary is older"
    )
