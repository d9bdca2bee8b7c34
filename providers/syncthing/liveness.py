"""The per-run proof that the phone receives files *now*: a canary round trip.

Syncthing on this machine keeps announcing that the phone holds a file long
after the phone lost it: with the phone's folder missing (SD card unmounted,
folder deleted there) its Syncthing shows ``folder path missing``, but here
the connection is up, completion reads 100 and ``/rest/db/file`` still lists
the phone for every file (seen against the real pair; this machine's API
never shows the remote folder's error). So no per-file answer counts until
the phone has shown, this run, that its folder works: a small file with fresh
content is written at ``/.reconcile-canary``, scanned, and must appear with
the phone in its availability within a bounded time. The canary is deleted
afterwards (the deletion reaches the phone unless its folder ignores deletes;
then one small file stays there and is overwritten by the next run's).

A failure on this machine (the canary cannot be written: its disk is full;
this machine's Syncthing refuses the scan: a ``.stignore`` it cannot load;
a pattern of the person's ignores the canary) is no phone running late: it
raises ``LocalFault``, and the target is unavailable until a person fixes
it here, rather than "waiting" on the phone for ever.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from providers.base import Liveness
from providers.syncthing.client import PROVIDER, SyncthingClient
from providers.syncthing.ignores import TMP_DIR, pattern_for
from reconciler.errors import ProviderError

CANARY = ".reconcile-canary"
DEFAULT_LIVENESS_TIMEOUT = 30.0
#: The oldest proof a removal is made on (seconds): an older one is made
#: again first. A run of hours (a first import, paced removals) must not
#: count a phone shown alive at its start: its folder may be gone since.
MAX_PROOF_AGE_S = 300.0


class LocalFault(ProviderError):
    """The phone cannot be proven alive because of a fault on this machine
    (its disk, its Syncthing, its ``.stignore``): a person must fix it here."""


def format_time(when: datetime | None) -> str:
    return "never seen" if when is None else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def prove_alive(
    client: SyncthingClient,
    *,
    folder_path: Path,
    folder_id: str,
    device_id: str,
    timeout: float,
    ensure_tmp: Callable[[], object],
) -> Liveness:
    """Deliver a fresh canary and wait (at most ``timeout`` s) for the phone
    to announce it. The phone away or late is a reason (alive False); a
    fault of this machine's raises ``LocalFault``: every error of this
    machine's Syncthing or disk met on the way is one, as the phone's
    absence never shows as an error here (only as the canary not arriving)."""
    try:
        folder = client.folder(folder_id)
        if folder.paused:
            return Liveness(alive=False, reason=f"Syncthing folder {folder_id!r} is paused here")
        away = unreachable(client, device_id)
        if away:
            return Liveness(alive=False, reason=away)
        ensure_tmp()
        return _round_trip(client, folder_path, folder_id, device_id, timeout)
    except LocalFault:
        raise
    except ProviderError as e:
        # said as it was (it names this machine's file or Syncthing), once
        said = str(e).removeprefix(f"{e.provider}: ") if e.provider else str(e)
        raise LocalFault(said, provider=e.provider or PROVIDER) from e


def unreachable(client: SyncthingClient, device_id: str) -> str:
    """Why the phone cannot be asked anything now ("" when it is connected):
    paused here (Syncthing shows a paused device as not connected too, and
    the fix is on this machine, not on the phone), or offline."""
    conn = client.connections().get(device_id)
    if conn is not None and conn.paused:
        return PAUSED_HERE
    if conn is None or not conn.connected:
        return f"phone offline since {format_time(client.last_seen(device_id))}"
    return ""


#: A phone's device paused in this machine's Syncthing, as said everywhere.
PAUSED_HERE = "the phone is paused here (in this machine's Syncthing); resume it here"


def _round_trip(
    client: SyncthingClient, folder_path: Path, folder_id: str, device_id: str, timeout: float
) -> Liveness:
    canary = folder_path / CANARY
    body = f"reconcile canary {secrets.token_hex(16)} {datetime.now(UTC).isoformat()}\n"
    try:
        fd, name = tempfile.mkstemp(dir=folder_path / TMP_DIR, prefix="canary-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, canary)  # our own file: replacing it is fine
    except OSError as e:
        raise LocalFault(_unwritable(canary, e), provider=PROVIDER) from e
    start = time.monotonic()
    try:
        client.scan(folder_id, CANARY)
        blocked = _ignored(client, folder_id)
        if blocked:
            raise LocalFault(blocked, provider=PROVIDER)
        delay = 0.02
        while True:
            record = client.file(folder_id, CANARY)
            if (
                record is not None
                and not record.global_.deleted
                and record.local.version == record.global_.version
                and record.local.size == len(body.encode())
                and any(
                    h.device_id == device_id and not h.from_temporary for h in record.availability
                )
            ):
                return Liveness(alive=True, reason="", round_trip_s=time.monotonic() - start)
            if time.monotonic() - start > timeout:
                return Liveness(
                    alive=False,
                    reason=(
                        f"the phone is connected but did not receive a fresh test file within "
                        f"{timeout:g} s: its folder may be missing or in error there (storage "
                        "unmounted, folder deleted, .stfolder gone), or paused; see Syncthing "
                        "on the phone"
                    ),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    finally:
        with contextlib.suppress(OSError):
            canary.unlink()
        with contextlib.suppress(ProviderError):
            client.scan(folder_id, CANARY)


def _unwritable(canary: Path, error: OSError) -> str:
    """Why the canary cannot be written, said as a person fixes it: a full
    disk blocks freeing too (a staging copy is freed only once the phone is
    proven alive this run, by this very file), so space must be made."""
    why = f"cannot write the canary {canary}: {error}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{why}: this machine's disk holding the shared folder is full; free space on it "
            "(staging copies are freed only once the phone is proven alive, which needs this "
            "small test file written there)"
        )
    return why


def _ignored(client: SyncthingClient, folder_id: str) -> str:
    """Why the canary can never reach the phone, when a pattern of the
    person's in this machine's ``.stignore`` ignores it (``.*``: "no hidden
    files"): said as that, not as a phone that did not answer; "" else."""
    found = pattern_for(client.ignores(folder_id), CANARY)
    if found is None or found.startswith("!"):
        return ""
    return (
        f"this machine's .stignore ignores the test file {CANARY} (your pattern {found!r}): "
        f"the phone can never be proven alive; add the line !/{CANARY} above that pattern"
    )
