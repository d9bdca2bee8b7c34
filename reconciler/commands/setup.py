"""The commands that set things up rather than reconcile: ``validate``,
``login``, ``emulator serve``, ``import-legacy`` and ``init-target``."""

from __future__ import annotations

import argparse
import errno
import os
from datetime import UTC, datetime
from pathlib import Path

from reconciler import config, places, preflight, visible
from reconciler.commands.common import EXIT_ERROR, EXIT_OK, Out, is_tty, load
from reconciler.config import DesiredState
from reconciler.connect import icloud_session_dir
from reconciler.errors import ConfigError
from reconciler.lock import RunLock
from reconciler.media.kinds import is_housekeeping, is_trash
from reconciler.state import StateDB


def validate_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    desired = load(args)
    io.say(
        f"ok    {config.config_path(args.config)}: valid ({len(desired.sources)} source(s), "
        f"{len(desired.targets)} target(s), {desired.policy.copies} copies required)"
    )
    for tid, cfg in desired.targets.items():
        if isinstance(cfg, config.SyncthingTarget) and cfg.count_as_copy:
            io.say(
                f"note: targets.{tid}.count_as_copy: trusting Google Photos without "
                "verification (a conduit's delivery counts as a copy; it cannot be read back)"
            )
    checks = preflight.offline(desired, os.environ)
    if args.online:
        checks += preflight.online(desired, os.environ, now or datetime.now(UTC))
    for c in checks:
        io.say(f"{_CHECK_WORD[c.status]:<5} {c.subject}: {c.message}")
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        io.warn(
            f"error: {failed} of {len(checks) + 1} checks failed (FAIL above); fix them, "
            "then run reconcile validate again"
        )
        return EXIT_ERROR
    return EXIT_OK


_CHECK_WORD = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


def _icloud_source(desired: DesiredState, wanted: str | None) -> tuple[str, config.ICloudSource]:
    found = [
        (sid, cfg)
        for sid, cfg in desired.sources.items()
        if isinstance(cfg, config.ICloudSource) and (wanted is None or sid == wanted)
    ]
    if not found:
        raise ConfigError([f"no icloud source{' ' + wanted if wanted else ''} in the config"])
    return found[0]


def login_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    import getpass
    import os

    from providers.icloud.session import login_interactive

    desired = load(args)
    sid, cfg = _icloud_source(desired, args.source)
    username = os.environ.get("ICLOUD_USERNAME", "")
    if not username:
        raise ConfigError([f"sources.{sid}: set ICLOUD_USERNAME in the environment"])
    if not is_tty(io.stdin):
        io.warn(
            "error: login asks for the password and a two-factor code: run it in a terminal "
            "(cron and pipes cannot answer)"
        )
        return EXIT_ERROR
    password = os.environ.get("ICLOUD_PASSWORD") or getpass.getpass(
        f"Apple ID password for {username}: "
    )

    def prompt_code(prompt: str) -> str:
        io.out.write(f"{prompt} ")
        io.out.flush()
        return io.stdin.readline().strip()

    login_interactive(
        username, password, icloud_session_dir(desired), prompt_code, cfg.endpoint or None
    )
    where = icloud_session_dir(desired)
    io.say(f"Logged in to iCloud as {username}; the trusted session is in {where}.")
    return EXIT_OK


def emulator_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    from providers.icloud.emulator.__main__ import serve

    if not 0 <= args.port <= 65535:
        io.warn(f"error: --port {args.port}: a port is 0 to 65535 (0: any free port)")
        return EXIT_ERROR
    if args.seed_folder and not Path(args.seed_folder).is_dir():
        io.warn(f"error: --seed-folder {args.seed_folder}: no such folder")
        return EXIT_ERROR
    try:
        serve(
            port=args.port,
            generate=None if args.seed_folder else args.generate,
            seed_folder=Path(args.seed_folder) if args.seed_folder else None,
            say=io.say,
        )
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        io.warn(
            f"error: cannot listen on 127.0.0.1:{args.port}: {e.strerror} (another emulator?); "
            "pick another --port, or --port 0 for any free one"
        )
        return EXIT_ERROR
    return EXIT_OK


def import_legacy_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    from reconciler.legacy import import_legacy

    desired = load(args)
    with RunLock(desired.state_dir):
        db = StateDB.in_dir(desired.state_dir)
        try:
            report = import_legacy(desired, db, Path(args.media_db), fences=places.fences(desired))
        finally:
            db.close()
    shown = visible.escape_controls  # every name from the seed's rows or a store, as it is seen
    known = f", {report.known} of them known from an earlier read" if report.known else ""
    io.say(
        f"imported {report.rows} row(s) from {shown(args.media_db)}: {report.adopted} item(s) "
        f"adopted ({report.files} file(s) hashed where they are{known}; {report.originals} "
        "item(s) still the size the seed downloaded), "
        f"{report.deleted_from_icloud} recorded as deleted from iCloud by the seed pipeline"
    )
    for name in report.missing[:10]:
        io.say(f"  not on any store: {shown(name)}")
    if len(report.missing) > 10:
        io.say(f"  … and {len(report.missing) - 10} more not on any store")
    for name, why in report.unreadable[:10]:
        io.say(f"  x unreadable: {shown(name)}: {shown(why)}")
    if len(report.unreadable) > 10:
        io.say(f"  … and {len(report.unreadable) - 10} more unreadable")
    io.say("Nothing imported counts as a copy until reconcile reads it; run: reconcile plan")
    if report.unreadable:
        # As an unreadable source file in a run: the rest is done, exit 1.
        io.warn(
            f"error: {len(report.unreadable)} file(s) could not be read (x unreadable above) and "
            "were left out; everything else was imported. Fix them (permissions, a failing "
            "disk), then run reconcile import-legacy again: what was read is not read again"
        )
        return EXIT_ERROR
    return EXIT_OK


