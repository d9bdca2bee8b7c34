"""An item's XMP sidecar written beside each of its copies (WriteSidecar)."""

from __future__ import annotations

import hashlib

from providers.base import Store
from reconciler import rows, sidecar
from reconciler.apply.copies import Copier
from reconciler.apply.outcomes import Effects, Skip
from reconciler.errors import ForeignFileError, ProviderError
from reconciler.gate import item_shas
from reconciler.hashing import read_file
from reconciler.layout import dated_path
from reconciler.model import SIDECAR_ROLE, FileCopy, SidecarOwner, WriteSidecar
from reconciler.plan import LIBRARY


class SidecarWriter(Copier):
    """WriteSidecar."""

    def _write_sidecar(self, a: WriteSidecar) -> tuple[str, str, Effects]:
        item = self.items.get((a.source_id, a.item_key))
        owner: SidecarOwner
        if item is not None:
            shas = item_shas(a.source_id, item, self.known)
            if shas is None:
                raise Skip("skipped", "a file of the item was not downloaded; the sidecar waits")
            data = sidecar.render(item, shas)
            first = item.files[0]
            owner = SidecarOwner(item.source_id, item.key, shas[first.ref], first.name)
            captured_at = item.captured_at
        else:
            # An item that lives only in the library now: its sidecar there is
            # the only record of its metadata, copied as it is to a target
            # that lost its own (the planner's ``_library_sidecar``), once
            # the bytes read are those planned and still say whose they are.
            kept = self.library.get(a.sha256 or "") if a.store_id != LIBRARY else None
            path = self.conn.library.local_path(kept.path) if kept is not None else None
            if path is None:
                raise Skip("skipped", "the library no longer holds the item's sidecar")
            data = read_file(path, sidecar.MAX_BYTES)
            found = sidecar.parse(data) if hashlib.sha256(data).hexdigest() == a.sha256 else None
            named = sidecar.owner_of(found) if found is not None else None
            if named is None or (named.source_id, named.item_key) != (a.source_id, a.item_key):
                raise Skip("skipped", f"{path} changed since it was observed; next run")
            owner = named
            lib = self.library.get(owner.original_sha256)
            captured_at = lib.captured_at if lib is not None else None
        digest = hashlib.sha256(data).hexdigest()
        original = owner.original_sha256
        fallback = dated_path(captured_at, owner.original_name)
        store: Store
        if a.store_id == LIBRARY:
            if digest in self.library:
                return "ok", f"already at {self.library[digest].path}", Effects()
            store = self.conn.library
            lib = self.library.get(original)
            base = lib.path if lib is not None else fallback
        else:
            held = self.copies.get(a.store_id, {})
            if digest in held:
                return "ok", f"already on {a.store_id} at {held[digest].path}", Effects()
            store = self.conn.targets[a.store_id]
            avail = store.availability()
            if not avail.available:
                raise Skip("skipped", f"{a.store_id} unavailable: {avail.reason}")
            copy = held.get(original)
            base = (
                copy.path
                if copy is not None
                else self.delivered.get((a.store_id, original), fallback)
            )
        mtime = rows.mtime_ns(captured_at)
        cut = len(owner.original_name)

        def put(name: str) -> tuple[str, FileCopy]:
            rel = base + name[cut:]  # ".xmp", or ".<item>.xmp"
            return rel, self._retry(
                f"write {a.subject}",
                a.store_id,
                lambda: store.put_sidecar(rel, data, mtime_ns=mtime),
            )

        # The planned name first, then the item's other one: another
        # program's .xmp (darktable's, archived from a folder), another
        # item's sidecar beside the same original (a duplicate, the same file
        # imported twice, perhaps already removed), or this item's as the
        # person edited it there (a keyword added with digiKam on the NAS),
        # stays where it is, and this item's goes under its other name; the
        # gate finds it by digest.
        # Where this item's sidecar already is, it is rewritten there: one
        # sidecar per item and store, never a stale second one.
        names = sidecar.owner_names(owner, a.name)
        if self._sidecar_of(store, base + names[1][cut:], owner):
            names = names[::-1]
        try:
            rel, written = put(names[0])
        except ForeignFileError:
            rel, written = put(names[1])
        if a.store_id == LIBRARY:
            # Recorded as the item's sidecar now, not learned by the next
            # run's read of it: lost before then (deleted, its day folder
            # with it), a row without a role would be taken for another
            # program's .xmp, forgotten, and the sidecar never put back.
            row = rows.original_row(written, captured_at, role=SIDECAR_ROLE)
            return "changed", f"wrote {rel}", Effects(lineage=[row])
        return "changed", f"wrote {a.store_id}:{rel}", Effects(target_copies=[written])

    @staticmethod
    def _sidecar_of(store: Store, rel: str, owner: SidecarOwner) -> bool:
        """Does ``rel`` on the store hold a sidecar of this very item? Read
        only when a sidecar is written, never on a converged run."""
        try:
            path = store.local_path(rel)
            data = read_file(path, sidecar.MAX_BYTES) if path is not None else b""
        except (OSError, ProviderError):
            return False
        return sidecar.owner(data) == (owner.source_id, owner.item_key)
