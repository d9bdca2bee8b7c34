"""Preflight: what ``reconcile validate`` checks beyond the file's syntax.

``config.load`` says whether desired_state.toml is well formed; this module
says whether the machine matches it. ``offline`` needs nothing but the disk
and the environment: placeholders left from the example, paths that exist
and carry their markers, the environment variables a provider needs, the
shape of URLs. ``online`` (``validate --online``) also reaches every
provider: iCloud signs in with the saved session, Syncthing answers with the
key and knows the folder and the phone, and the phone was seen lately.

Each check is one ``Check`` (one line of output); nothing here prints,
prompts or writes.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import attrs

from providers.filesystem import not_a_marker, read_marker
from providers.mounts import locate
from providers.physical_disks import beneath
from reconciler import config, places
from reconciler.connect import MISSING_API_KEY, icloud_session_dir
from reconciler.errors import ConfigError, LoginRequiredError, ProviderError
from reconciler.independence import backup_groups, count_backups, disk_problems, phones_of
from reconciler.state import unusable

if TYPE_CHECKING:  # imported when used: an offline validate never loads requests
    from providers.syncthing.client import SyncthingClient

#: Values the shipped desired_state.toml carries for a person to replace.
PLACEHOLDERS = frozenset({"PHONE-DEVICE-ID"})
#: A phone not seen by Syncthing for longer is reported (not failed): a
#: phone left off for a holiday is normal; one never seen is not.
PHONE_SEEN_WITHIN = timedelta(days=7)
_DEVICE_ID = re.compile(r"[A-Z2-7]{56}")
#: Folders whose sub-folders are, by convention, where disks get mounted.
MOUNT_BASES: tuple[str, ...] = ("/mnt", "/media", "/run/media", "/Volumes")


@attrs.frozen
class Check:
    """One line of ``reconcile validate``: ``subject`` is a config key path."""

    status: Literal["ok", "warn", "fail"]
    subject: str
    message: str


def _ok(subject: str, message: str) -> Check:
    return Check("ok", subject, message)


def _fail(subject: str, message: str) -> Check:
    return Check("fail", subject, message)


# ------------------------------------------------------------------ mounts


def mount_hazard(path: Path, bases: tuple[str, ...] | None = None) -> str | None:
    """Why ``path`` looks like a folder on an unmounted mount point, or None.

    Under a conventional mount folder (``/mnt/nas/photos``), something should
    be mounted between that folder and the path. If the path (or, while it
    does not exist, its nearest existing parent) is on the same filesystem
    as the mount folder itself, nothing is: the disk is not mounted, and a
    store made there would fill the system disk and vanish under the mount.
    """
    target = Path(os.path.realpath(path))
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for base_text in MOUNT_BASES if bases is None else bases:
        base = Path(os.path.realpath(base_text))
        if target == base or not target.is_relative_to(base):
            continue
        top = _mount_point(existing)
        if base.is_relative_to(top):
            return (
                f"{path} is on the same filesystem as {top} (nothing is mounted under "
                f"{base_text} there): is the disk mounted? If not, the folder is on the "
                "system disk and hidden once the disk is mounted"
            )
    return None


def _mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding ``path`` (the highest
    ancestor on the same device)."""
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


# ------------------------------------------------------------------ offline


def offline(desired: config.DesiredState, env: Mapping[str, str]) -> list[Check]:
    checks = [_marked("library.path", desired.library_path, "library")]
    checks.append(_state_dir(desired.state_dir))
    checks.extend(_metrics_file(desired.log.metrics_file))
    for sid, src in desired.sources.items():
        checks.extend(_source(sid, src, env))
    for tid, tgt in desired.targets.items():
        checks.extend(_target(tid, tgt, env))
    try:
        places.fences(desired)  # two places that are one folder, through a mount
    except ConfigError as e:
        checks.extend(_fail("paths", problem) for problem in e.problems)
    checks.extend(_held(desired))
    checks.extend(_disks(desired))
    return checks