def init_target_command(args: argparse.Namespace, io: Out, now: datetime | None) -> int:
    from providers.filesystem import read_marker, write_marker

    # "~" as in the configuration's paths: a quoted "~/usb2" (a unit file, a
    # script) is the home's, never a folder named "~" in the current one.
    path = Path(args.path).expanduser()
    if path.exists() and not path.is_dir():
        io.warn(f"error: {path} is not a folder")
        return EXIT_ERROR
    if not path.exists() and not args.create:
        io.warn(
            f"error: {path} does not exist; is the disk mounted? "
            "To make a new folder there, add --create"
        )
        return EXIT_ERROR
    # A folder marked as another store is refused by write_marker itself.
    marked = read_marker(path)
    if marked in (None, args.id):
        try:
            clash = _marked_around(path) or _configured_clash(args, path) or _marked_below(path)
        except ConfigError as e:
            io.warn(
                f"error: refusing to mark {path} as the store {args.id!r}: the configuration "
                f"does not read, so {path} cannot be compared with its places; fix it first "
                f"(reconcile validate):\n  " + "\n  ".join(e.problems)
            )
            return EXIT_ERROR
        if clash:
            io.warn(
                f"error: refusing to mark {path} as the store {args.id!r}: {clash}; sources, "
                "library, targets and the state directory must not contain one another (a "
                "backup in a source is removed with it; one in another store counts one file "
                "as two copies); choose a folder of its own"
            )
            return EXIT_ERROR
    hazard = preflight.mount_hazard(path)
    if hazard:
        io.warn(f"warning: {hazard}")
    held = _a_file_in(path) if marked is None else None
    if held is not None:
        io.warn(
            f"warning: {path} already holds files (such as {held}); reconcile never deletes "
            "them, and they count as copies only where their content matches: check it is "
            "the folder you meant"
        )
    try:
        marker = write_marker(path, args.id)
    except OSError as e:
        io.warn(f"error: cannot mark {path} as the store {args.id!r}: {e.strerror or e}")
        return EXIT_ERROR
    io.say(f"{args.path} is now the store {args.id!r} ({marker.name} written)")
    return EXIT_OK


def _a_file_in(path: Path) -> str | None:
    """One file below ``path`` (relative), or None: the first found, so a
    full disk is not walked to say so."""
    from providers.filesystem import MARKER, TMP_PREFIX

    for folder, dirs, names in os.walk(path):
        top = folder == str(path)
        if top:  # the store's own marker, and what the filesystem made (never archived)
            dirs[:] = [d for d in dirs if not (is_housekeeping(d) or is_trash(d))]
        files = [
            f
            for f in names
            if not (is_housekeeping(f) or is_trash(f))
            and not f.startswith(TMP_PREFIX)
            and not (top and f == MARKER)
        ]
        if files:
            return os.path.relpath(os.path.join(folder, sorted(files)[0]), path)
    return None


def _marked_around(path: Path) -> str:
    """The store whose marker is in a folder above ``path``, as a clash;
    known with no configuration at all (``init-target`` often comes first)."""
    from providers.filesystem import MARKER, read_marker

    real = Path(os.path.realpath(path))
    for above in real.parents:
        store = read_marker(above)
        if store is not None:
            return f"it is inside the store {store!r} ({above / MARKER})"
    return ""


def _marked_below(path: Path) -> str:
    """A store whose marker is below ``path``, as a clash; known with no
    configuration at all. Not a walk of the whole tree (a full disk would
    take minutes): the markers' usual places, each sub-folder of ``path``,
    and each mount point below it (a disk mounted there) with its own
    sub-folders (``init-target /mnt/nas/photos``), from the kernel's table;
    a marker deeper in a folder is not seen."""
    from providers.filesystem import MARKER, read_marker

    real = Path(os.path.realpath(path))
    if not real.is_dir():
        return ""
    for top in (real, *sorted(p for p in places.mount_points() if real in p.parents)):
        folders = [] if top == real else [top]
        try:
            with os.scandir(top) as entries:
                folders += sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            pass  # a folder that cannot be listed holds no marker that can be read
        for folder in folders:
            store = read_marker(folder)
            if store is not None:
                return f"it holds the store {store!r} ({folder / MARKER})"
    return ""


def _configured_clash(args: argparse.Namespace, path: Path) -> str:
    """How ``path`` meets a configured place other than the store's own
    (``targets.<id>.path``, or the library for ``--id library``), or "".
    With no configuration file yet, nothing to compare with (init-target
    may come first); one that exists but does not read raises ConfigError:
    its places are not known, so nothing may be marked unchecked."""
    name = config.config_path(args.config)
    if not os.path.lexists(name):
        return ""
    desired = config.load(name)
    own = {f"targets.{args.id}.path"} | ({"library.path"} if args.id == "library" else set())
    met, how = places.meeting(desired, path, own)
    return f"{met} in {name}{how}" if met else ""
