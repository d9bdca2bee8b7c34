"""Helpers for the Syncthing tests: a plain hasher and a bounded poll."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from providers.base import Confirmation, Hashed, ScanEntry
from providers.filesystem import scan_tree


class Sha256Hasher:
    """The plain hasher: reads every file (the real one is cache-backed)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def walk(self, root: Path, **how: Any) -> list[ScanEntry]:
        return list(scan_tree(root, **how))

    def hash_entries(
        self, entries: Iterable[ScanEntry], *, dates: bool = False, tree: str | None = None
    ) -> list[Hashed]:
        out = []
        for e in entries:
            self.seen.append(e.rel)
            out.append(Hashed(sha256=hashlib.sha256(Path(e.path).read_bytes()).hexdigest()))
        return out


def wait_for(
    check: Callable[[], Confirmation], *, held: bool, timeout: float = 10.0
) -> Confirmation:
    """Poll ``check`` with short sleeps until ``held`` matches; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer.held is held or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)