def _held(desired: config.DesiredState) -> list[Check]:
    """A place that holds another through a mount (a card bind-mounted
    inside a target): paths cannot show it, but the walk meets the other's
    folder and stops (``scan_tree``, ``NestedPlaceError``), so plan finds
    the place unavailable on every run. Said here as plan would say it."""
    checks = []
    for key, path in config.places(desired):
        real = Path(os.path.realpath(path))
        for other, root, at in places.held(desired, path):
            how = (
                "through a mount of a folder above it"
                if at == real
                else f"through the mount at {at}"
            )
            walk = (
                ""
                if key == "state.dir"
                else f"; its walk stops there: plan finds {key} unavailable"
            )
            checks.append(
                _fail(
                    key,
                    f"{path} holds {other} ({root}) {how}{walk}; sources, library, targets and "
                    "the state directory must not contain one another: unmount it, or give each "
                    "a folder of its own",
                )
            )
    # A mount showing only a part of another place (a NAS's year folder
    # bind-mounted inside the import folder, a library photo inside a
    # target, an overlay over a library folder) holds no place's folder.
    for alias in places.shown_below(desired):
        walk = (
            ""
            if alias.walked == "state.dir"
            else f"; its walk stops there: plan finds {alias.walked} unavailable"
        )
        listed = "its files would be" if alias.folder else "it would be"
        checks.append(
            _fail(
                alias.walked,
                f"{alias.at} is {alias.what}{walk}; {listed} listed as "
                f"{alias.walked}'s own: unmount it, or mount it outside the configured folders",
            )
        )
    return checks


def _disks(desired: config.DesiredState) -> list[Check]:
    """A target whose copies are not a backup of their own (on the
    library's disk, on one disk with another target, or two folders of
    one phone), as the plan would say (``shared-disk``): with none that
    counts, every item waits in its source for ever, while everything else
    here looked fine; with two folders of one phone counted as one, a
    removal waits on a second backup the person thought they had. The
    disk is the physical one (``providers.physical_disks.beneath``): two partitions
    of one disk are one; where sysfs will not say which, the target's
    copies do not count (as the plan and the gate judge them)."""
    ok = config.same_disk_ok(desired)
    devices: dict[str, int | None] = {}
    unknown: dict[str, str] = {}
    for tid, tgt in desired.targets.items():
        if isinstance(tgt, config.FilesystemTarget):
            found = _disk(tgt.path)
            if found is None:
                continue  # not there: its own line says so
            devices[tid], why = found
            if why and tid not in ok:
                unknown[tid] = f"which disk it is on cannot be told: {why}"
        else:
            devices[tid] = None  # on the phone: grouped by its device id
    # its physical disk: one for all its partitions, all the subvolumes of a btrfs
    library, why = _disk(desired.library_path) or (None, "")
    if library is None:
        # not there (its own line says so): the phones can still be told apart
        devices = {tid: None for tid, dev in devices.items() if dev is None}
    if why:
        why = f"which disk the library is on cannot be told: {why}"
        unknown |= {tid: why for tid, dev in devices.items() if dev is not None and tid not in ok}
    groups = backup_groups(
        devices,
        library=library,
        same_disk_ok=ok,
        phones=phones_of(desired.targets),
    )
    problems = disk_problems(groups) | unknown
    checks = [
        Check("warn", f"targets.{tid}", f"not a backup: {problems[tid]}")
        for tid in desired.targets
        if tid in problems
    ]
    return checks + _reachable(desired, groups, set(unknown))


def _reachable(
    desired: config.DesiredState, groups: dict[str, str | None], uncounted: set[str]
) -> list[Check]:
    """With removal on, whether ``policy.copies`` can ever be met by the
    targets' copies as the gate counts them: a conduit only with
    ``count_as_copy``, the folders of one phone once, targets on one disk
    once, one on the library's disk or an unknown one not at all. If not,
    nothing ever leaves a source while every run looks fine (README:
    a conduit "never enables a removal"). The configuration already refuses
    more copies than targets; what only the machine shows (disks) is a
    warning, as the disks' own lines are; what the file alone shows (a
    conduit, one phone) fails."""
    if not desired.policy.removal.enabled:
        return []
    need = desired.policy.copies
    untrusted = {
        tid
        for tid, cfg in desired.targets.items()
        if isinstance(cfg, config.SyncthingTarget)
        and cfg.role == "conduit"
        and not cfg.count_as_copy
    }
    counted = [tid for tid in desired.targets if tid not in untrusted]
    phones = phones_of(desired.targets)
    by_file = count_backups(counted, {tid: f"phone:{phones[tid]}" for tid in phones})
    by_disk = count_backups([tid for tid in counted if tid not in uncounted], groups)
    if need <= min(by_file, by_disk):
        return []
    why = [f"targets.{tid} is a conduit without count_as_copy = true" for tid in sorted(untrusted)]
    if by_disk < by_file:
        why.append("some are not a backup of their own: the lines above")
    elif len(counted) > by_file:
        why.append("the folders of one phone count once")
    status: Literal["warn", "fail"] = "fail" if by_file < need else "warn"
    return [
        Check(
            status,
            "policy.copies",
            f"{need} copies are required before removal, but the targets can make at most "
            f"{min(by_file, by_disk)} ({'; '.join(why)}): nothing would ever be removed from "
            "a source; lower policy.copies, add a target, or turn removal off",
        )
    ]


