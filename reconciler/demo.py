"""`make demo`: a real end-to-end reconciliation, on this machine, offline.

It generates a sample library (~50 items over five years: JPEGs with EXIF
dates, HEICs, Live Photo pairs, videos, same-named different photos; some
edited, favourited, hidden, captioned, in albums, a RAW+JPEG pair) that is
camera-like (2 MP JPEGs at quality 92-95 with real detail, phone-like HEICs
and clips, capture dates over every age tier) so that compression saves what
it would on a real library, serves it from the bundled iCloud emulator,
starts two real Syncthing instances on 127.0.0.1 (one plays the Pixel), logs
in through pyicloud with the emulated 2FA code, and then runs the tool
exactly as a person or cron would:

    reconcile plan
    reconcile apply --yes        (repeated, as cron would, until converged)
    reconcile plan               -> "No changes."
    reconcile status             -> bytes saved, every item archived twice

Everything lives under ./demo-run (removed and rebuilt each time).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

from providers.filesystem import write_marker
from providers.icloud.emulator import Account, camera
from providers.icloud.emulator.seed import add_folder, add_touches, generate_library
from providers.icloud.emulator.testing import running_emulator
from providers.icloud.session import login_interactive
from providers.syncthing.pair import SyncthingPair
from reconciler.cli import main as reconcile

ROOT = Path("demo-run")


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _config(root: Path, emulator_url: str, pair: SyncthingPair) -> Path:
    config = root / "desired_state.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            # The demo's desired state: iCloud (the emulator) archived to a NAS
            # folder and the "phone" (Syncthing), then off-loaded from iCloud.
            [library]
            path = "library"
            [state]
            dir = "state"
            [sources.icloud]
            kind = "icloud"
            endpoint = "{emulator_url}"
            [targets.nas]
            kind = "filesystem"
            path = "nas"
            # The demo's "NAS" is a folder on this disk: count it anyway.
            same_disk_ok = true
            [targets.phone]
            kind = "syncthing"
            path = "{pair.local_folder.resolve()}"
            folder_id = "{pair.folder_id}"
            device_id = "{pair.phone.device_id}"
            url = "{pair.local.url}"
            [policy]
            copies = 2
            [policy.removal]
            enabled = true
            keep_recent_days = 30
            pace_seconds = 0
            """
        )
    )
    return config


def run(root: Path = ROOT) -> int:
    started = time.monotonic()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _banner("generating a camera-like sample library and serving it from the iCloud emulator")
    media = generate_library(root / "generated", count=50, years=5, photo_size=camera.PHOTO_SIZE)
    account = Account()
    add_folder(account, root / "generated")
    size = sum(p.stat().st_size for p in media)
    print(
        f"{len(media)} files ({size / 1e6:.1f} MB), {len(account.live_assets())} iCloud items",
        flush=True,
    )
    for what, names in add_touches(account, photo_size=camera.PHOTO_SIZE).items():
        print(f"  {what}: {', '.join(names)}", flush=True)
    for store in ("library", "nas"):
        write_marker(root / store, store)

    with running_emulator(account) as emu, SyncthingPair.create(root / "syncthing") as pair:
        print(f"iCloud emulator: {emu.url}", flush=True)
        print(f"Syncthing: this machine {pair.local.url}, phone {pair.phone.url}", flush=True)
        config = _config(root, emu.url, pair)
        os.environ["ICLOUD_USERNAME"] = emu.username
        os.environ["SYNCTHING_API_KEY"] = pair.local.api_key
        os.environ.pop("ICLOUD_PASSWORD", None)

        _banner("reconcile login icloud (password, then the 2FA code the emulator sent)")
        login_interactive(
            emu.username,
            emu.password,
            root / "state" / "icloud-session",
            prompt_code=lambda prompt: emu.server.last_sms_code or "",
            endpoint=emu.url,
        )
        print("logged in; trusted session saved under demo-run/state", flush=True)

        args = ["-c", str(config)]
        _banner("reconcile plan")
        if reconcile([*args, "plan"]) != 0:
            return 1
        for attempt in range(1, 6):
            _banner(f"reconcile apply --yes   (run {attempt}, as cron would)")
            code = reconcile([*args, "apply", "--yes"])
            if code not in (0,):
                return code
            if reconcile([*args, "plan", "--detailed-exitcode"], stdout=io.StringIO()) == 0:
                break
            time.sleep(1)  # let the phone confirm what it received
        _banner("reconcile plan   (a second plan finds nothing to do)")
        final = reconcile([*args, "plan", "--detailed-exitcode"])
        for store, where in (("NAS", root / "nas"), ("phone", pair.phone_folder)):
            sidecars = len(list(where.rglob("*.xmp")))
            edits = len(list(where.rglob("*-edited.*")))
            print(f"{store}: {sidecars} XMP sidecars, {edits} edited renditions", flush=True)
        left = len(account.live_assets())
        print(
            f"iCloud now holds {left} recent item(s); "
            f"{len(account.deleted_assets())} went to Recently Deleted after two verified copies.",
            flush=True,
        )
        # The point of it all, as a person checks it the morning after.
        _banner("reconcile status")
        reconcile([*args, "status"])
        print(f"\n(the demo took {time.monotonic() - started:.0f} s)", flush=True)
        return final


if __name__ == "__main__":
    sys.exit(run())
