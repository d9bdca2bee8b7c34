"""Downloads, and copies into the library and onto the targets, each hashed
as it is written and verified before it counts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from providers.base import ConfirmingStore
from reconciler import rows
from reconciler.apply.outcomes import Effects
from reconciler.apply.runner import Runner, T
from reconciler.errors import ProviderError, SourceChangedError
from reconciler.hashing import discard
from reconciler.layout import dated_path
from reconciler.model import CopyToLibrary, CopyToTarget, DownloadAsset, LibraryFile

#: How many holders of an original a copy reads before it gives up this run.
HOLDERS_TRIED = 4


class Copier(Runner):
    """DownloadAsset, CopyToLibrary, CopyToTarget."""

    def _download(self, a: DownloadAsset) -> tuple[str, str, Effects]:
        key = (a.origin.source_id, a.origin.item_key, a.origin.ref)
        known = self.known.get(key)
        if known and known in self.library:
            return "ok", "already in the library", Effects()
        source, item, file = self._item_file(a.origin)
        rel = dated_path(a.captured_at, a.name)
        lib = self.conn.library
        tmp = lib.temp_path(rel)

        def fetch() -> str:
            discard(tmp)
            sha = source.fetch(item, file, tmp)
            got = tmp.stat().st_size
            if got != file.size:
                raise ProviderError(
                    f"{a.subject}: received {got} of {file.size} bytes",
                    provider=source.id,
                    transient=True,
                )
            return sha

        try:
            sha = self._retry(f"download {a.subject}", source.id, fetch)
            mtime = rows.mtime_ns(a.captured_at)
            if mtime is not None:  # photo apps sort by it: the capture date
                try:
                    os.utime(tmp, ns=(mtime, mtime))
                except OSError as e:  # (its error names no file)
                    raise ProviderError(
                        f"setting the capture date of {rel} failed: {e.strerror or e}",
                        provider=lib.id,
                    ) from e
        except BaseException:
            discard(tmp)
            raise
        # The fingerprint listed with the size the bytes were checked
        # against: the hash counts while the source lists both (observe).
        fx = Effects(source_files=[(a.origin, sha, file.size, file.fingerprint)])
        if sha in self.library:
            discard(tmp)
            return "changed", f"downloaded; same content as {self.library[sha].path}", fx
        kept = self._rendition(sha)
        if kept is not None:
            # A library file made by encoding, uploaded back to iCloud (an
            # AirDrop to the phone): adopted, it would land on that very file
            # and be recorded as an original there, to be encoded again. An
            # earlier encoding of it (made for a lighter tier) would become a
            # second original of the photo, compressed again.
            discard(tmp)
            what = "the library's own" if kept.sha256 == sha else "an earlier encoding of"
            return "changed", f"downloaded; {what} {kept.path}, kept as it is", fx
        copy = lib.adopt(tmp, rel, sha)
        fx.lineage.append(rows.original_row(copy, a.captured_at, file.role))
        return "changed", f"downloaded to {copy.path}", fx

    def _rendition(self, sha: str) -> LibraryFile | None:
        """The library file these bytes were made for by encoding, now or
        earlier (as the planner's ``_rendition``)."""
        kept = self.renditions.get(sha)
        if kept is None and sha in self.made:
            kept = self.library.get(self.made[sha])
        return kept

    def _copy_to_library(self, a: CopyToLibrary) -> tuple[str, str, Effects]:
        if a.sha256 in self.library:
            return "ok", "already in the library", Effects()
        rel = a.path or dated_path(a.captured_at, a.name)
        mtime = rows.mtime_ns(a.captured_at)
        copy = self._from_original(
            a.sha256,
            lambda src: self._retry(
                f"copy {a.subject}",
                "library",
                lambda: self.conn.library.put(src, rel, a.sha256, mtime_ns=mtime),
            ),
        )
        return (
            "changed",
            f"copied to {copy.path}",
            Effects(lineage=[rows.original_row(copy, a.captured_at, a.role)]),
        )

    def _copy_to_target(self, a: CopyToTarget) -> tuple[str, str, Effects]:
        sha = self._sha(a.sha256, a.origin)
        store = self.conn.targets[a.target_id]
        existing = self.copies.get(a.target_id, {}).get(sha)
        if existing is not None:
            return "ok", f"already on {a.target_id} at {existing.path}", Effects()
        avail = store.availability()
        if not avail.available:
            # It was available when observed: it vanished during the run
            # (unmounted, moved). A failure, not a skip: the run exits 1.
            raise ProviderError(
                f"{a.target_id} became unavailable during the run: {avail.reason}",
                provider=a.target_id,
            )
        rel = dated_path(a.captured_at, a.name)
        mtime = rows.mtime_ns(a.captured_at)
        copy = self._from_original(
            sha,
            lambda src: self._retry(
                f"copy {a.subject}", a.target_id, lambda: store.put(src, rel, sha, mtime_ns=mtime)
            ),
        )
        local = store.local_path(copy.path)
        if isinstance(store, ConfirmingStore) and local is not None and not local.exists():
            # A copy this machine freed before (its record lost with the
            # state database) and the phone holds: taken back, not sent.
            return (
                "changed",
                f"taken back: {a.target_id}:{copy.path} (freed here before; the phone holds "
                "it; nothing sent)",
                Effects(target_copies=[copy]),
            )
        return "changed", f"copied to {a.target_id}:{copy.path}", Effects(target_copies=[copy])

    def _from_original(self, sha: str, use: Callable[[Path], T]) -> T:
        """``use`` a readable file of the original ``sha``. One found, while
        read, not to hold those bytes (edited in place with its size and
        mtime kept, rotten: its cached hash was wrong) is distrusted, its
        hash forgotten, and the next holder read: a copy is never stuck on
        one bad file while another place holds the original."""
        for _ in range(HOLDERS_TRIED):
            with self.originals.readable(sha) as src:
                try:
                    return use(src)
                except SourceChangedError as e:
                    self.originals.distrust(e.path or src)
                    last = e
        raise last
