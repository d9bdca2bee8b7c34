"""``python -m providers.icloud.emulator``: serve an emulated iCloud account.

python -m providers.icloud.emulator --port 8765 --generate 50
python -m providers.icloud.emulator --seed-folder ~/Pictures/sample
python -m providers.icloud.emulator --generate 50 --latency 0.05   # Apple's round trip

(``reconcile emulator serve`` is the same.) It prints its URL, the account's
username and password, and each two-factor code as it is "sent".
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from providers.icloud.emulator import camera
from providers.icloud.emulator.seed import add_folder, add_touches, generate_library
from providers.icloud.emulator.server import EmulatorServer
from providers.icloud.emulator.store import Account


def _say(line: str) -> None:
    print(line, flush=True)


def serve(
    *,
    port: int = 0,
    seed_folder: Path | None = None,
    generate: int | None = None,
    library_dir: Path | None = None,
    username: str = "user@example.com",
    password: str = "correct horse battery staple",
    stop: threading.Event | None = None,
    say: Callable[[str], None] = _say,
    poll_s: float = 0.2,
    latency: float = 0.0,
) -> None:
    """Run an emulator until ``stop`` is set (or Ctrl-C), saying its URL,
    credentials and how to log in first, then every two-factor code it
    "sends": Apple texts the code to a phone, and this phone is the
    terminal, so a person can answer ``reconcile login icloud``.

    ``--generate`` makes camera-like media (``camera.PHOTO_SIZE``), so that
    reconciling against it shows what compression saves.
    """
    if threading.current_thread() is threading.main_thread():
        # Started in the background by a non-interactive shell (`serve &` in a
        # script), a process inherits SIGINT ignored; Ctrl-C is how it stops.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    account = Account(username=username, password=password)
    with tempfile.TemporaryDirectory(prefix="icloud-emulator-") as tmp:
        if generate:
            target = library_dir or Path(tmp)
            generate_library(target, count=generate, photo_size=camera.PHOTO_SIZE)
            add_folder(account, target)
            add_touches(account, photo_size=camera.PHOTO_SIZE)
        if seed_folder is not None:
            add_folder(account, seed_folder)
        with EmulatorServer(account, port=port, latency=latency) as server:
            say(f"iCloud emulator listening on {server.url}")
            say(f"username: {account.username}")
            say(f"password: {account.password}")
            say(f"assets: {len(account.live_assets())}")
            say(
                f'To log in, set endpoint = "{server.url}" on an icloud source in '
                f"desired_state.toml and run: ICLOUD_USERNAME={account.username} "
                "reconcile login icloud"
            )
            say("The two-factor codes it sends appear below. Ctrl-C stops it.")
            with contextlib.suppress(KeyboardInterrupt):
                _tell_codes(server, stop or threading.Event(), say, poll_s)


def _tell_codes(
    server: EmulatorServer, stop: threading.Event, say: Callable[[str], None], poll_s: float
) -> None:
    # Polled rather than hooked into the sign-in handler: the server stays
    # as it is for tests, and a code is read within poll_s of being sent,
    # long before a person has typed it.
    told = 0
    while not stop.wait(poll_s):
        codes = list(server.auth.sms_codes)
        for code in codes[told:]:
            say(f"2FA code sent to the trusted phone: {code}")
        told = len(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.icloud.emulator")
    parser.add_argument("--port", type=int, default=8765)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed-folder", type=Path, help="serve the media files under DIR")
    group.add_argument("--generate", type=int, metavar="N", help="generate N media files")
    parser.add_argument("--library-dir", type=Path, help="where --generate writes (default: temp)")
    parser.add_argument("--username", default="user@example.com")
    parser.add_argument("--password", default="correct horse battery staple")
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="S", help="add S seconds to every answer"
    )
    args = parser.parse_args(argv)
    serve(
        port=args.port,
        seed_folder=args.seed_folder,
        generate=args.generate,
        library_dir=args.library_dir,
        username=args.username,
        password=args.password,
        latency=args.latency,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
