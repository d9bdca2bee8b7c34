"""One source item, file by file: its original into the library, a verified
copy on every target, the library file encoded for its tier, its sidecar
written beside each copy; then its removal (``removal``)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from reconciler import sidecar
from reconciler.layout import dated_path, extension, pairing_stem
from reconciler.media import media_kind
from reconciler.media.kinds import STILL_EXTENSIONS
from reconciler.model import (
    ORIGINAL_ROLE,
    ORIGINAL_TIER,
    SIDECAR_ROLE,
    CopyToLibrary,
    CopyToTarget,
    DownloadAsset,
    EncodeForTier,
    FileOrigin,
    LibraryFile,
    MediaFile,
    SourceItem,
    SourceState,
    WriteSidecar,
)
from reconciler.plan.context import CANNOT_ENCODE, LIBRARY, PlannedSidecar
from reconciler.plan.removal import RemovalPlanner
from reconciler.plan.tiers import encoding_for, lighter_tier, tier_for


class ItemPlanner(RemovalPlanner):
    """The actions of one source item."""

    def _item(self, source: SourceState, item: SourceItem) -> None:
        self.listed.add((source.source_id, item.key))
        subject = self._subject(source, item)
        unreadable = [f for f in item.files if f.problem]
        for f in unreadable:
            self._note("unreadable", subject, f"{f.problem}; the item stays; the next run retries")
        shas: list[str | None] = []
        for f in item.files:
            shas.append(None if f.problem else self._file(source, item, f, subject))
        sidecar = self._sidecar(source, item, shas, subject)
        if not unreadable:
            self._removal(source, item, shas, subject, sidecar)

    def _subject(self, source: SourceState, item: SourceItem) -> str:
        """How the item is named in the plan. A folder's relative path tells
        same-named files apart; a remote source's key (asset ids) would tell
        a person nothing."""
        label = item.files[0].name if source.remote or not item.files else item.key
        if source.remote and item.files:
            label = self._named(source, item, label)
        return f"{source.source_id}:{label}"

    def _named(self, source: SourceState, item: SourceItem, name: str) -> str:
        """A remote item's file name, made unmistakable where another item of
        the source has a file of that name (two IMG_0002.JPG): its capture
        date and a short id of its key."""
        shared = self.shared_names.get(source.source_id)
        if shared is None:
            seen: dict[str, str] = {}
            shared = self.shared_names[source.source_id] = set()
            for other in source.items:
                for f in other.files:
                    if seen.setdefault(f.name, other.key) != other.key:
                        shared.add(f.name)
        if name not in shared:
            return name
        day = f"{item.captured_at:%Y-%m-%d}" if item.captured_at else "date unknown"
        return f"{name} ({day}, #{hashlib.sha256(item.key.encode()).hexdigest()[:8]})"

    def _file(
        self, source: SourceState, item: SourceItem, f: MediaFile, subject: str
    ) -> str | None:
        sha = f.sha256 or self.world.known_sha256.get((source.source_id, item.key, f.ref))
        # Where the file comes from matters only while its hash is unknown:
        # made then only (not once per file of a converged library).
        origin: FileOrigin | None = None
        ident = sha or f"{source.source_id}:{item.key}:{f.ref}"
        if ident in self.handled:
            return sha  # the same content again (a duplicate): already planned
        self.handled.add(ident)
        protector = self._protector(sha, f)
        if protector is not None:
            # These bytes are also another file never to be encoded (a Live
            # Photo's video, an edit): planned once, as that file, whichever
            # item is listed first, so the library keeps them as they are,
            # placed where that item's other files are (beside its still).
            source, item, f = protector
            subject = self._subject(source, item)
        flabel = self._named(source, item, f.name) if source.remote else f.ref
        fsubject = f"{source.source_id}:{flabel}" if len(item.files) > 1 else subject
        f = self._kept_as(sha, f, item)
        if sha is not None and sha not in self.library:
            kept = self._rendition(sha)
            if kept is not None:
                self._brought_back(sha, f, item, fsubject, kept)
                return sha
        placed: tuple[str, ...] = ()
        if not self.world.library.available:
            if sha is None:
                return None
        elif sha is None:
            origin = FileOrigin(source_id=source.source_id, item_key=item.key, ref=f.ref)
            dl = DownloadAsset(
                id=f"download:{ident}",
                subject=fsubject,
                reason="not downloaded yet",
                origin=origin,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
            )
            self.actions.append(dl)
            placed = (dl.id,)
        elif sha not in self.library:
            lib = CopyToLibrary(
                id=f"library:{sha}",
                subject=fsubject,
                reason="not in the library",
                sha256=sha,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
                role=f.role,
            )
            self.actions.append(lib)
            placed = (lib.id,)
        if placed:
            self.placing[ident] = placed[0]
        self._targets(sha, origin, ident, f, item, fsubject, placed)
        if self.world.library.available:
            self._encode(sha, origin, ident, f, item, fsubject, placed)
        return sha

    def _protector(
        self, sha: str | None, f: MediaFile
    ) -> tuple[SourceState, SourceItem, MediaFile] | None:
        """The file that decides how this original's content is planned,
        when another item holds the same bytes as something never encoded:
        a Live Photo's video also copied out alone as a clip, an edit saved
        again as a photo of its own. Planned as an original (whichever item
        is listed first decides), its encode would drop what pairs the video
        with its still, or compress what the person made. None: planned as
        it is (the usual case: the index is one look-up)."""
        if sha is None or f.role != ORIGINAL_ROLE:
            return None  # never encoded itself; or content not known yet (no other holder)
        if self.protectors is None:
            self.protectors = self._protectors()
        return self.protectors.get(sha)

    def _protectors(self) -> dict[str, tuple[SourceState, SourceItem, MediaFile]]:
        """Every source file of known content held as something never
        encoded, the first listed per SHA-256, of the items this run plans.
        One pass over the files, keeping only those (an original is skipped
        at the first test). Content not known yet needs no entry: its
        identity is its own file's, which no other file shares."""
        found: dict[str, tuple[SourceState, SourceItem, MediaFile]] = {}
        known = self.world.known_sha256
        for source in self.world.sources:
            oldest = self._oldest(source)
            for item in source.items:
                for f in item.files:
                    if f.role == ORIGINAL_ROLE or f.problem:
                        continue
                    sha = f.sha256 or known.get((source.source_id, item.key, f.ref))
                    if sha is None or sha in found or not self._planned(source, item, oldest):
                        continue
                    found[sha] = (source, item, f)
        return found

    def _planned(self, source: SourceState, item: SourceItem, oldest: datetime | None) -> bool:
        """Is this item planned from its source this run (as ``plan``'s
        ``run`` decides): within the source's ``max_age_days`` (``oldest``),
        and not an item the tool already removed, listed again?"""
        if oldest is not None and item.captured_at is not None and item.captured_at < oldest:
            return False  # older than the source's max_age_days: not ours to handle
        return not self._removed_before(source, item)

    def _rendition(self, sha: str) -> LibraryFile | None:
        """The library file these bytes were made for by encoding: its
        current bytes, or an earlier encoding of it (made for a tier the
        item has since left, remembered by the state DB). Asked only of
        content not in the library as an original, so a converged run builds
        nothing. An earlier encoding whose original the library no longer
        holds is left to be an original: nothing else keeps that item."""
        if self.renditions is None:
            self.renditions = {
                lf.sha256: lf for lf in self.world.library.files if lf.sha256 != lf.original_sha256
            }
        kept = self.renditions.get(sha)
        if kept is None and sha in self.world.renditions:
            kept = self.library.get(self.world.renditions[sha])
        return kept

    def _brought_back(
        self, sha: str, f: MediaFile, item: SourceItem, subject: str, kept: LibraryFile
    ) -> None:
        """A library file made by encoding, found in a source again (a person
        re-importing from the library, a phone that synced it), or an
        earlier encoding of it (a copy made while the item was in a lighter
        tier): it is that library file's content, not a new original.
        Copying it into the library would land on the very file it came
        from (the same bytes at the same name) and make it an original
        there, or beside it as a second original of one photo; encoding it
        would compress it twice, and race the encode of its true original
        onto one library file. So it goes nowhere in the library, is never
        encoded, and is archived as it is (its item leaves the source only
        once its own bytes have their copies). Its original lives on as the
        library's item, planned from the library."""
        earlier = kept.sha256 != sha
        what = "an earlier encoding of the library's own" if earlier else "the library's own"
        tier = f"now tier {kept.tier}" if earlier else f"tier {kept.tier}"
        self._note(
            "skipped",
            subject,
            f"{what} {kept.path} ({tier}, made from original {kept.original_sha256[:10]}): "
            "archived as it is, never compressed twice",
        )
        self._targets(sha, None, sha, f, item, subject, ())

    def _targets(
        self,
        sha: str | None,
        origin: FileOrigin | None,
        ident: str,
        f: MediaFile,
        item: SourceItem,
        subject: str,
        placed: tuple[str, ...],
    ) -> None:
        for t in self.targets:
            if sha is not None and (
                sha in self.copies[t.target_id] or sha in self.pending[t.target_id]
            ):
                continue
            if sha is None and self._named_like(t.target_id, item, f):
                # A file of this name, size and date is there already (an
                # archive made by another tool): this run's download proves
                # it by hash, and only a mismatch is copied, next run.
                continue
            if sha is None and not placed:
                continue  # cannot be fetched this run (library unavailable)
            if sha is not None and not placed and not self._original_here(sha):
                self._original_missing(sha, subject)
                return  # (no other target either: nothing reads those bytes)
            if t.role == "conduit" and not self._conduit_takes(t, sha, f.size):
                continue
            action = CopyToTarget(
                id=f"copy:{t.target_id}:{ident}",
                subject=subject,
                reason=f"no verified copy on {t.target_id}",
                depends_on=placed if sha is None else (),
                target_id=t.target_id,
                sha256=sha,
                origin=origin,
                name=f.name,
                size=f.size,
                captured_at=item.captured_at,
            )
            self.actions.append(action)
            # Made only when a copy is planned: a converged library of 100k
            # files would otherwise keep an empty dict per file.
            self.copy_actions.setdefault(ident, {})[t.target_id] = action.id

    def _encode(
        self,
        sha: str | None,
        origin: FileOrigin | None,
        ident: str,
        f: MediaFile,
        item: SourceItem,
        subject: str,
        placed: tuple[str, ...],
    ) -> None:
        tier = tier_for(self.desired.policy.tiers, item.captured_at, self.now)
        # Only originals are encoded (``_kept_as`` says what a source's file
        # is to the library). A Live Photo's video stays as it is
        # (re-encoding drops the timed metadata track that pairs it with its
        # still); a rendered edit is what the person made, a RAW alternative
        # and an edit's adjustment data are not pictures to compress. One
        # the library holds encoded (a video taken for a clip before its
        # still came) is put back as its original.
        want = encoding_for(tier if f.role == ORIGINAL_ROLE else None, f.name)
        current = self.library[sha].tier if sha in self.library else ORIGINAL_TIER
        if want.tier == current:
            return
        settled = self.world.settled.get((sha, want.tier)) if sha else None
        if (
            settled is not None
            and not settled.startswith(CANNOT_ENCODE)
            and lighter_tier(self.desired.policy.tiers, want.tier, current)
        ):
            # "Not worth it" for a lighter tier, while the library holds a
            # heavier tier's encode: that verdict weighed an encode against
            # some other file (the original at import, or, by an earlier
            # version, this compressed one); the photo must not stay at the
            # heavier quality for good. The applier weighs it against the
            # original, and brings the original back if it is not worth it.
            settled = None
        if settled is not None:
            if settled.startswith(CANNOT_ENCODE):
                self._note("error", subject, f"{settled}; the library keeps the file as it is")
            return
        if item.captured_at is not None:
            years = (self.now - item.captured_at) / timedelta(days=365.25)
            age = f"captured {item.captured_at:%Y-%m-%d}, {years:.1f} years ago"
        else:
            age = "capture date unknown"
        if sha is not None and not placed and not self._original_here(sha):
            # Any encode, to a lighter tier or back to a heavier one (a Live
            # Photo's video put back as it was, a tier now kept "original",
            # its quality raised), is made from the original, never from the
            # library's compressed file.
            self._original_missing(sha, subject)
            return
        setting = (
            f"quality {want.quality}"
            if want.quality
            else f"crf {want.crf}"
            if want.crf
            else "original"
        )
        self.actions.append(
            EncodeForTier(
                id=f"encode:{ident}",
                subject=subject,
                reason=f"tier {want.tier} ({setting}), library has {current}",
                detail=age,
                depends_on=placed,
                sha256=sha,
                origin=origin,
                name=f.name,
                tier=want.tier,
                quality=want.quality,
                crf=want.crf,
            )
        )

    def _kept_as(self, sha: str | None, f: MediaFile, item: SourceItem) -> MediaFile:
        """A source's original as the library keeps it: content the library
        knows as something else of an item (another item's rendered edit: a
        duplicate) is kept as that, as it is (encoding it would compress
        that item's edit too); a video alone that is a Live Photo's
        (``_live_at``: its still came in another run, or the folder could
        not tell which of its stills it goes with) is placed and kept as
        one, never encoded. Asked where the library has or will have it."""
        if f.role != ORIGINAL_ROLE:
            return f
        kept = self.library.get(sha) if sha is not None else None
        if kept is not None and kept.role not in ("", ORIGINAL_ROLE, SIDECAR_ROLE):
            return f._replace(role=kept.role)
        if media_kind(f.name) != "video" or not self.world.library.available:
            return f  # (nothing placed nor encoded this run)
        if kept is not None:
            live = self._live_at(kept.path, kept.original_sha256)
        else:
            live = self._live_at(dated_path(item.captured_at, f.name), sha or "")
        return f._replace(role="live_video") if live else f

    def _sidecar(
        self, source: SourceState, item: SourceItem, shas: list[str | None], subject: str
    ) -> PlannedSidecar | None:
        """The item's XMP sidecar, wanted beside its original in the library
        and on every available target: WriteSidecar where the current one
        (by digest) is missing. Its content needs every file's hash; while one
        is learned this run, the writes depend on those downloads."""
        if item.metadata is None or not self.world.library.available:
            return None
        name = sidecar.name_for(item)
        # Two items beside one original (a duplicate sharing it, or the same
        # file imported twice, each dated its own way) must not take turns
        # rewriting one sidecar: each store keeps the original once, so the
        # claim is by its content (iCloud's fingerprint: known before the
        # download), not by a dated path. The first listed keeps the plain
        # name, the others say whose they are. The applier has the last word:
        # it never replaces another item's sidecar (one already removed
        # included), and writes this one under the item's other name then.
        first, whose = item.files[0], f"{source.source_id}:{item.key}"
        claim = f"fp:{first.size}:{first.fingerprint}" if first.fingerprint else shas[0] or whose
        if self.sidecar_claims.setdefault(claim, whose) != whose:
            name = sidecar.name_for(item, unique=True)
        known = {f.ref: sha for f, sha in zip(item.files, shas, strict=True) if sha}
        wanted = sidecar.digest(item, known) if len(known) == len(item.files) else None
        idents = [
            sha or f"{source.source_id}:{item.key}:{f.ref}"
            for f, sha in zip(item.files, shas, strict=True)
        ]
        # Rendering needs every hash: wait for the downloads that learn them.
        learning = {
            self.placing[i]
            for i, sha in zip(idents, shas, strict=True)
            if not sha and i in self.placing
        }
        out = PlannedSidecar(digest=wanted, name=name)
        conduits = {t.target_id: t for t in self.targets if t.role == "conduit"}
        for store_id in [LIBRARY, *(t.target_id for t in self.targets)]:
            if wanted is not None and self._holds(store_id, wanted):
                continue
            conduit = conduits.get(store_id)
            if conduit is not None and not self._conduit_wants_sidecar(
                conduit, wanted, idents, shas
            ):
                continue
            if store_id == LIBRARY:
                placing = self.placing.get(idents[0])
            else:
                placing = self.copy_actions.get(idents[0], {}).get(store_id)
            deps = tuple(sorted(learning | ({placing} if placing else set())))
            action = WriteSidecar(
                id=f"sidecar:{store_id}:{source.source_id}:{item.key}",
                subject=f"{store_id}:{name}",
                reason="metadata not written yet"
                if wanted is None
                else "sidecar missing or out of date",
                depends_on=deps,
                store_id=store_id,
                source_id=source.source_id,
                item_key=item.key,
                sha256=wanted,
                name=name,
            )
            self.actions.append(action)
            out.planned[store_id] = action.id
        return out

    def _is_live_video(self, lf: LibraryFile) -> bool:
        """Is this library video a Live Photo's video? (``_live_at``)"""
        return self._live_at(lf.path, lf.original_sha256)

    def _live_at(self, path: str, sha: str) -> bool:
        """Is the video of original ``sha`` at library ``path`` (where it is,
        or where it goes) a Live Photo's? It is never encoded: that drops the
        timed metadata track pairing it with its still. While its item is in
        a source, the source says so; once the item left, the tool's record
        of removing it does (a video removed with a still in one item,
        whatever its name), and otherwise a still of the same name
        (``pairing_stem``: case and collision tags aside) in the same
        library folder, there already or placed there this run. A video
        removed alone is no clip for that: a phone syncing the video a day
        after its still, or before it, a lost state DB, a run killed between
        the two removals, all leave the pair apart in the sources and
        together in the library."""
        if self.live is None:
            self.live = self._live_index()
        removed_with_still, stems = self.live
        return sha in removed_with_still or pairing_stem(path, sha) in stems

    def _live_index(self) -> tuple[set[str], set[str]]:
        """Made on first need (most runs have no video to ask about): the
        clips a removal took out with a still, and the pairing stems of the
        stills the library holds (gone ones too: put back where they were)
        and of those this run places there, where ``dated_path`` puts them
        (a collision's tag is set aside anyway)."""
        clips: set[str] = set()
        stills: set[str] = set()
        stems: set[str] = set()
        for lf in (*self.world.library.files, *self.world.library.lost):
            if media_kind(lf.path) == "video":
                clips.add(lf.original_sha256)
            elif extension(lf.path).lower() in STILL_EXTENSIONS:
                stills.add(lf.original_sha256)
                stems.add(pairing_stem(lf.path, lf.original_sha256))
        known = self.world.known_sha256
        for source in self.world.sources:
            oldest = self._oldest(source)
            for item in source.items:
                if not self._planned(source, item, oldest):
                    continue  # not placed this run
                for f in item.files:
                    sha = f.sha256 or known.get((source.source_id, item.key, f.ref))
                    if sha not in stills and extension(f.name).lower() in STILL_EXTENSIONS:
                        stems.add(pairing_stem(dated_path(item.captured_at, f.name)))
        removed_with_still: set[str] = set()
        for shas in self.world.tombstones.values():
            # (an item's tombstone also holds its sidecar's digest: not a still)
            if len(shas) > 1 and not shas.isdisjoint(stills):
                removed_with_still |= shas & clips
        return removed_with_still, stems
