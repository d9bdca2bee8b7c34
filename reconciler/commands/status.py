"""``reconcile status``: did it work? Read from the state database, the
session files, each target's marker and (for the phone) Syncthing; no
source is listed.

At a glance, in this order: the last run and why; items by state (the
census, reconciler.census); the library by tier with what compression
saved; what was off-loaded; each target's files and bytes; the oldest item
not yet archived; what failed in the last apply, by file; the iCloud
session; the phone; the last runs. ``--json`` holds the same facts.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler import config, lock, render
from reconciler.census import Census, Proof, counted_now, proof
from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_OK,
    EXIT_PERSON,
    Out,
    load,
)
from reconciler.config import DesiredState
from reconciler.connect import UnavailableStore, connect_target, icloud_session_dir
from reconciler.render import utc_text
from reconciler.state import NOT_DECLINED, StateDB
from reconciler.visible import escape_controls

#: How long Apple trusts a browser after a 2FA login before asking again.
#: Apple does not publish it; about 30 days is what icloudpd's users see.
TRUST_DAYS = 30
#: Failed files shown by name; ``--json`` lists them all.
SHOWN_FAILURES = 5

_STATE_WORDS = (
    ("source_only", "in a source only"),
    ("library_only", "in the library only"),
    ("archived_1", "archived on 1 target"),
    ("archived_2plus", "on 2+ targets"),
    ("waiting_phone", "waiting on the phone"),
    ("removed", "removed from their source"),
    ("failed", "failed"),
)


def status_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    """Did it work? The last run and why, what the tool has done overall, and
    what waits; the run history last. Only the database, the session files
    and (for the phone) Syncthing are read: no source is listed."""
    desired = load(args)
    now = now or datetime.now(UTC)
    state_path = desired.state_dir / "state.db"
    # Read only: with no database yet (no run made, or a state.dir spelled
    # wrong) an empty one in memory is read, and nothing is made on disk.
    db = StateDB(state_path if state_path.exists() else Path(":memory:"))
    try:
        runs = db.last_runs(5)
        # A run with no exit is alive only while it holds the lock: else it
        # was killed (cron's timeout, the OOM killer) or crashed.
        live = lock.held_now(desired.state_dir)
        newest = _newest_unfinished(db)
        runs = [_unfinished(r, live if r["id"] == newest else False) for r in runs]
        # The headline is about the work: the last apply (cron's) that was not
        # declined at its prompt (it did nothing), else the last run.
        headline = db.last_apply() or (runs[0] if runs else None)
        if headline is not None:
            headline = _unfinished(headline, live if headline["id"] == newest else False)
        counted = counted_now(db, desired)
        figures = db.figures(compression=False)
        figures["bytes_saved_by_compression"] = counted.saved_by_compression
        figures["last_good_apply"] = _last_good_apply(db)
        waiting = _waiting(db, desired)
        worked = _last_success(db)
        refused = _last_refusal(db)
        proven = proof(db, desired, counted)
        damaged = db.damaged_files()
        unproven = dict(proven.unproven)
        phones: list[str] = []
        for tid, cfg in desired.targets.items():
            if isinstance(cfg, config.SyncthingTarget):
                phones.append(_phone_line(tid, cfg))
                phones.append(_canary_line(tid, db.liveness(tid)))
                if cfg.role == "conduit":
                    phones.append(_conduit_line(tid, cfg, db.deliveries(tid).values(), now))
    finally:
        db.close()
    sessions = _sessions(desired, worked, refused, now)
    if args.json:
        doc = {
            "state": str(state_path),
            "last_run": _run_json(headline) if headline else None,
            "census": counted.to_json(),
            # Whether "every item is archived (N copies required) or
            # off-loaded" is said (census.proof), and N.
            "every_item_archived": proven.archived and counted.oldest_unarchived is None,
            "copies_required": proven.copies,
            # Targets whose copies the census counts as last recorded, and why
            # they are not proven now (unmounted, a failed canary).
            "not_proven_now": unproven,
            "failed": {
                "run": counted.failed_run,
                "files": [
                    {"subject": f.subject, "kind": f.kind, "error": f.error, "at": f.at}
                    for f in counted.failures
                ],
            },
            "icloud": {sid: s for sid, (s, _) in sessions.items()},
            "runs": [_run_json(r) for r in runs],
            **figures,
            "waiting": waiting,
            "sessions": [line for _, line in sessions.values()],
            "phones": phones,
            # library files changed with no write seen (bit rot, or an edit
            # through a memory mapping): kept and archived as they are, the
            # version before put back beside them; said only when there are some
            **({"damaged_in_library": damaged} if damaged else {}),
        }
        io.say(json.dumps(doc, indent=2, default=str))
        return EXIT_OK
    _show(io, f"state: {escape_controls(str(state_path))}")
    if not runs:
        _show(io, "no runs yet")
    else:
        shown = headline or runs[0]
        running = shown.get("running_now") if shown["status"] == "running" else None
        _show(io, _headline(shown, figures["last_good_apply"], running))
    for line in [*_census_lines(counted, figures, proven), *_damaged_lines(damaged)]:
        _show(io, line)
    for _, line in sessions.values():
        _show(io, line)
    for line in phones:
        _show(io, line)
    for tid, w in waiting.items():
        _show(
            io, f"{tid}: {w['files']} file(s) waiting for confirmation since {utc_text(w['since'])}"
        )
    if runs:
        _show(io, "last runs:")
    for r in runs:
        _show(io, _run_line(r))
    return EXIT_OK


def _last_good_apply(db: StateDB) -> str | None:
    """When the last apply that worked (exit 0) finished: one declined at
    its prompt did nothing, and never counts as one that worked."""
    sql = (
        f"select finished_at from runs where command = 'apply' and exit_code = 0 "
        f"and {NOT_DECLINED} order by id desc limit 1"
    )
    row = db.conn.execute(sql).fetchone()
    return None if row is None else str(row[0])


def _headline(run: Mapping[str, Any], last_good: str | None, running: bool | None) -> str:
    """The headline for ``run``: by its exit code (``render.status_headline``)
    with the first line of its reason (the one that chose the exit code);
    an apply declined at its prompt (shown only when no apply was not) is
    said as such, never as one that worked."""
    first = (run.get("reason") or "").split("\n")[0]
    line = render.status_headline(dict(run, reason=first), last_good, running=running)
    if _declined(run):
        line = line.replace(" worked,", " declined at its prompt (nothing done),", 1)
    return line


_declined = render.declined


def _show(io: Out, text: str) -> None:
    """Say ``text`` with every control character escaped, line by line: a
    name, a reason or a setting can neither break a line nor reorder one."""
    io.say("\n".join(escape_controls(line) for line in text.split("\n")))


def _census_lines(c: Census, figures: Mapping[str, Any], proven: Proof) -> list[str]:
    items = c.to_json()["items"]
    lines = ["items: " + ", ".join(f"{items[key]} {word}" for key, word in _STATE_WORDS)]
    tiers = ", ".join(f"{t} {n}" for t, n in c.tiers.items()) or "none yet"
    lines.append(
        f"library: {render.size_text(c.library_bytes)}, files by tier: {tiers}; "
        f"compression saved {render.size_text(c.saved_by_compression)}"
    )
    removed = figures["removed"]
    total = sum(r["items"] for r in removed.values())
    per = "".join(
        f"; {sid}: {r['items']} ({render.size_text(r['bytes'])})" for sid, r in removed.items()
    )
    # What the tool off-loaded, as its tombstones say, one taken back since
    # included: the census's ``offloaded`` bytes are what is off-loaded now.
    done = sum(r["bytes"] for r in removed.values())
    lines.append(
        f"off-loaded from sources by this tool: {total} item(s), {render.size_text(done)}{per}"
    )
    if c.targets:
        lines.append(
            "targets: "
            + "; ".join(
                f"{tid} {files} file(s), {render.size_text(size)}"
                for tid, (files, size) in c.targets.items()
            )
        )
    if c.oldest_unarchived is not None:
        o = c.oldest_unarchived
        lines.append(
            f"oldest not yet archived: {escape_controls(o.name)}, captured {o.captured_at:%Y-%m-%d}"
        )
    elif proven.archived:
        word = "copy" if proven.copies == 1 else "copies"
        lines.append(f"every item is archived ({proven.copies} {word} required) or off-loaded")
    if proven.unproven:
        named = "; ".join(f"{tid} {why}" for tid, why in proven.unproven.items())
        lines.append(
            escape_controls(f"not proven now: {named}")
            + "; the counts above take the copies there as last recorded"
        )
    if c.failures:
        lines.append(
            f"failed in the last apply (run {c.failed_run}): {len(c.failures)} action(s), "
            f"{items['failed']} item(s); apply again to retry"
        )
        for f in c.failures[:SHOWN_FAILURES]:
            lines.append(escape_controls(f"  x {f.subject} ({f.kind}): {f.error}"))
        if len(c.failures) > SHOWN_FAILURES:
            more = len(c.failures) - SHOWN_FAILURES
            lines.append(f"  … and {more} more (reconcile status --json lists them all)")
    return lines


def _damaged_lines(paths: list[str]) -> list[str]:
    """The library's files damaged in place, said beside the census:
    its items' good versions are back and counted, but the person's
    disk is failing them, and each such file stays until they delete it."""
    if not paths:
        return []
    lines = [
        f"changed in the library with no write seen: {len(paths)} file(s) whose bytes "
        "changed while their size, times and inode did not (bit rot, a failing disk, or "
        "an edit made through a memory mapping); each is kept and archived as it is, the "
        "version from before put back beside it from a target's copy; delete the one you "
        "do not want"
    ]
    lines += [escape_controls(f"  x library:{p}") for p in paths[:SHOWN_FAILURES]]
    if len(paths) > SHOWN_FAILURES:
        more = len(paths) - SHOWN_FAILURES
        lines.append(f"  … and {more} more (reconcile status --json lists them all)")
    return lines


def _waiting(db: StateDB, desired: DesiredState) -> dict[str, dict[str, Any]]:
    out = {}
    for tid in desired.targets:
        pending = [d for d in db.deliveries(tid).values() if not d["confirmed_at"]]
        if pending:
            since = min(d["delivered_at"] for d in pending)
            out[tid] = {"files": len(pending), "since": since}
    return out


def _newest_unfinished(db: StateDB) -> int | None:
    """The run the lock's holder can be: the newest with no exit yet. Only
    an apply makes its row as it starts (a plan's is made at its end, so a
    plan beside a running apply is newer, and finished); an older row with
    no exit is one the next apply marks crashed."""
    row = db.conn.execute("select max(id) from runs where status = 'running'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _unfinished(r: Mapping[str, Any], live: bool | None) -> dict[str, Any]:
    """``r``, and for a run with no exit: ``running_now``, whether it is
    alive (None: cannot tell), and its status as a person reads it."""
    out = dict(r)
    if r["status"] == "running":
        out["running_now"] = live
    return out


def _run_json(r: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(r, summary=json.loads(r["summary"] or "{}"))
    out.pop("census", None)  # the census of now is above; past ones are the report's
    out.pop("census_key", None)  # what it was taken at: the tool's own bookkeeping
    return out


def _run_line(r: Mapping[str, Any]) -> str:
    """One run: what, how it ended, when, how long, what it did; then why."""
    code = "-" if r.get("exit_code") is None else r["exit_code"]
    took = ""
    if r["finished_at"] and r["started_at"]:
        seconds = (
            datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])
        ).total_seconds()
        took = f", {max(0.0, seconds):.1f} s"
    did = []
    for key, n in json.loads(r["summary"] or "{}").items():
        if key.startswith("bytes_"):
            did.append(f"{key.removeprefix('bytes_')} {render.size_text(int(n))}")
        else:
            did.append(f"{key} {n}")
    state = r["status"]
    if state == "running":
        state = render.UNFINISHED[r.get("running_now")]
    line = f"  run {r['id']}: {r['command']} {state}, exit {code}, {utc_text(r['finished_at'])}"
    line += took + (f": {', '.join(did)}" if did else "")
    # Each line of its reason on a line of its own (a run with several
    # problems said each: ``commands.common.finish``).
    why = "".join(f"\n    {escape_controls(w)}" for w in (r.get("reason") or "").split("\n"))
    return line + (why if r.get("reason") else "")


def _last_success(db: StateDB) -> dict[str, Any] | None:
    """The last run that read every source and worked (exit 0 or 2): with an
    iCloud source configured, its last successful use."""
    sql = "select * from runs where exit_code in (?, ?) order by id desc limit 1"
    rows = [dict(r) for r in db.query(sql, [EXIT_OK, EXIT_CHANGES])]
    return rows[0] if rows else None


def _last_refusal(db: StateDB) -> dict[str, Any] | None:
    from providers.icloud.errors import LOGIN_HINT

    sql = "select * from runs where exit_code = ? and reason like ? order by id desc limit 1"
    rows = [dict(r) for r in db.query(sql, [EXIT_PERSON, f"%{LOGIN_HINT}%"])]
    return rows[0] if rows else None


def _sessions(
    desired: DesiredState,
    worked: Mapping[str, Any] | None,
    refused: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, tuple[dict[str, Any], str]]:
    """Each iCloud source's session as the runs found it: a session file of
    any age means nothing once Apple refused it (the newer of the last run
    that worked and the last run refused a login decides)."""
    from providers.icloud.session import session_age

    out: dict[str, tuple[dict[str, Any], str]] = {}
    for sid, cfg in desired.sources.items():
        if not isinstance(cfg, config.ICloudSource):
            continue
        username = os.environ.get("ICLOUD_USERNAME", "")
        age = session_age(icloud_session_dir(desired), username, now=now) if username else None
        fact: dict[str, Any] = {
            "state": "none",
            "trusted_at": None,
            "expires_about": None,
            "expiry_estimate": f"{TRUST_DAYS} days after the 2FA login (Apple's trust period, "
            "not published; estimated)",
            "last_success": worked["finished_at"] if worked else None,
            "last_success_run": worked["id"] if worked else None,
        }
        used = (
            f"last used successfully {utc_text(worked['finished_at'])} (run {worked['id']})"
            if worked
            else "never used successfully yet"
        )
        if refused is not None and (worked is None or refused["id"] > worked["id"]):
            fact["state"] = "refused"
            line = (
                f"{sid}: Apple refused the session in run {refused['id']} "
                f"({utc_text(refused['finished_at'])}; {used}); run: reconcile login icloud"
            )
        elif age is None:
            line = f"{sid}: no trusted iCloud session; {used}; run: reconcile login icloud"
        else:
            trusted = now - age
            expires = trusted + timedelta(days=TRUST_DAYS)
            left = (expires - now).days
            fact |= {
                "state": "trusted",
                "trusted_at": trusted.isoformat(),
                "expires_about": expires.isoformat(),
            }
            line = (
                f"{sid}: trusted iCloud session is {age.days} day(s) old, {used}; "
                f"2FA is due again about {expires:%Y-%m-%d} "
                f"({'in ' + str(left) + ' day(s)' if left >= 0 else 'overdue'}: Apple asks "
                f"after about {TRUST_DAYS} days, estimated from the login's date)"
            )
        out[sid] = (fact, line)
    return out


def _phone_line(tid: str, cfg: config.SyncthingTarget) -> str:
    """Connection and progress of the phone, from Syncthing (progress only:
    copies count by per-file confirmation, never by this percentage)."""
    from providers.syncthing.target import SyncthingTarget

    target = connect_target(tid, cfg, os.environ)
    if isinstance(target, UnavailableStore):
        return f"{tid}: {target.reason}"
    assert isinstance(target, SyncthingTarget)
    with target:
        st = target.status_summary()
    if not st.reachable:
        return f"{tid}: Syncthing unreachable: {st.problem}"
    seen = f"last seen {st.last_seen:%Y-%m-%d %H:%M} UTC" if st.last_seen else "never seen"
    if st.paused_here:
        # Not the phone's doing: this machine's Syncthing holds it back, and
        # is where it is resumed.
        what = "phone" if st.paused_here == "device" else st.paused_here
        return (
            f"{tid}: {what} paused here (in this machine's Syncthing), {seen}; resume it "
            "here; its progress is unknown"
        )
    folder = f"folder here {st.folder_state}" if st.folder_state else "folder state unknown"
    if not st.connected:
        # Completion is this machine's guess of what the phone has: while it
        # is away the figure says nothing, and "100%" would be a lie.
        return f"{tid}: phone offline, {seen}; {folder}; its progress is unknown"
    done = f"{st.completion:.0f}% synced" if st.completion is not None else "progress unknown"
    deletes = f", {st.need_deletes} deletion(s) not applied there" if st.need_deletes else ""
    return (
        f"{tid}: phone connected; {folder}; {done} by this machine's index "
        f"({st.need_items or 0} file(s) to go{deletes}; the phone's own folder state is not "
        "visible here)"
    )


def _conduit_line(
    tid: str, cfg: config.SyncthingTarget, rows: Iterable[dict[str, Any]], now: datetime
) -> str:
    """What a conduit delivered, what settles (until when), what it released.
    A confirmation stamped after ``now`` (a run while the clock was ahead)
    settles from now, as the next run counts it (``observe``)."""
    confirmed = [r for r in rows if r["confirmed_at"]]
    released = [r for r in confirmed if r["freed_at"]]
    settling = [r for r in confirmed if not r["freed_at"]]
    on_phone = sum(r["size"] or 0 for r in settling)
    line = (
        f"{tid} (conduit): {len(confirmed)} delivered, {len(settling)} settling "
        f"({on_phone} bytes on the phone"
    )
    if cfg.max_bytes_on_phone is not None:
        line += f" of max {int(cfg.max_bytes_on_phone)}; delivery holds back beyond it"
    line += f"), {len(released)} released from the phone"
    if settling:
        first = min(min(datetime.fromisoformat(r["confirmed_at"]) for r in settling), now)
        due = first + timedelta(days=cfg.settle_days)
        line += f"; next release due {due:%Y-%m-%d %H:%M} UTC"
    return line


def _canary_line(tid: str, row: dict[str, Any] | None) -> str:
    """The last run's liveness proof: the only sign from here that the phone's
    folder really receives files (its last contact, as this tool knows it)."""
    if row is None:
        return f"{tid}: no canary sent yet (the next plan or apply sends one)"
    if row["alive"]:
        return (
            f"{tid}: last canary reached the phone at {utc_text(row['at'])} "
            f"(round trip {row['round_trip_s'] or 0:.2f} s)"
        )
    return (
        f"{tid}: last canary FAILED at {utc_text(row['at'])}: {row['reason']}; "
        "its copies did not count"
    )
