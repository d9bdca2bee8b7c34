"""Fault injection for the emulator: the ways iCloud misbehaves, on demand.

A ``Fault`` matches requests by route (``download``, ``query``, ``modify``,
``lookup``, ``count``, ``zones``, ``changes``, ``setup``, ``auth``, or the
groups ``ckdatabase`` and ``any``) and, while it has ``times`` left, replaces
or alters the answer: an HTTP status with Apple's body and ``Retry-After``, a
delay, a truncated download body, a CONFLICT for every record of a modify, or
(``record_error``) a lookup answered in an HTTP 200 with an error item in
place of some records, as CloudKit answers a record it cannot serve now.
With ``applied`` the request takes effect before the error is answered: the
answer was lost on its way back, so a client cannot know whether it happened.
``path_contains`` and ``body_contains`` narrow a fault to some requests of its
route (``body_contains="-IN-"``: only lookups of album relation records).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Literal

import attrs

CKDATABASE_ROUTES = frozenset({"query", "lookup", "modify", "count", "zones", "changes"})
ROUTES = CKDATABASE_ROUTES | {"download", "setup", "auth", "ckdatabase", "any"}

#: Apple's bodies for the statuses tests ask for (what pyicloud and our
#: classifier look at: the status, ``serverErrorCode`` and ``Retry-After``).
DEFAULT_BODIES: dict[int, dict[str, Any]] = {
    401: {"serverErrorCode": "AUTHENTICATION_REQUIRED", "reason": "no auth method found"},
    403: {
        "serverErrorCode": "ACCESS_DENIED",
        "reason": "private db access disabled for this account",
    },
    409: {"serverErrorCode": "CONFLICT", "reason": "oplock error"},
    421: {"serverErrorCode": "AUTHENTICATION_FAILED", "reason": "Misdirected request"},
    429: {"serverErrorCode": "THROTTLED", "reason": "Rate limit exceeded"},
    500: {"serverErrorCode": "INTERNAL_ERROR", "reason": "Internal server error"},
    503: {"serverErrorCode": "TRY_AGAIN_LATER", "reason": "Service unavailable"},
}


def _names(names: Iterable[str]) -> tuple[str, ...]:
    """Record names as a tuple (a JSON driver sends a list)."""
    return tuple(names)


@attrs.define(kw_only=True)
class Fault:
    """One injected misbehaviour. ``times=None`` lasts until cleared."""

    route: str
    status: int | None = None
    body: dict[str, Any] | bytes | None = None
    retry_after: float | None = None
    delay: float = 0.0
    #: Downloads: send only this fraction of the body. ``cut`` announces the
    #: full Content-Length then drops the connection; ``lie`` announces the
    #: short length, so only a client that checks the size notices.
    truncate: float | None = None
    truncate_mode: Literal["cut", "lie"] = "cut"
    conflict: bool = False
    #: Lookups: CloudKit's ``serverErrorCode`` (e.g. INTERNAL_ERROR) answered
    #: in place of each record of ``record_names`` (every record: empty); a
    #: fault with names matches only lookups that name one of them.
    record_error: str = ""
    record_names: tuple[str, ...] = attrs.field(default=(), converter=_names)
    #: Handle the request as usual, then answer ``status`` instead.
    applied: bool = False
    path_contains: str = ""
    #: Only requests whose body holds this text (e.g. a record name's part).
    body_contains: str = ""
    #: Headers the answer carries besides (a ``Content-Type``, a
    #: ``Content-Range``): a proxy's page in an HTTP 200 says ``text/html``.
    extra_headers: dict[str, str] = attrs.field(factory=dict)
    times: int | None = 1
    hits: int = 0

    def __attrs_post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown fault route {self.route!r}; one of {sorted(ROUTES)}")

    def matches(self, route: str, path: str, body: bytes = b"") -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        if self.body_contains and self.body_contains.encode() not in body:
            return False
        if self.record_names and not any(n.encode() in body for n in self.record_names):
            return False
        if self.route == "any":
            return True
        if self.route == "ckdatabase":
            return route in CKDATABASE_ROUTES
        return self.route == route

    def fails_record(self, name: str) -> bool:
        """Whether a lookup answers ``name`` with this fault's error item."""
        return bool(self.record_error) and (not self.record_names or name in self.record_names)

    def headers(self) -> dict[str, str]:
        out = dict(self.extra_headers)
        if self.retry_after is not None:
            out["Retry-After"] = f"{self.retry_after:g}"
        return out

    def error_body(self) -> dict[str, Any] | bytes:
        if self.body is not None:
            return self.body
        body = dict(DEFAULT_BODIES.get(self.status or 500, {"reason": "error"}))
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return body


@attrs.define
class FaultPlan:
    """The active faults, consumed in order; thread-safe."""

    faults: list[Fault] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def take(self, route: str, path: str, body: bytes = b"") -> Fault | None:
        """The first matching fault, with one use consumed."""
        with self._lock:
            for fault in self.faults:
                if fault.matches(route, path, body):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None