def _disk(path: str | Path) -> tuple[int, str] | None:
    """The physical disk ``path`` is on, and what sysfs would not tell of
    it ("" when all); None when it cannot be looked at."""
    where = locate(path)
    if where is None:
        return None
    found = beneath(where)
    return found.disk, found.unknown


def _marked(subject: str, path: Path, store_id: str) -> Check:
    init = f"reconcile init-target {path} --id {store_id}"
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        return _fail(
            subject, f"{path} {what}; mount the disk, or fix the path, or run: {init} --create"
        )
    marked = read_marker(path)
    damaged = not_a_marker(path) if marked is None else ""
    if damaged:
        return _fail(
            subject, f"{damaged}; move it aside if it is nothing of yours, then run: {init}"
        )
    if marked is None:
        return _fail(
            subject, f"{path} has no marker (not mounted?); if it is the right folder, run: {init}"
        )
    if marked != store_id:
        return _fail(subject, f"{path} is marked as {marked!r}, not {store_id!r}; fix the path")
    return _ok(subject, f"{path} is marked as {store_id!r}")


def _state_dir(path: Path) -> Check:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return _fail("state.dir", f"{existing} is not a folder; fix the path")
    if not os.access(existing, os.W_OK | os.X_OK):
        return _fail("state.dir", f"{existing} is not writable by this user; fix the permissions")
    if existing == path:
        db = path / "state.db"
        if db.exists():
            problem = _state_db_problem(db)
            if problem:
                return _fail("state.dir", problem)
            return _ok("state.dir", f"{path} is writable; {db.name} reads")
        return _ok("state.dir", f"{path} is writable")
    return _ok("state.dir", f"{path} will be created")


def _metrics_file(configured: str) -> list[Check]:
    """Where the Prometheus textfile is rewritten after every plan and apply
    (``history``); the default, in the state directory, is checked with it.
    Only a warning: a run that cannot write it still does its work and
    keeps its exit code, and says so on each run."""
    if not configured:
        return []
    path = Path(configured)
    later = "each plan and apply will warn and go on without it"
    if path.is_dir():
        return [Check("warn", "log.metrics_file", f"{path} is a folder; name a file ({later})")]
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = f"{existing} is not a folder, so {path} cannot be written; fix the path"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable by this user; fix the permissions or the path"
    else:
        made = "" if existing == path.parent else f" ({path.parent} will be created)"
        return [_ok("log.metrics_file", f"{path} can be written{made}")]
    return [Check("warn", "log.metrics_file", f"{problem} ({later})")]


def _state_db_problem(db: Path) -> str:
    """What ``plan`` would stop on in the state database, read without a
    write (nothing is migrated, nothing locked): damage, a lock another
    program holds, a read-only file (``state.unusable``); "" when it reads."""
    try:
        # Percent-encoded: a raw '?' or '#' in the path would end it there
        # (another file opened, and made, read-write), '%41' read as 'A'.
        uri = Path(os.path.abspath(db)).as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    except sqlite3.Error as e:
        return str(unusable(db, e))
    try:
        conn.execute("pragma quick_check(1)").fetchall()
        conn.execute("select count(*) from meta").fetchall()
    except sqlite3.Error as e:
        return str(unusable(db, e))
    finally:
        conn.close()
    return ""


def _source(sid: str, src: config.SourceConfig, env: Mapping[str, str]) -> list[Check]:
    where = f"sources.{sid}"
    if isinstance(src, config.FolderSource):
        path = Path(src.path)
        if not path.is_dir():
            return [_fail(f"{where}.path", f"{path} does not exist (card not inserted?)")]
        return [_ok(f"{where}.path", f"{path} exists")]
    checks = [_env(where, env, "ICLOUD_USERNAME", "your Apple ID")]
    if src.endpoint:
        from providers.icloud.transport import endpoint_problem

        problem = endpoint_problem(src.endpoint)
        checks.append(
            _fail(f"{where}.endpoint", problem)
            if problem
            else _ok(f"{where}.endpoint", f"the iCloud emulator at {src.endpoint} (not Apple)")
        )
    return checks


