"""The error hierarchy: one root, a subclass per kind of failure.

The CLI maps each kind to an exit code (DESIGN.md); everything else lets them
propagate with a message that says what is wrong, where, and how to fix it.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """Root of every error this tool raises on purpose."""


class ConfigError(ReconcileError):
    """desired_state.toml is unreadable or invalid; carries every problem found."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class ProviderError(ReconcileError):
    """A provider (iCloud, a target, Syncthing…) failed.

    ``transient`` errors are retried with backoff; ``retry_after`` is the
    server's own hint in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(f"{provider}: {message}" if provider else message)


class LoginRequiredError(ProviderError):
    """A person must log in again (expired session, 2FA); exit code 3."""


class ForeignFileError(ProviderError):
    """A file this tool did not write stands where it would write one (another
    program's sidecar): it is kept as it is, and the caller may write under
    another name."""


class SourceChangedError(ProviderError):
    """The bytes read from ``path`` for a copy are not the ones its recorded
    hash names: the file changed since (edited in place with its size and
    mtime kept, or rotten). The caller forgets that hash and reads the
    original from its next holder (``Originals.distrust``)."""

    def __init__(self, message: str, *, provider: str = "", path: str = "") -> None:
        super().__init__(message, provider=provider)
        self.path = path


class InUseError(ProviderError):
    """A source's file may still be being written (another program has it
    open): it is not removed this run, and nothing failed."""


class ThrottledError(ProviderError):
    """The service asked us to slow down and retries ran out; the run ends cleanly."""


class StalePlanError(ReconcileError):
    """A saved plan no longer matches the configuration or the world."""


class StateError(ReconcileError):
    """The state database is unusable (corrupt, newer schema, unwritable)."""


class SafetyError(ReconcileError):
    """A safety gate refused an action (copies missing, budget, guard); exit code 3."""


class LockHeldError(ReconcileError):
    """Another run holds the state directory's lock; exit code 4."""


class MediaError(ReconcileError):
    """A file could not be decoded or encoded (corrupt, truncated, unsupported)."""
