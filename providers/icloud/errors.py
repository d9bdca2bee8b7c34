"""Classifying pyicloud / requests failures into the tool's errors.

By HTTP status and response body, never by message text: pyicloud rewrites
the message of 409, 421 and 500 answers, and wraps errors raised while the
Photos service starts (``PyiCloudServiceUnavailable`` from the real cause),
so the whole exception chain is searched for the status, the response and
CloudKit's per-record ``serverErrorCode``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any

import requests
from pyicloud.common.cloudkit.client import (
    CloudKitApiError,
    CloudKitAuthError,
    CloudKitRateLimited,
)
from pyicloud.exceptions import (
    PyiCloud2FARequiredException,
    PyiCloud2SARequiredException,
    PyiCloudAccountLockedException,
    PyiCloudAPIResponseException,
    PyiCloudAuthRequiredException,
    PyiCloudConnectionException,
    PyiCloudFailedLoginException,
)

from reconciler.errors import LoginRequiredError, ProviderError

LOGIN_HINT = "run `reconcile login icloud`"
ACCESS_DENIED_HELP = (
    "iCloud refused access to the Photos library (ACCESS_DENIED): Advanced Data "
    "Protection is on and web access to iCloud data is off. On your iPhone turn on "
    "Settings > Apple ID > iCloud > Access iCloud Data on the Web, then run again"
)
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: CloudKit's codes for "not now": of a whole answer, or of one record in an
#: HTTP 200 (INTERNAL_ERROR is what a 500 carries; per record, the same).
TRANSIENT_CODES = frozenset({"THROTTLED", "TRY_AGAIN_LATER", "ZONE_BUSY", "INTERNAL_ERROR"})
LOGIN_STATUSES = frozenset({401, 421})


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes / contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(exc: BaseException) -> int | None:
    """The first HTTP status found along the chain."""
    for link in chain(exc):
        code = getattr(link, "code", None)
        if isinstance(link, PyiCloudAPIResponseException) and isinstance(code, int):
            return code
        response = getattr(link, "response", None)
        if isinstance(response, requests.Response):
            return response.status_code
    return None


def _response(exc: BaseException) -> requests.Response | None:
    for link in chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, requests.Response):
            return response
    return None


def _body(response: requests.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        data = response.json()
    except (ValueError, RuntimeError):
        return {}
    return data if isinstance(data, dict) else {}


def server_error_codes(exc: BaseException) -> set[str]:
    """CloudKit's ``serverErrorCode`` values: of the response body, of each
    rejected record (a 200 answer to records/modify), or pyicloud's own code."""
    codes: set[str] = set()
    for link in chain(exc):
        code = getattr(link, "code", None)
        if isinstance(link, PyiCloudAPIResponseException) and isinstance(code, str):
            codes.add(code)
        if isinstance(link, CloudKitApiError) and isinstance(link.payload, dict):
            records = link.payload.get("records")
            for record in records if isinstance(records, list) else []:
                if isinstance(record, dict) and isinstance(record.get("serverErrorCode"), str):
                    codes.add(record["serverErrorCode"])
            if isinstance(link.payload.get("serverErrorCode"), str):
                codes.add(link.payload["serverErrorCode"])
    body_code = _body(_response(exc)).get("serverErrorCode")
    if isinstance(body_code, str):
        codes.add(body_code)
    return codes


def retry_after(exc: BaseException) -> float | None:
    """Seconds from ``Retry-After`` (delta or HTTP date), or the body's
    ``retryAfter``, or CloudKit's own hint."""
    for link in chain(exc):
        if isinstance(link, CloudKitRateLimited) and link.retry_after is not None:
            return float(link.retry_after)
    response = _response(exc)
    if response is None:
        return None
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header)
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    hint = _body(response).get("retryAfter")
    return float(hint) if isinstance(hint, int | float) else None