def _env(where: str, env: Mapping[str, str], name: str, what: str) -> Check:
    if not env.get(name):
        return _fail(where, f"{name} is not set in the environment; export it ({what})")
    return _ok(where, f"{name} is set")


def _target(tid: str, tgt: config.TargetConfig, env: Mapping[str, str]) -> list[Check]:
    where = f"targets.{tid}"
    if isinstance(tgt, config.FilesystemTarget):
        marked = _marked(f"{where}.path", Path(tgt.path), tid)
        hazard = mount_hazard(Path(tgt.path)) if marked.status == "ok" else None
        # A marker on the bare mount point (an old init-target while the disk
        # was away) makes the system disk pass for the NAS: say so.
        return [Check("warn", marked.subject, f"marked, but {hazard}") if hazard else marked]
    checks = []
    path = Path(tgt.path)
    if not path.is_dir():
        checks.append(_fail(f"{where}.path", f"{path} does not exist; create the folder"))
    elif not (path / ".stfolder").exists():
        checks.append(
            _fail(
                f"{where}.path",
                f"{path} has no .stfolder: it is not a Syncthing folder yet (add it in Syncthing)",
            )
        )
    else:
        checks.append(_ok(f"{where}.path", f"{path} is a Syncthing folder"))
    checks.append(_device_id(f"{where}.device_id", tgt.device_id))
    if tgt.folder_id in PLACEHOLDERS or not tgt.folder_id.strip():
        checks.append(_fail(f"{where}.folder_id", "put the Syncthing folder id here"))
    checks.append(_syncthing_url(f"{where}.url", tgt.url))
    key = env.get("SYNCTHING_API_KEY")
    checks.append(
        _fail(where, MISSING_API_KEY) if not key else _ok(where, "SYNCTHING_API_KEY is set")
    )
    return checks


def _device_id(subject: str, device_id: str) -> Check:
    how = "on the phone: Syncthing > Settings > Show device ID"
    if device_id in PLACEHOLDERS:
        return _fail(
            subject, f"{device_id!r} is the example's placeholder; put the phone's id ({how})"
        )
    if not _DEVICE_ID.fullmatch(device_id.replace("-", "").upper()):
        return _fail(
            subject,
            f"{device_id!r} is not a Syncthing device id (eight groups of seven letters and "
            f"digits, ABCDEFG-HIJKLMN-…); copy it ({how})",
        )
    return _ok(subject, "a well-formed Syncthing device id")


