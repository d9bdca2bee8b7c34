"""In-memory source and store, shipped for unit tests of the core.

They keep the protocol's promises (atomic put with read-back verification,
soft delete, unavailability) without touching disk, and let a test break
them on purpose: corrupt a copy, fail the next calls, take a store offline.
Real providers are tested against real services; these exist so the
planner/applier properties can be explored quickly with Hypothesis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from providers.base import Availability, Hasher
from reconciler.errors import ProviderError
from reconciler.layout import collision_path
from reconciler.model import FileCopy, MediaFile, SourceItem


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeSource:
    """A remote-like source: hashes are unknown until a file is fetched."""

    kind = "fake"
    remarks: tuple[tuple[str, str], ...] = ()

    def __init__(self, source_id: str, *, remote: bool = True) -> None:
        self.id = source_id
        self.remote = remote
        self.items: dict[str, tuple[SourceItem, dict[str, bytes]]] = {}
        self.removed: list[str] = []
        self.fail_fetch: set[str] = set()  # refs whose fetch raises
        self.truncate_fetch: set[str] = set()  # refs whose fetch returns short bytes
        self.fail_listing = False

    def add(self, key: str, files: dict[str, bytes], captured_at: datetime | None) -> SourceItem:
        media = tuple(
            MediaFile(
                name=name,
                size=len(data),
                ref=name,
                role="live_video" if i else "original",
                sha256=None if self.remote else sha256_bytes(data),
            )
            for i, (name, data) in enumerate(files.items())
        )
        item = SourceItem(source_id=self.id, key=key, files=media, captured_at=captured_at)
        self.items[key] = (item, dict(files))
        return item

    def list_items(self, hasher: Hasher) -> Iterator[SourceItem]:
        if self.fail_listing:
            raise ProviderError("listing failed", provider=self.id, transient=True)
        for item, _ in list(self.items.values()):
            yield item

    def local_path(self, item: SourceItem, file: MediaFile) -> Path | None:
        return None

    def fetch(self, item: SourceItem, file: MediaFile, dest: Path) -> str:
        if file.ref in self.fail_fetch:
            raise ProviderError(f"download of {file.ref} failed", provider=self.id, transient=True)
        data = self.items[item.key][1][file.ref]
        if file.ref in self.truncate_fetch:
            data = data[: len(data) // 2]
        dest.write_bytes(data)
        if len(data) != file.size:
            raise ProviderError(
                f"{file.ref}: got {len(data)} of {file.size} bytes",
                provider=self.id,
                transient=True,
            )
        return sha256_bytes(data)

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        if item.key in self.items:
            proven()
            del self.items[item.key]
            self.removed.append(item.key)


class FakeStore:
    """A backup target in memory."""

    kind = "fake"

    def __init__(self, store_id: str) -> None:
        self.id = store_id
        self.files: dict[str, bytes] = {}
        self.available = True
        self.writes = 0

    def availability(self) -> Availability:
        return Availability(available=self.available, reason="" if self.available else "offline")

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        if not self.available:
            raise ProviderError("offline", provider=self.id)
        for path, data in sorted(self.files.items()):
            yield FileCopy(
                store_id=self.id, path=path, size=len(data), mtime_ns=0, sha256=sha256_bytes(data)
            )

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        if not self.available:
            raise ProviderError("offline", provider=self.id)
        data = src.read_bytes()
        if sha256_bytes(data) != sha256:
            raise ProviderError(f"{rel_path}: source bytes do not match", provider=self.id)
        rel = rel_path
        if rel in self.files and sha256_bytes(self.files[rel]) != sha256:
            rel = collision_path(rel_path, sha256)
        if rel not in self.files:
            self.files[rel] = data
            self.writes += 1
        return FileCopy(store_id=self.id, path=rel, size=len(data), mtime_ns=0, sha256=sha256)

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        if not self.available:
            raise ProviderError("offline", provider=self.id)
        self.files[rel_path] = data
        self.writes += 1
        return FileCopy(
            store_id=self.id, path=rel_path, size=len(data), mtime_ns=0, sha256=sha256_bytes(data)
        )

    def verify(self, copy: FileCopy) -> bool:
        data = self.files.get(copy.path)
        return self.available and data is not None and sha256_bytes(data) == copy.sha256

    def local_path(self, rel_path: str) -> Path | None:
        return None  # in memory

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        dest.write_bytes(self.files[copy.path])

    def corrupt(self, path: str) -> None:
        self.files[path] = b"corrupted" + self.files[path][9:]
