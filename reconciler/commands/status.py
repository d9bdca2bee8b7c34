"""``reconcile status``: did it work? Read from the state database, the
session files and (for the phone) Syncthing; no source is listed."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from reconciler import config, render
from reconciler.commands.common import EXIT_CHANGES, EXIT_OK, EXIT_PERSON, Out, load
from reconciler.config import DesiredState
from reconciler.connect import UnavailableStore, connect_target, icloud_session_dir
from reconciler.state import StateDB


def status_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    """Did it work? The last run and why, what the tool has done overall, and
    what waits; the run history last. Only the database, the session files
    and (for the phone) Syncthing are read: no source is listed."""
    desired = load(args)
    db = StateDB.in_dir(desired.state_dir)
    try:
        runs = db.last_runs(5)
        # The headline is about the work: the last apply (cron's), else the last run.
        headline = db.last_run_of("apply") or (runs[0] if runs else None)
        figures = db.figures()
        waiting = {}
        for tid in desired.targets:
            pending = [d for d in db.deliveries(tid).values() if not d["confirmed_at"]]
            if pending:
                since = min(d["delivered_at"] for d in pending)
                waiting[tid] = {"files": len(pending), "since": since}
        state_path = str(db.path)
        phones: list[str] = []
        for tid, cfg in desired.targets.items():
            if isinstance(cfg, config.SyncthingTarget):
                phones.append(_phone_line(tid, cfg))
                phones.append(_canary_line(tid, db.liveness(tid)))
                if cfg.role == "conduit":
                    phones.append(_conduit_line(tid, cfg, db.deliveries(tid).values()))
    finally:
        db.close()
    sessions = _session_lines(desired, runs)
    if args.json:
        doc = {
            "state": state_path,
            "runs": [dict(r, summary=json.loads(r["summary"] or "{}")) for r in runs],
            **figures,
            "waiting": waiting,
            "sessions": sessions,
            "phones": phones,
        }
        io.say(json.dumps(doc, indent=2, default=str))
        return EXIT_OK
    io.say(f"state: {state_path}")
    if not runs:
        io.say("no runs yet")
    else:
        io.say(render.status_headline(headline or runs[0], figures["last_good_apply"]))
    tiers = ", ".join(f"{t} {n}" for t, n in figures["library_tiers"].items()) or "none yet"
    io.say(
        f"library files by tier: {tiers}; compression saved "
        f"{render.size_text(figures['bytes_saved_by_compression'])}"
    )
    removed = figures["removed"]
    total = sum(r["items"] for r in removed.values())
    per = "".join(
        f"; {sid}: {r['items']} ({render.size_text(r['bytes'])})" for sid, r in removed.items()
    )
    io.say(f"removed from sources by this tool: {total} item(s){per}")
    for line in sessions + phones:
        io.say(line)
    for tid, w in waiting.items():
        io.say(f"{tid}: {w['files']} file(s) waiting for confirmation since {w['since']}")
    for r in runs:
        exit_code = "-" if r.get("exit_code") is None else r["exit_code"]
        io.say(
            f"run {r['id']}: {r['command']} {r['status']} started {r['started_at']} "
            f"finished {r['finished_at'] or '-'} exit {exit_code} {r['summary'] or ''}".rstrip()
        )
        if r.get("reason"):
            io.say(f"  {r['reason']}")
    return EXIT_OK


def _phone_line(tid: str, cfg: config.SyncthingTarget) -> str:
    """Connection and progress of the phone, from Syncthing (progress only:
    copies count by per-file confirmation, never by this percentage)."""
    import os

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


def _conduit_line(tid: str, cfg: config.SyncthingTarget, rows: Iterable[dict[str, Any]]) -> str:
    """What a conduit delivered, what settles (until when), what it released."""
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
        first = min(datetime.fromisoformat(r["confirmed_at"]) for r in settling)
        due = first + timedelta(days=cfg.settle_days)
        line += f"; next release due {due:%Y-%m-%d %H:%M} UTC"
    return line


def _canary_line(tid: str, row: dict[str, Any] | None) -> str:
    """The last run's liveness proof: the only sign from here that the phone's
    folder really receives files."""
    if row is None:
        return f"{tid}: no canary sent yet (the next plan or apply sends one)"
    if row["alive"]:
        return (
            f"{tid}: last canary reached the phone at {row['at']} "
            f"(round trip {row['round_trip_s'] or 0:.2f} s)"
        )
    return f"{tid}: last canary FAILED at {row['at']}: {row['reason']}; its copies did not count"


def _session_lines(desired: DesiredState, runs: Sequence[dict[str, object]] = ()) -> list[str]:
    """Each iCloud source's session as the runs found it: a session file of
    any age means nothing once Apple refused it (the newest run that either
    worked or was refused a login decides)."""
    import os

    from providers.icloud.errors import LOGIN_HINT

    refused = None
    for r in runs:  # newest first
        if r.get("exit_code") in (EXIT_OK, EXIT_CHANGES):
            break
        if r.get("exit_code") == EXIT_PERSON and LOGIN_HINT in str(r.get("reason") or ""):
            refused = r
            break
    lines = []
    for sid, cfg in desired.sources.items():
        if not isinstance(cfg, config.ICloudSource):
            continue
        from providers.icloud.session import session_age

        username = os.environ.get("ICLOUD_USERNAME", "")
        age = session_age(icloud_session_dir(desired), username) if username else None
        if refused is not None:
            lines.append(
                f"{sid}: Apple refused the session in run {refused['id']} "
                f"({refused['finished_at']}); run: reconcile login icloud"
            )
        elif age is None:
            lines.append(f"{sid}: no trusted iCloud session; run: reconcile login icloud")
        else:
            lines.append(
                f"{sid}: trusted iCloud session is {age.days} day(s) old "
                "(Apple asks for 2FA again after about 30 days)"
            )
    return lines