def _syncthing_url(subject: str, url: str) -> Check:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return _fail(subject, f"{url!r} is not a URL; use http://HOST:PORT (e.g. {_URL})")
    if parts.path.rstrip("/").endswith("/rest") or parts.path.startswith("/rest"):
        base = f"{parts.scheme}://{parts.netloc}"
        return _fail(subject, f"{url!r} ends in /rest; use {base} (reconcile adds /rest/...)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return _fail(subject, f"{url!r} has a path; use {parts.scheme}://{parts.netloc}")
    if port is None:
        return _fail(subject, f"{url!r} has no port; Syncthing's GUI port is usually 8384")
    return _ok(subject, f"{url} is shaped like Syncthing's API address")


_URL = "http://127.0.0.1:8384"


# ------------------------------------------------------------------ online


def online(desired: config.DesiredState, env: Mapping[str, str], now: datetime) -> list[Check]:
    checks: list[Check] = []
    for sid, src in desired.sources.items():
        if isinstance(src, config.ICloudSource):
            checks.append(_icloud(sid, src, desired, env, now))
    for tid, tgt in desired.targets.items():
        if isinstance(tgt, config.SyncthingTarget):
            checks.extend(_phone(tid, tgt, env, now))
    return checks


def _icloud(
    sid: str,
    src: config.ICloudSource,
    desired: config.DesiredState,
    env: Mapping[str, str],
    now: datetime,
) -> Check:
    from providers.icloud import session
    from providers.icloud.transport import endpoint_problem

    where = f"sources.{sid}"
    username = env.get("ICLOUD_USERNAME", "")
    if not username or (src.endpoint and endpoint_problem(src.endpoint)):
        return _fail(where, "not reached: fix the problems above first")
    directory = icloud_session_dir(desired)
    if not (directory / f"{session.session_stem(username)}.session").is_file():
        # Without a saved session a sign-in would need the password and a
        # code: say so without asking Apple anything.
        return _fail(where, f"no saved iCloud session for {username}; run: reconcile login icloud")
    try:
        api = session.connect(
            sid,
            username,
            env.get("ICLOUD_PASSWORD") or None,
            directory,
            endpoint=src.endpoint or None,
            timeouts=(10.0, src.timeout_s),
        )
    except (LoginRequiredError, ProviderError) as e:
        return _fail(where, _plain(e))
    api.session.close()
    age = session.session_age(directory, username, now=now)
    if age is None:
        return _ok(where, f"signed in as {username} (session age unknown)")
    text = f"signed in as {username}; the trusted session is {age.days} day(s) old"
    if age.days >= 25:
        return Check(
            "warn",
            where,
            f"{text}: Apple asks for 2FA again after about 30 days; "
            "run reconcile login icloud soon",
        )
    return _ok(where, f"{text} (Apple asks for 2FA again after about 30 days)")


def _phone(
    tid: str, tgt: config.SyncthingTarget, env: Mapping[str, str], now: datetime
) -> list[Check]:
    from providers.syncthing.client import SyncthingClient
    from providers.syncthing.folder import share_problem

    where = f"targets.{tid}"
    key = env.get("SYNCTHING_API_KEY", "")
    if not key or _syncthing_url(f"{where}.url", tgt.url).status == "fail":
        return [_fail(where, "not reached: fix the problems above first")]
    checks: list[Check] = []
    with SyncthingClient(url=tgt.url, api_key=key) as client:
        try:
            own = client.my_id()
        except ProviderError as e:
            return [_fail(f"{where}.url", _plain(e))]
        checks.append(_ok(f"{where}.url", f"Syncthing answers at {tgt.url} with this key"))
        try:
            folder = client.folder(tgt.folder_id)
            checks.append(_ok(f"{where}.folder_id", f"Syncthing has the folder {tgt.folder_id!r}"))
        except ProviderError as e:
            folder = None
            checks.append(_fail(f"{where}.folder_id", _plain(e)))
        try:
            device = client.device(tgt.device_id)
        except ProviderError as e:
            checks.append(_fail(f"{where}.device_id", _plain(e)))
            return checks
        if tgt.device_id == own:
            checks.append(_fail(f"{where}.device_id", "this machine's own id; use the phone's"))
            return checks
        checks.append(_ok(f"{where}.device_id", "Syncthing knows the phone"))
        if folder is not None and tgt.device_id not in folder.device_ids:
            checks.append(
                _fail(where, f"the folder {tgt.folder_id!r} is not shared with the phone; share it")
            )
        elif folder is not None and (
            problem := share_problem(folder, attrs.evolve(device, paused=False))
        ):
            # shared as an untrusted device (ciphertext only), the folder
            # paused here… (a device paused here: the next line says so)
            checks.append(_fail(where, problem))
        checks.append(_seen(where, client, tgt.device_id, now))
    return checks


def _seen(where: str, client: SyncthingClient, device_id: str, now: datetime) -> Check:
    try:
        connection = client.connections().get(device_id)
        last = client.last_seen(device_id)
    except ProviderError as e:
        return _fail(where, _plain(e))
    if connection is not None and connection.paused:
        from providers.syncthing.liveness import PAUSED_HERE

        return _fail(where, PAUSED_HERE)  # shown as not connected too: not the phone's doing
    if connection is not None and connection.connected:
        return _ok(where, "the phone is connected now")
    if last is None:
        return _fail(where, "the phone was never seen; open Syncthing on the phone and pair it")
    when = f"{last:%Y-%m-%d %H:%M} UTC"
    if now - last > PHONE_SEEN_WITHIN:
        days = (now - last).days
        return Check("warn", where, f"the phone was last seen {when} ({days} days ago)")
    return _ok(where, f"the phone was last seen {when}")


def _plain(e: ProviderError) -> str:
    return str(e).removeprefix(f"{e.provider}: ") if e.provider else str(e)
