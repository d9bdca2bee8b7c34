"""Signing in to iCloud: unattended (never prompts) and interactive (2FA).

pyicloud keeps ``<account>.session`` (tokens) and ``<account>.cookiejar`` in
the session directory and rewrites them on every request. They are
credentials: the directory is 0700 and the files 0600, created so before
pyicloud first writes them (it would create them world-readable). A marker
written after an interactive login records when the session was trusted, so
the CLI can warn before the ~30-day trust runs out.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyicloud import PyiCloudService
from pyicloud.exceptions import PyiCloudException
from requests import RequestException

from providers.icloud import transport
from providers.icloud.errors import classify, login_required
from reconciler.errors import LoginRequiredError, ProviderError
from reconciler.hashing import read_file

DEFAULT_TIMEOUTS: tuple[float, float] = (10.0, 60.0)
CODE_ATTEMPTS = 3
_LWP_HEADER = "#LWP-Cookies-2.0\n"
# The most of a session file ``session_age`` reads: pyicloud's tokens and our
# marker are a few KB; more is not a session this tool wrote.
_READ_LIMIT = 1 << 20


def session_stem(username: str) -> str:
    """pyicloud's file name stem for an account (its word characters)."""
    return "".join(c for c in username if re.match(r"\w", c))


def _marker(session_dir: Path, username: str) -> Path:
    return session_dir / f"{session_stem(username)}.reconcile-login.json"


def _session_files(session_dir: Path, username: str) -> tuple[Path, ...]:
    """Every file opened in the session directory by name: pyicloud's tokens
    and cookie jar (``PyiCloudSession.session_path`` / ``cookiejar_path``),
    and our login marker."""
    stem = session_stem(username)
    return (
        session_dir / f"{stem}.session",
        session_dir / f"{stem}.cookiejar",
        _marker(session_dir, username),
    )


def check_session_files(session_dir: Path, username: str, *, provider: str = "icloud") -> None:
    """ProviderError unless each session file is absent or a regular file.
    pyicloud opens them by name, blocking: a FIFO there would hold every run
    for ever, a device would be read without end."""
    for path in _session_files(session_dir, username):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ProviderError(
                f"cannot check the iCloud session file {path}: {e.strerror or e}",
                provider=provider,
            ) from e
        if not stat.S_ISREG(mode):
            raise ProviderError(
                f"the iCloud session file {path} is not a regular file (a pipe, device, "
                f"folder or link); remove it and run `reconcile login icloud` again",
                provider=provider,
            )


def prepare_session_dir(session_dir: Path, username: str) -> None:
    """Create the directory (0700) and the session files (0600) up front."""
    session_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(session_dir, 0o700)
    stem = session_stem(username)
    for name, empty in ((f"{stem}.session", "{}"), (f"{stem}.cookiejar", _LWP_HEADER)):
        path = session_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(empty)
        os.chmod(path, 0o600)


def open_service(
    username: str,
    password: str | None,
    session_dir: Path,
    *,
    endpoint: str | None = None,
    timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
    provider: str = "icloud",
) -> Any:
    """A PyiCloudService built without network I/O, its transport mounted;
    ProviderError when a session file is not a regular file."""
    check_session_files(session_dir, username, provider=provider)
    prepare_session_dir(session_dir, username)
    api = PyiCloudService(username, password, cookie_directory=str(session_dir), authenticate=False)
    transport.mount(api.session, endpoint=endpoint, timeout=timeouts)
    return api


def connect(
    provider: str,
    username: str,
    password: str | None,
    session_dir: Path,
    *,
    endpoint: str | None = None,
    timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
) -> Any:
    """Sign in without a person: reuse the trusted session, or raise
    LoginRequiredError. Never prompts, never waits for a code."""
    api = open_service(
        username, password, session_dir, endpoint=endpoint, timeouts=timeouts, provider=provider
    )
    try:
        api.authenticate()
    except (PyiCloudException, RequestException) as e:
        api.session.close()
        error = classify(e, provider=provider, subject="sign-in", username=username)
        if error.transient:
            # Apple is down or throttling: nothing a person can do; cron's next run retries.
            detail = str(error).removeprefix(f"{provider}: ")
            error = ProviderError(
                f"iCloud is unavailable, the next run retries ({detail})",
                provider=provider,
                transient=True,
                retry_after=error.retry_after,
            )
        raise error from e
    if api.requires_2fa or api.requires_2sa or not api.is_trusted_session:
        api.session.close()
        raise login_required(
            provider,
            username,
            "the trusted session has expired; two-factor authentication is required",
        )
    return api


def login_interactive(
    username: str,
    password: str | None,
    session_dir: Path | str,
    prompt_code: Callable[[str], str],
    endpoint: str | None = None,
    *,
    timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
) -> None:
    """Sign in with the password and, when Apple asks, a 2FA code from
    ``prompt_code(prompt)``; leaves a trusted session in ``session_dir``."""
    directory = Path(session_dir)
    api = open_service(username, password, directory, endpoint=endpoint, timeouts=timeouts)
    try:
        try:
            api.authenticate(force_refresh=True)
        except (PyiCloudException, RequestException) as e:
            error = classify(e, provider="icloud", subject="sign-in", username=username)
            if isinstance(error, LoginRequiredError):
                error = LoginRequiredError(
                    f"sign-in for {username} was refused: check the Apple ID and password",
                    provider="icloud",
                )
            raise error from e
        if api.requires_2fa:
            for attempt in range(CODE_ATTEMPTS):
                prompt = "Enter the code sent to your trusted devices: "
                if attempt:
                    prompt = "That code was not accepted; try again: "
                try:
                    accepted = api.validate_2fa_code(prompt_code(prompt).strip())
                except (PyiCloudException, RequestException) as e:
                    raise classify(e, provider="icloud", subject="2FA", username=username) from e
                if accepted:
                    break
            else:
                raise LoginRequiredError(
                    f"no valid 2FA code after {CODE_ATTEMPTS} tries", provider="icloud"
                )
        elif api.requires_2sa:
            raise ProviderError(
                "this Apple ID uses legacy two-step verification, which is not supported; "
                "upgrade it to two-factor authentication",
                provider="icloud",
            )
        if not api.is_trusted_session:
            raise LoginRequiredError(
                "Apple did not trust this session; try again", provider="icloud"
            )
    finally:
        api.session.close()
    prepare_session_dir(directory, username)
    marker = _marker(directory, username)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"trusted_at": datetime.now(UTC).isoformat()}, fh)


def session_age(
    session_dir: Path | str, username: str, *, now: datetime | None = None
) -> timedelta | None:
    """How long ago the session was trusted by ``login_interactive``; None
    when there is no trusted session to speak of (a session file that is not
    a regular file is none: ``connect`` says what to do about it)."""
    directory = Path(session_dir)
    try:
        tokens = json.loads(read_file(directory / f"{session_stem(username)}.session", _READ_LIMIT))
        stamp = json.loads(read_file(_marker(directory, username), _READ_LIMIT))["trusted_at"]
        trusted_at = datetime.fromisoformat(stamp)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(tokens, dict) or not tokens.get("trust_token"):
        return None
    return (now or datetime.now(UTC)) - trusted_at
