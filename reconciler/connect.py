"""Turn the configuration into provider objects (and secrets from the env).

The only module that knows which class serves which ``kind``. Providers are
built lazily so ``reconcile validate`` and a plan over folders never import
pyicloud or talk to Syncthing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from providers.base import Availability, Hasher, Source, Store
from providers.filesystem import FilesystemStore
from providers.folder import FolderSource
from reconciler import config
from reconciler.errors import ConfigError, ProviderError
from reconciler.model import FileCopy

LIBRARY_ID = "library"


@attrs.define
class Connected:
    """Providers for one run: sources, backup targets and the library."""

    sources: dict[str, Source]
    targets: dict[str, Store]
    library: FilesystemStore

    def in_order(self) -> tuple[Source | Store | FilesystemStore, ...]:
        """The sources, the library, then the targets: the order a run
        observes them in (and walks their trees)."""
        return (*self.sources.values(), self.library, *self.targets.values())

    def close(self) -> None:
        """Release sessions and connections (pyicloud's, Syncthing's)."""
        for provider in [*self.sources.values(), *self.targets.values(), self.library]:
            close = getattr(provider, "close", None)
            if callable(close):
                close()


MISSING_API_KEY = "SYNCTHING_API_KEY is not set in the environment; export it"


@attrs.define(kw_only=True)
class UnavailableStore:
    """A target that cannot be used this run (its credentials are missing):
    observed as unavailable with the reason; nothing is read or written."""

    id: str
    kind: str
    reason: str

    def availability(self) -> Availability:
        return Availability(available=False, reason=self.reason)

    def _refuse(self) -> ProviderError:
        return ProviderError(self.reason, provider=self.id)

    def list_copies(self, hasher: Hasher) -> Iterator[FileCopy]:
        raise self._refuse()

    def put(
        self, src: Path, rel_path: str, sha256: str, *, mtime_ns: int | None = None
    ) -> FileCopy:
        raise self._refuse()

    def put_sidecar(self, rel_path: str, data: bytes, *, mtime_ns: int | None = None) -> FileCopy:
        raise self._refuse()

    def verify(self, copy: FileCopy) -> bool:
        return False

    def local_path(self, rel_path: str) -> Path | None:
        return None

    def read_to(self, copy: FileCopy, dest: Path) -> None:
        raise self._refuse()


def connect(desired: config.DesiredState, env: Mapping[str, str] | None = None) -> Connected:
    env = os.environ if env is None else env
    sources = {sid: _source(sid, cfg, desired, env) for sid, cfg in desired.sources.items()}
    targets = {tid: connect_target(tid, cfg, env) for tid, cfg in desired.targets.items()}
    library = FilesystemStore(LIBRARY_ID, desired.library_path)
    return Connected(sources=sources, targets=targets, library=library)


def _source(
    sid: str, cfg: config.SourceConfig, desired: config.DesiredState, env: Mapping[str, str]
) -> Source:
    if isinstance(cfg, config.FolderSource):
        return FolderSource(sid, Path(cfg.path), removable=cfg.remove_after_archive)
    from providers.icloud.source import ICloudSource
    from providers.icloud.transport import endpoint_problem

    problem = endpoint_problem(cfg.endpoint) if cfg.endpoint else None
    if problem is not None:
        raise ConfigError([f"sources.{sid}.endpoint: {problem}"])
    username = env.get("ICLOUD_USERNAME", "")
    if not username:
        raise ConfigError([f"sources.{sid}: set ICLOUD_USERNAME in the environment"])
    source: Source = ICloudSource(
        source_id=sid,
        username=username,
        password=env.get("ICLOUD_PASSWORD") or None,
        session_dir=icloud_session_dir(desired),
        endpoint=cfg.endpoint or None,
        include_shared=cfg.include_shared,
        timeouts=(10.0, cfg.timeout_s),
        staging_album=cfg.staging_album or None,
        full_listing_every_days=cfg.full_listing_every_days,
    )
    return source


def icloud_session_dir(desired: config.DesiredState) -> Path:
    return desired.state_dir / "icloud-session"


def connect_target(tid: str, cfg: config.TargetConfig, env: Mapping[str, str]) -> Store:
    if isinstance(cfg, config.FilesystemTarget):
        return FilesystemStore(tid, Path(cfg.path), backup=True)
    from providers.syncthing.target import SyncthingTarget

    api_key = env.get("SYNCTHING_API_KEY", "")
    if not api_key:
        # Like Syncthing being down: this target is unavailable, the rest runs.
        return UnavailableStore(
            id=tid,
            kind="syncthing",
            reason=f"{MISSING_API_KEY} (Syncthing: Settings > General > API Key)",
        )
    return SyncthingTarget(
        id=tid,
        folder_path=Path(cfg.path),
        folder_id=cfg.folder_id,
        device_id=cfg.device_id,
        url=cfg.url,
        api_key=api_key,
        liveness_timeout=cfg.liveness_timeout_s,
    )
