"""The Pixel phone as a backup target: a Syncthing-shared folder plus REST checks.

Writing a file into the shared folder only *delivers* it; the phone holds it
once Syncthing on this machine says so, file by file (``confirm``). Until
then the copy is waiting, not failed: the phone may simply be offline, and
the next run asks again.

No copy counts before the phone proved, this run, that it receives files
(``prove_alive``: a canary round trip, see ``liveness``). A delivery never
lands on a path Syncthing knows from before (the phone may hold other content
there); freeing a staging copy first makes its path ignored here, so the
phone keeps its copy whatever its folder settings (see ``ignores``), and a
freed copy counts only while the phone still announces the same version.

Temporary files are written under ``.reconcile-tmp/`` inside the shared
folder (same filesystem, so the final rename is atomic) and that directory is
listed in the folder's ``.stignore`` so Syncthing never sends a half-written
file.
"""

from __future__ import annotations

import attrs

from providers.syncthing.folder import SyncthingStatus
from providers.syncthing.freeing import Freer

__all__ = ["SyncthingStatus", "SyncthingTarget"]


@attrs.define(kw_only=True)
class SyncthingTarget(Freer):
    """A Store whose copies are confirmed by the phone through Syncthing.

    Holds an HTTP session: call ``close()`` (or use it as a context manager).
    One instance serves one run: the liveness proof it makes is this run's.

    Its parts: ``folder`` (the folder, liveness, Syncthing's view),
    ``deliveries``, ``confirmations``, ``freeing``.
    """
