"""A library file encoded for its tier, always from the original, on the
encoder processes, and put in place only once it decodes (EncodeForTier).

The encoder is handed the original by its name, and proves what it read
against the original's SHA-256 (``media.files``): a new photo that took the
name meanwhile fails the action, to be tried again next run, and is never
encoded in the original's place nor judged as it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from reconciler import media, renditions_journal, rows
from reconciler.apply.outcomes import Effects, Skip
from reconciler.apply.sidecars import SidecarWriter
from reconciler.errors import MediaError, SourceChangedError
from reconciler.gate import GateRefused
from reconciler.hashing import copy_hashing, discard, open_to_read, sha256_file
from reconciler.media.files import OriginalChanged
from reconciler.model import ORIGINAL_TIER, EncodeForTier, FileCopy, LibraryFile
from reconciler.plan import CANNOT_ENCODE, LIBRARY
from reconciler.plan.tiers import lighter_tier
from reconciler.state import LineageRow


class Encoder(SidecarWriter):
    """EncodeForTier."""

    def _encode(self, a: EncodeForTier) -> tuple[str, str, Effects]:
        sha = self._sha(a.sha256, a.origin)
        lib = self.library.get(sha)
        if lib is None:
            raise Skip("skipped", "not in the library")
        if lib.tier == a.tier:
            return "ok", f"already at tier {a.tier}", Effects()
        if lib.tier == ORIGINAL_TIER and not self.originals.elsewhere(sha):
            raise Skip(
                "waiting",
                "the library holds the only copy of this original; encoded once it is archived",
            )
        if lib.tier == ORIGINAL_TIER and sha not in self.holders:
            # The encode replaces the library's own original, and no source
            # holds it any more: from then on the targets hold the only
            # original bytes, so they must hold them now, each copy read, as
            # for a removal. (While a source holds it, its removal is gated,
            # so an import's first encode reads nothing more.) A copy found
            # wrong is forgotten, and the next run copies the original again
            # from the library before it is encoded. Read on the encode's
            # own thread (the reading overlaps other encodes), once the
            # encode is done and just before the replace: an encode takes
            # minutes, and the copies must be there when the original goes.
            wrong: list[FileCopy] = []

            def proven() -> None:
                self.gate.archived(a.name, sha, on_mismatch=lambda _, copy: wrong.append(copy))

            try:
                status, detail, fx = self._encoded(a, sha, lib, proven)
            except GateRefused as e:
                why = f"{e}; the library keeps its original until then"
                return "waiting", why, Effects(wrong_copies=wrong)
            # Enough copies were right, and some may not have been: those are
            # forgotten too, whatever the encode did.
            fx.wrong_copies.extend(wrong)
            return status, detail, fx
        return self._encoded(a, sha, lib)

    def _encoded(
        self,
        a: EncodeForTier,
        sha: str,
        lib: LibraryFile,
        proven: Callable[[], object] | None = None,
    ) -> tuple[str, str, Effects]:
        """The encode itself, once ``_encode`` found it may replace the file;
        ``proven``: asked just before the replace (the targets' copies read
        then), raising to keep the library's original."""
        store = self.conn.library
        tmp = store.temp_path(lib.path)
        src: Path | None = None
        tier, detail = a.tier, ""
        settle: list[tuple[str, str, str]] = []
        # Back to a lighter tier from a heavier one's encode (the clock put
        # right, the photo re-dated later in Photos): the encode is weighed
        # against the original it stands for. Weighed against the compressed
        # file it would be "not worth it", settled for good, and the photo
        # kept at the heavier quality.
        lighter = lighter_tier(self.desired.policy.tiers, a.tier, lib.tier)
        got = ""  # the SHA-256 of the original copied back, when it is
        try:
            with self.originals.readable(sha) as src:
                if a.tier != ORIGINAL_TIER:
                    res = self.encoders.result(
                        self.encoders.executor().submit(
                            media.encode_file,
                            src,
                            tmp,
                            quality=a.quality,
                            crf=a.crf,
                            original_sha256=sha,
                            tier=a.tier,
                            replaces_size=src.stat().st_size if lighter else lib.size,
                            video_codec=self.desired.policy.video_codec,
                            heic_preset=self.desired.policy.heic_preset,
                            threads=self.encoders.threads,
                            source_sha256=sha,
                        )
                    )
                    status, detail = res.status, res.reason
                    if lighter and status != "encoded":
                        # No encode beats the original: the original comes
                        # back, and the verdict is kept (weighed against it).
                        tier, settle = ORIGINAL_TIER, [(sha, a.tier, detail)]
                if tier == ORIGINAL_TIER:
                    # Streamed (a clip is never held in memory whole), read
                    # as any file another program may have replaced, and
                    # the bytes written are the original's or nothing is.
                    got = _copied(src, tmp)
                    if got != sha:
                        why = "the original's bytes changed while they were read; next run"
                        return "failed", self.originals.label(why, sha, src), Effects()
                    status = "encoded"
                    detail = f"original restored ({detail})" if detail else "original restored"
            if status != "encoded":
                # not worth it, or kept whole: said once here, then settled
                return "ok", detail, Effects(settled=[(sha, a.tier, detail)])
            if lib.captured_at is not None:
                # Dated as every file placed in the library is: photo apps
                # sort by it, and a lost state DB reads a capture time back
                # from it (an encode's own time would make an old photo new).
                when = int(lib.captured_at.timestamp()) * 10**9
                with contextlib.suppress(OverflowError, OSError):  # a date no mtime holds
                    os.utime(tmp, ns=(when, when))
            if proven is not None:
                proven()
            # Recorded as the tool's before it lands: a run killed between
            # the replace and its record would leave a file that carries the
            # original's lineage and that no record vouches for.
            made = got if tier == ORIGINAL_TIER else sha256_file(tmp)  # (read once)
            if tier != ORIGINAL_TIER:
                # And in the library's own journal, first: a state database
                # put back from a backup, or another configuration's, knows
                # the encode from there (``renditions_journal``).
                unjournaled = self._journaled(made, sha, tier, lib)
                if unjournaled is not None:
                    return "failed", unjournaled, Effects()
                self.db.record_made(made, sha, tier)
            try:
                copy = store.replace(tmp, lib.path, replaces=lib.sha256, sha256=made)
            except SourceChangedError as e:
                return "failed", self._not_replaced(e, lib), Effects()
        except OriginalChanged as e:
            # Another file took the original's name since it was proven (a
            # camera's counter reset, a sync), or it changed: no verdict on
            # the original, its hash there is forgotten, the next run tries.
            if src is not None:
                self.originals.distrust(src)
            return "failed", self.originals.label(str(e), sha, src), Effects()
        except media.EncodeTimeout as e:
            # The machine, not the file, may be at fault: not settled, so
            # the next run tries again.
            return "failed", self._told(str(e), sha, src, tmp, lib), Effects()
        except MediaError as e:
            # Bad input stays bad: tried once per tier, reported as a failure
            # the first time only; later plans list it as an error note.
            # The original is untouched.
            reason = f"{CANNOT_ENCODE}: {self._told(str(e), sha, src, tmp, lib)}"
            fx = Effects(settled=[(sha, a.tier, reason)])
            if sha in self._known_bad:
                return "skipped", f"{reason}; known bad input, the library keeps the file", fx
            return "failed", f"{reason}; not retried, the library keeps the file", fx
        except OSError as e:
            if e.filename != str(tmp):
                raise
            # The encoded file could not be written (the library's disk
            # full or read-only): named as the person knows the file, not
            # by the temporary's pinned /proc path; tried again next run.
            return "failed", _unwritten(lib, e), Effects()
        finally:
            discard(tmp)
        row = LineageRow(
            path=copy.path,
            original_sha256=sha,
            sha256=copy.sha256,
            tier=tier,
            size=copy.size,
            mtime_ns=copy.mtime_ns,
            captured_at=rows.ts(lib.captured_at),
        )
        return "changed", detail, Effects(lineage=[row], settled=settle)

    def _not_replaced(self, e: SourceChangedError, lib: LibraryFile) -> str:
        """The library file the encode was to replace is not the one
        recorded: its cached hash is wrong. Trusted, it would plan this
        very encode, and fail it, every run until the file is due to be
        verified (never, with ``reverify_after_days = 0``). It is read
        again next run, where the observer tells an edit saved over it
        (the person's version, archived) from damage in place (its good
        version put back from a target). The bytes just recorded as made
        are the tool's all the same (``record_made``): the record vouches
        for those bytes only, which no other file holds. Distrusted as any
        original found changed: its row is marked by the runner (``SUSPECT``)."""
        self.originals.distrust(e.path or str(self.conn.library.root / lib.path))
        return f"{e}; it is read again next run"

    def _journaled(self, made: str, sha: str, tier: str, lib: LibraryFile) -> str | None:
        """Append the encode about to land to the library's journal (begun,
        if none is there, with every encode the state database recorded);
        None when done, else why not: the encode waits for it, as an encode
        the library's disk cannot take does."""
        root = self.conn.library.root
        try:
            renditions_journal.append(root, (made, sha, tier), self.db.every_made)
        except OSError as e:
            where = renditions_journal.journal_path(root)
            return (
                f"{LIBRARY}:{lib.path}: recording its encode in {where} failed: "
                f"{e.strerror or e}; the library keeps the file, and the next run encodes "
                "it again"
            )
        return None

    def _told(self, message: str, sha: str, src: Path | None, tmp: Path, lib: LibraryFile) -> str:
        """An encoder's ``message`` as a person reads it: the original by
        where it lives, the output by the library file it was to become."""
        told = message.replace(str(tmp), f"{LIBRARY}:{lib.path} (its encoded copy)")
        return self.originals.label(told, sha, src)


def _unwritten(lib: LibraryFile, e: OSError) -> str:
    return (
        f"{LIBRARY}:{lib.path}: writing its encoded copy failed: {e.strerror or e}; "
        "the library keeps the file, and the next run encodes it again"
    )


class _NamedReads:
    """A file read whose failures name it (a file object's ``read`` names
    none), so that they are not taken for the output's."""

    def __init__(self, f: BinaryIO, name: Path) -> None:
        self._f, self._name = f, name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._f.read(size)
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(self._name)) from e


def _copied(src: Path, tmp: Path) -> str:
    """The original ``src`` streamed into ``tmp`` (a clip is never held in
    memory whole); the SHA-256 of what was read. An OSError names the file
    it is of: ``src`` read, or ``tmp`` written (a full library disk)."""
    with open(open_to_read(src), "rb") as f:
        try:
            return copy_hashing(_NamedReads(f, src), tmp)[0]  # type: ignore[arg-type]
        except OSError as e:
            if e.filename is not None:
                raise
            raise OSError(e.errno, e.strerror or str(e), str(tmp)) from e