def release(exc: BaseException) -> None:
    """Close any streamed response an exception holds (its socket would
    otherwise linger until garbage collection)."""
    for link in chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, requests.Response):
            response.close()


def login_required(provider: str, username: str, why: str) -> LoginRequiredError:
    return LoginRequiredError(
        f"iCloud sign-in for {username} is needed ({why}); {LOGIN_HINT}", provider=provider
    )


def classify(
    exc: BaseException, *, provider: str, subject: str, username: str = ""
) -> ProviderError:
    """The ProviderError for a failure of ``subject`` (e.g. ``listing``,
    ``fetch <key>``); the caller raises it ``from exc``."""
    release(exc)
    links = list(chain(exc))
    status = http_status(exc)
    codes = server_error_codes(exc)
    account = username or "this Apple ID"
    if any(isinstance(e, PyiCloudAccountLockedException) for e in links):
        return ProviderError(
            f"{subject}: Apple locked the account {account}; unlock it at iforgot.apple.com",
            provider=provider,
        )
    if (status == 403 and "ACCESS_DENIED" in codes) or (
        status is None and "ACCESS_DENIED" in codes
    ):
        return ProviderError(f"{subject}: {ACCESS_DENIED_HELP}", provider=provider)
    if status in LOGIN_STATUSES or any(
        isinstance(e, PyiCloud2FARequiredException | PyiCloud2SARequiredException) for e in links
    ):
        return login_required(provider, account, f"{subject}: session expired, HTTP {status}")
    # pyicloud reports a 503 or a timeout at sign-in as a failed login (and
    # then tries the password): the transient cause found along the chain
    # wins, or cron would ask a person to log in during an Apple outage.
    transient = _transient(exc, provider=provider, subject=subject)
    if transient is not None:
        return transient
    if any(
        isinstance(
            e, PyiCloudAuthRequiredException | CloudKitAuthError | PyiCloudFailedLoginException
        )
        for e in links
    ):
        return login_required(provider, account, f"{subject}: session not accepted")
    detail = f"HTTP {status}" if status is not None else type(exc).__name__
    if codes:
        detail += f" ({', '.join(sorted(codes))})"
    return ProviderError(f"{subject}: iCloud request failed: {detail}", provider=provider)


def _transient(exc: BaseException, *, provider: str, subject: str) -> ProviderError | None:
    """The transient error (busy, throttled, unreachable) ``exc`` stands for, if any."""
    links = list(chain(exc))
    status = _transient_status(exc)
    codes = server_error_codes(exc)
    if status in TRANSIENT_STATUSES or codes & TRANSIENT_CODES:
        wait = retry_after(exc)
        hint = f"; retry after {wait:g}s" if wait is not None else ""
        # No status: a per-record failure in an HTTP 200 answer; its codes say it.
        how = f"HTTP {status}" if status is not None else ", ".join(sorted(codes))
        return ProviderError(
            f"{subject}: iCloud is busy or throttling ({how}){hint}",
            provider=provider,
            transient=True,
            retry_after=wait,
        )
    if any(isinstance(e, CloudKitRateLimited) for e in links):
        wait = retry_after(exc)
        return ProviderError(
            f"{subject}: iCloud is throttling requests",
            provider=provider,
            transient=True,
            retry_after=wait,
        )
    if any(
        isinstance(e, PyiCloudConnectionException | requests.Timeout | requests.ConnectionError)
        for e in links
    ):
        return ProviderError(
            f"{subject}: iCloud could not be reached (timeout or connection error)",
            provider=provider,
            transient=True,
        )
    return None


def _transient_status(exc: BaseException) -> int | None:
    """The first status along the chain, or a transient one further down
    (pyicloud's "no password set" wraps the 503 that caused the retry)."""
    first = http_status(exc)
    if first in TRANSIENT_STATUSES:
        return first
    for link in chain(exc):
        status = http_status(link) if link is not exc else None
        if status in TRANSIENT_STATUSES:
            return status
    return first
