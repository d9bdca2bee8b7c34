"""``python -m providers.icloud.emulator``: serve an emulated iCloud account.

python -m providers.icloud.emulator --port 8765 --generate 50
python -m providers.icloud.emulator --seed-folder ~/Pictures/sample
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
from pathlib import Path

from providers.icloud.emulator.seed import add_folder, add_touches, generate_library
from providers.icloud.emulator.server import EmulatorServer
from providers.icloud.emulator.store import Account


def serve(
    *,
    port: int = 0,
    seed_folder: Path | None = None,
    generate: int | None = None,
    library_dir: Path | None = None,
    username: str = "user@example.com",
    password: str = "correct horse battery staple",
    stop: threading.Event | None = None,
) -> None:
    """Run an emulator until ``stop`` is set (or Ctrl-C), printing its URL
    and credentials first."""
    account = Account(username=username, password=password)
    with tempfile.TemporaryDirectory(prefix="icloud-emulator-") as tmp:
        if generate:
            target = library_dir or Path(tmp)
            generate_library(target, count=generate)
            add_folder(account, target)
            add_touches(account)
        if seed_folder is not None:
            add_folder(account, seed_folder)
        with EmulatorServer(account, port=port) as server:
            print(f"iCloud emulator listening on {server.url}", flush=True)
            print(f"username: {account.username}", flush=True)
            print(f"password: {account.password}", flush=True)
            print(f"assets: {len(account.live_assets())}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                (stop or threading.Event()).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.icloud.emulator")
    parser.add_argument("--port", type=int, default=8765)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seed-folder", type=Path, help="serve the media files under DIR")
    group.add_argument("--generate", type=int, metavar="N", help="generate N media files")
    parser.add_argument("--library-dir", type=Path, help="where --generate writes (default: temp)")
    parser.add_argument("--username", default="user@example.com")
    parser.add_argument("--password", default="correct horse battery staple")
    args = parser.parse_args(argv)
    serve(
        port=args.port,
        seed_folder=args.seed_folder,
        generate=args.generate,
        library_dir=args.library_dir,
        username=args.username,
        password=args.password,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
