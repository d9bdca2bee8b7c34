"""The library's own items (files no source holds any more): backed up and
encoded like any item; a library file gone is put back from a target's copy;
the library's sidecars."""

from __future__ import annotations

import posixpath

from reconciler import sidecar
from reconciler.layout import date_from_path
from reconciler.media import is_archivable, media_kind
from reconciler.media.metadata import is_placeholder_date
from reconciler.model import (
    DAMAGED_ROLE,
    ORIGINAL_ROLE,
    SIDECAR_ROLE,
    CopyToLibrary,
    LibraryFile,
    MediaFile,
    SidecarOwner,
    SourceItem,
    WriteSidecar,
)
from reconciler.plan.context import ENCODED_TAG, LIBRARY, here
from reconciler.plan.items import ItemPlanner


def encoded_name(name: str) -> str:
    """The name a copy of the library's encoded file takes on a target when
    its original is lost: tagged, so it is never taken for the original."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{ENCODED_TAG}.{ext}" if dot and stem else f"{name}{ENCODED_TAG}"


#: How a file damaged in place is said, and the good version put back.
DAMAGED = (
    "changed with no write seen (its bytes, not its size, times or inode: bit rot, "
    "a failing disk, or an edit made through a memory mapping)"
)


class LibraryPlanner(ItemPlanner):
    """The library's items, and its files gone."""

    def _library_items(self) -> None:
        """Items that left their sources live on in the library: their copies
        are still kept (and repaired) and they still age into heavier tiers.
        Each file stays what it was in its item (the library remembers:
        ``LibraryFile.role``), so only an original is ever encoded; and the
        item's sidecar is kept on every target, as its files are."""
        sidecars: list[LibraryFile] = []
        for lf in self.world.library.files:
            sha = lf.original_sha256
            if lf.role == DAMAGED_ROLE:
                self._damaged(lf)
                continue
            if sha in self.handled or not is_archivable(lf.path):
                continue  # planned with its source item, or junk (.DS_Store)
            if lf.role == SIDECAR_ROLE:
                sidecars.append(lf)  # once every file of its item is planned
                continue
            if not lf.role and sidecar.is_sidecar(lf.path):
                # An .xmp not read yet (it could not be, this run): whether it
                # is an item's sidecar of the tool's or the person's file is
                # told by its content (observe's ``_read_sidecars``), next run.
                continue
            # Any other file is the person's, archived and repaired as any:
            # another program's .xmp too (darktable's IMG_0001.JPG.xmp or
            # its duplicate's IMG_0001.JPG_01.xmp, Lightroom's IMG_0001.xmp),
            # read as not the tool's and so given an original's role. Its
            # copy never takes the place of an item's sidecar on a target,
            # nor the reverse: neither a copy nor a sidecar write replaces
            # a file there (the sidecar goes under its tagged name).
            self._library_file(lf)
        for lf in sidecars:
            self._library_sidecar(lf)
        self._lost_library_files()

    def _library_file(self, lf: LibraryFile) -> None:
        """A library file no source holds: copied to every target that
        lacks it, encoded for its tier if it is an original."""
        sha = lf.original_sha256
        self.handled.add(sha)
        f, item = self._library_item(lf, lf.size)
        subject = f"{LIBRARY}:{lf.path}"
        self._targets(sha, None, sha, f, item, subject, ())
        self._unconfirmed(sha, subject)
        self._encode(sha, None, sha, f, item, subject, ())
        if self.missing.get(sha):
            self._in_place_of_original(lf, f, item, subject)

    def _in_place_of_original(
        self, lf: LibraryFile, f: MediaFile, item: SourceItem, subject: str
    ) -> None:
        """The original of ``lf`` is lost (every store read, none holds it):
        the library's encoded file is the best of the photo left, and may be
        its only copy. It is archived on every target as what it is, its own
        bytes under its own SHA-256, its name tagged (``IMG_1.encoded.JPG``)
        so no one takes it for the original, and the original's name stays
        free should the person bring that back. It is never encoded again
        (only an original is)."""
        if lf.sha256 == lf.original_sha256 or lf.sha256 in self.handled:
            return  # (the library's own bytes brought back by a source: planned there)
        self.handled.add(lf.sha256)
        name = encoded_name(f.name)
        copy = f._replace(name=name, size=lf.size, sha256=lf.sha256)
        self._targets(lf.sha256, None, lf.sha256, copy, item, subject, ())

    def _library_item(self, lf: LibraryFile, size: int) -> tuple[MediaFile, SourceItem]:
        """A library file as the one file of an item of its own, ``size``
        bytes (its original's, when it is put back)."""
        role = lf.role or ORIGINAL_ROLE
        if role == ORIGINAL_ROLE and media_kind(lf.path) == "video" and self._is_live_video(lf):
            role = "live_video"
        sha = lf.original_sha256
        f = MediaFile(
            name=posixpath.basename(lf.path), size=size, ref=lf.path, role=role, sha256=sha
        )
        # The recorded capture time, never the folder's midnight: an item a
        # second from a tier boundary must stay in the tier it was given.
        when = lf.captured_at or date_from_path(lf.path)
        if when is not None and is_placeholder_date(when):
            when = None  # recorded by an older version, which took 1970 as a date
        return f, SourceItem(source_id=LIBRARY, key=lf.path, files=(f,), captured_at=when)

    def _lost_library_files(self) -> None:
        """Library files gone (deleted, a disk replaced) whose items live
        only in the library: the library holds every item (its promise), so
        each is put back where it was from a target's verified copy, as what
        it was in its item, then encoded for its tier as any placed
        original; and the item's sidecar with it. An item still in a source
        is placed from there (``_item``), its sidecar written from it."""
        lost = [lf for lf in self.world.library.lost if lf.original_sha256 not in self.handled]
        if not lost:
            return
        damaged = {lf.path for lf in self.world.library.files if lf.role == DAMAGED_ROLE}
        wanted = {lf.original_sha256 for lf in lost}
        wanted.update(lf.sha256 for lf in lost)  # (an encode: ``_put_back_encode``)
        # (read from here: a phone's freed copy is on the phone only)
        sizes = {c.sha256: c.size for t in self.targets for c in here(t) if c.sha256 in wanted}
        written = {
            a.sha256 for a in self.actions if isinstance(a, WriteSidecar) and a.store_id == LIBRARY
        }
        for lf in lost:
            sha = lf.original_sha256
            if sha in self.handled or sha in written:
                continue  # two rows of one content; a sidecar written anew
            self.handled.add(sha)
            subject = f"{LIBRARY}:{lf.path}"
            is_sidecar = lf.role == SIDECAR_ROLE
            if sha not in sizes and lf.sha256 in sizes:
                self._put_back_encode(lf, sizes[lf.sha256])
                continue
            if sha not in sizes:
                if not is_sidecar:  # (a sidecar rewritten since is on no target as it was)
                    self._gone_nowhere(subject, lf)
                continue
            f, item = self._library_item(lf, sizes[sha])
            put = CopyToLibrary(
                id=f"library:{sha}",
                subject=subject,
                reason=f"{DAMAGED}; its good version put back beside it from a target's copy"
                if lf.path in damaged
                else "gone from the library; put back from a target's copy",
                sha256=sha,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
                role=f.role,
                path=lf.path,
            )
            self.actions.append(put)
            if not is_sidecar:
                self._targets(sha, None, sha, f, item, subject, ())
                self._encode(sha, None, sha, f, item, subject, (put.id,))

    def _put_back_encode(self, lf: LibraryFile, size: int) -> None:
        """The library's encode of an original no target holds, gone from
        the library: its copy archived in the original's place (tagged
        ``.encoded`` on the targets: ``_in_place_of_original``) is put back
        where it was, the best of the photo left. It is never encoded again
        (observe gives it back its row, made from that original); its
        original stays ``x lost`` (``_encode``: ``missing``) once back."""
        f, item = self._library_item(lf, size)
        self.actions.append(
            CopyToLibrary(
                id=f"library:{lf.sha256}",
                subject=f"{LIBRARY}:{lf.path}",
                reason="gone from the library, its original on no store; its encode put back "
                "from a target's copy",
                sha256=lf.sha256,
                name=f.name,
                size=size,
                captured_at=item.captured_at,
                role=f.role,
                path=lf.path,
            )
        )

    def _damaged(self, lf: LibraryFile) -> None:
        """A library file whose bytes changed with nothing of its stat moved:
        most likely damaged in place, but an edit made through a memory
        mapping moves no time stamp either (a page written again while still
        dirty). The tool cannot tell, and destroys no bytes: these are kept
        and archived as a file of their own (never encoded), and the
        version from before is put back beside them (``_lost_library_files``,
        or said lost if no target holds it). Said on every run while the
        file is there, for the person to keep the one they want."""
        if lf.original_sha256 not in self.handled:
            self._library_file(lf)
        self._note(
            "skipped",
            f"{LIBRARY}:{lf.path}",
            f"{DAMAGED}: kept as it is and archived, never encoded; the version from before "
            "is put back beside it from a target's copy; delete the one you do not want",
        )

    def _gone_nowhere(self, subject: str, lf: LibraryFile) -> None:
        """A library file gone that no target read this run holds: waiting
        while something may still hold it (``_unsure``: a target not read, a
        phone's copy with none left here, a source file not downloaded or
        hashed yet, which would place it again); else lost, which only a
        person can mend (a backup of their own), and said as an error."""
        if not self._unsure(lf.original_sha256, lf.sha256):
            why = (
                "gone from the library, and no target holds it any more; "
                "nothing here can put it back"
            )
            self._note("lost", subject, why)
        else:
            why = "gone from the library; put back once a target holding it is available"
            self._note("waiting", subject, why)

    def _library_sidecar(self, lf: LibraryFile) -> None:
        """The sidecar of an item that lives only in the library, on a target
        that lacks it (deleted there, a disk replaced): written there again,
        from the library's, beside the item's original. The applier writes it
        where the item's sidecar is (one per item and store, an older one
        rewritten in place), and never over another program's file or
        another item's sidecar. A conduit is left out (observe's
        ``_sidecars_missing``); an item still in a source has its sidecar
        planned from there (``_sidecar``)."""
        owner = self.world.library_sidecars.get(lf.sha256)
        if owner is None:
            return  # on every target (or it names no file of its item)
        if not self._named_as_sidecar(lf, owner):
            # The item's sidecar as copied by the person under a name the
            # tool never writes (darktable's duplicate IMG_0001.JPG_01.xmp,
            # a copy edited to try a caption): their file, archived as any,
            # under its own name. Written as the item's sidecar, it would
            # take turns with the item's own on every target, for ever.
            self._library_file(lf)
            return
        whose = (owner.source_id, owner.item_key)
        if whose in self.listed:
            return
        self.listed.add(whose)  # a second sidecar of the item in the library is not copied
        plain, tagged = sidecar.owner_names(owner, "")
        name = tagged if lf.path.endswith(tagged[len(owner.original_name) :]) else plain
        original = owner.original_sha256
        for t in self.targets:
            tid = t.target_id
            if t.role == "conduit" or self._holds(tid, lf.sha256):
                continue
            placing = self.copy_actions.get(original, {}).get(tid)
            if placing is None and not self._holds(tid, original):
                continue  # nothing to sit beside there
            self.actions.append(
                WriteSidecar(
                    id=f"sidecar:{tid}:{owner.source_id}:{owner.item_key}",
                    subject=f"{tid}:{name}",
                    reason="sidecar missing or out of date (its item lives only in the library)",
                    depends_on=(placing,) if placing else (),
                    store_id=tid,
                    source_id=owner.source_id,
                    item_key=owner.item_key,
                    sha256=lf.sha256,
                    name=name,
                )
            )

    def _named_as_sidecar(self, lf: LibraryFile, owner: SidecarOwner) -> bool:
        """Is the library file ``lf``, which reads as the item's sidecar, at
        a name the tool gives that sidecar (plain or tagged): beside its
        original as the item names it, or as the library names it now (the
        two renamed by the person's program)?"""
        names = set(sidecar.owner_names(owner, ""))
        kept = self.library.get(owner.original_sha256)
        if kept is not None:
            now = owner._replace(original_name=posixpath.basename(kept.path))
            names.update(sidecar.owner_names(now, ""))
        return posixpath.basename(lf.path) in names

    def _unconfirmed(self, sha: str, subject: str) -> None:
        """Say so where a live phone does not hold an item that lives only in
        the library now: its copy there is on its way, or was changed or lost
        on the phone, and does not count (nothing else would speak of it: no
        removal waits on it)."""
        for t in self.targets:
            if t.alive and sha in self.pending[t.target_id]:
                self._note(
                    "waiting",
                    subject,
                    f"{t.target_id} has not confirmed its copy this run (still on its way, "
                    "or changed or lost on the device); it does not count",
                )
