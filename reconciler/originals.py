"""Where the original bytes of a SHA-256 are read from, during one apply run.

Copies and encodes are made *from the original*, never from an earlier
compressed copy (DESIGN.md). The original is the library's file while it is
still at the original tier; else a source or target file on this machine,
read in place once it re-hashes right; else it is fetched (iCloud, a store
elsewhere) to a temporary file under the state directory and re-hashed.

The applier owns one ``Originals`` per run and shares its indexes with it:
as the run downloads, copies and encodes, the originals it finds change.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path, PurePosixPath

import attrs

from reconciler.connect import Connected
from reconciler.errors import ProviderError
from reconciler.hashing import sha256_file
from reconciler.layout import safe_name
from reconciler.model import ORIGINAL_TIER, FileCopy, LibraryFile, MediaFile, SourceItem


@attrs.define
class Originals:
    """The applier's indexes, read here: ``library`` (original sha256 -> its
    library file), ``holders`` (original sha256 -> the source files holding
    it) and ``copies`` (target -> sha256 -> its copy there)."""

    conn: Connected
    state_dir: Path
    library: Mapping[str, LibraryFile]
    holders: Mapping[str, Sequence[tuple[str, SourceItem, MediaFile]]]
    copies: Mapping[str, Mapping[str, FileCopy]]
    #: Files found this run not to hold the bytes recorded for them, and
    #: those of them whose cached hash is still to be forgotten.
    _distrusted: set[str] = attrs.field(factory=set, init=False)
    _to_forget: list[str] = attrs.field(factory=list, init=False)
    #: The library's files by their bytes now (an encode too), made on need.
    _by_content: dict[str, LibraryFile] | None = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def distrust(self, path: Path | str) -> None:
        """``path`` does not hold the bytes its recorded hash names (edited in
        place with its size and mtime kept, rotten): it is read for no
        original again this run, and its cached hash is to be forgotten
        (``to_forget``). Any action's thread may call it."""
        with self._lock:
            if str(path) not in self._distrusted:
                self._distrusted.add(str(path))
                self._to_forget.append(str(path))

    def to_forget(self) -> list[str]:
        """The files distrusted since the last call, whose hash cache rows the
        caller drops (on the thread that owns the state DB): the next run
        reads them afresh."""
        with self._lock:
            taken, self._to_forget = self._to_forget, []
        return taken

    @contextmanager
    def readable(self, sha: str) -> Iterator[Path]:
        """A readable path holding the original bytes of ``sha``: the library's
        original, a source or target file on this machine (read in place),
        the library's file of those very bytes (an encode archived as itself),
        or else one fetched to a temporary file (iCloud, a store elsewhere),
        named as the original is (``original.MOV``).

        It is a name, proven when this hands it over: another file may take
        it before the caller reads (a camera's counter reset, a sync). A
        reader that must have the original's bytes checks what it read (the
        encoder does, by ``encode_file``'s ``source_sha256``).

        The caller's own errors (a full or read-only library while the
        encode is written) pass through as they are: no ``yield`` here
        stands inside a ``try`` that would take them for this search's."""
        lib = self.library.get(sha)
        if lib is not None and lib.tier == ORIGINAL_TIER and lib.sha256 == sha:
            path = self.conn.library.root / lib.path
            if str(path) not in self._distrusted:
                yield path
                return
        found = next((p for p in self._local_originals(sha) if self._holds(p, sha)), None)
        if found is None:
            found = self._library_bytes(sha)
        if found is not None:
            yield found
            return
        with tempfile.TemporaryDirectory(dir=self.state_dir, prefix="fetch-") as tmp:
            yield self._fetched(sha, Path(tmp))

    def _library_bytes(self, sha: str) -> Path | None:
        """The library file holding the very bytes of ``sha`` whatever it is
        in its item: the encode archived in place of an original that is
        lost (the planner's ``_in_place_of_original``). Asked only when no
        original of ``sha`` is found elsewhere: an encode is never read for
        an original, as its bytes are not the original's."""
        with self._lock:
            if self._by_content is None:
                # (the run's own index, as observed: a file encoded since is
                # re-hashed below and found not to hold those bytes)
                self._by_content = {lf.sha256: lf for lf in list(self.library.values())}
            kept = self._by_content.get(sha)
        if kept is None:
            return None
        path = self.conn.library.root / kept.path
        # Not distrusted when it differs: it may have been encoded since.
        return path if str(path) not in self._distrusted and _holds(path, sha) else None

    def _fetched(self, sha: str, folder: Path) -> Path:
        """The original fetched into ``folder`` from the first place that
        gives its very bytes."""
        for name, fetch in self._fetchers(sha):
            dest = folder / f"original{PurePosixPath(safe_name(name)).suffix}"
            dest.unlink(missing_ok=True)
            try:
                fetch(dest)
            except ProviderError:
                continue
            if _holds(dest, sha):
                return dest
        raise ProviderError(f"no readable original with sha256 {sha[:12]} anywhere")

    def _holds(self, path: Path, sha: str) -> bool:
        """``path`` is trusted and, read now, holds the bytes of ``sha``;
        one that does not is distrusted."""
        if str(path) in self._distrusted:
            return False
        if _holds(path, sha):
            return True
        if path.exists():
            self.distrust(path)
        return False

    def _local_originals(self, sha: str) -> Iterator[Path]:
        for sid, item, f in self.holders.get(sha, ()):
            path = self.conn.sources[sid].local_path(item, f)
            if path is not None:
                yield path
        for tid, copies in self.copies.items():
            if sha in copies:
                path = self.conn.targets[tid].local_path(copies[sha].path)
                if path is not None:
                    yield path

    def _fetchers(self, sha: str) -> Iterator[tuple[str, Callable[[Path], object]]]:
        """Each place's name for the original, and how to fetch it from there."""
        for sid, item, f in self.holders.get(sha, ()):
            yield f.name, partial(self.conn.sources[sid].fetch, item, f)
        for tid, copies in self.copies.items():
            if sha in copies:
                yield copies[sha].path, partial(self.conn.targets[tid].read_to, copies[sha])

    def label(self, message: str, sha: str, path: Path | None) -> str:
        """``message`` with the path the encoder read replaced by where the
        original lives (``source:name``, ``target:path``): a person looks
        for the file there, not in a temporary or library path."""
        names = [f"{sid}:{f.ref}" for sid, _, f in self.holders.get(sha, ())]
        names += [f"{tid}:{c[sha].path}" for tid, c in self.copies.items() if sha in c]
        lib = self.library.get(sha)
        if lib is not None and lib.tier == ORIGINAL_TIER:
            names.append(f"library:{lib.path}")
        also = f", also {', '.join(names[1:3])}" if len(names) > 1 else ""
        label = f"{names[0] if names else 'the original'} (sha256 {sha[:12]}{also})"
        return message.replace(str(path), label) if path is not None else f"{label}: {message}"

    def elsewhere(self, sha: str) -> bool:
        """Is the original held somewhere besides the library (a source, a target)?"""
        return sha in self.holders or any(sha in copies for copies in self.copies.values())


def _holds(path: Path, sha: str) -> bool:
    """``path`` can be read now and holds the bytes of ``sha``."""
    try:
        return sha256_file(path) == sha
    except OSError:
        return False
