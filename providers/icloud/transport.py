"""requests transport adapters mounted on pyicloud's session.

``TimeoutAdapter`` gives every request a timeout: pyicloud's sign-in and
setup calls pass none, and a stalled connection would hang a cron run.
``EmulatorAdapter`` additionally sends every ``https://<apple host>/…``
request to the local emulator (``http://127.0.0.1:PORT/…``), naming the Apple
host in ``X-Emulated-Host``, and puts the original URL back on the response.
Cookies stay keyed to Apple's host names because requests extracts them
against the original request. pyicloud itself is not modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

HOST_HEADER = "X-Emulated-Host"
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Connections kept per host: at least as many as parallel downloads, or
#: every stream past requests' default of 10 opens a new connection per file.
POOL_SIZE = 64


class TimeoutAdapter(HTTPAdapter):
    """An HTTPAdapter that fills in a timeout where the caller gave none."""

    def __init__(self, timeout: tuple[float, float] = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        self.default_timeout = timeout
        kwargs.setdefault("pool_maxsize", POOL_SIZE)
        super().__init__(**kwargs)

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.default_timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def endpoint_problem(base_url: str) -> str | None:
    """Why ``base_url`` cannot be an emulator endpoint (None: it can).

    The emulator is a loopback test double; anything else is refused so a
    typo can never send credentials to a real host in the clear.
    """
    try:
        target = urlsplit(base_url)
        target.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        target = None
    if target is None or target.scheme != "http" or target.hostname not in LOOPBACK_HOSTS:
        return (
            f"{base_url!r} is not an emulator on this machine; use http://127.0.0.1:PORT "
            "(the emulator listens on loopback only), or leave it empty for Apple"
        )
    return None


class EmulatorAdapter(TimeoutAdapter):
    """Route HTTPS requests for Apple's hosts to the emulator at ``base_url``."""

    def __init__(
        self, base_url: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT, **kwargs: Any
    ) -> None:
        problem = endpoint_problem(base_url)
        if problem is not None:
            raise ValueError(problem)
        self.base = urlsplit(base_url)
        super().__init__(timeout, **kwargs)

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        original_url = request.url or ""
        parts = urlsplit(original_url)
        rewritten = request.copy()
        rewritten.url = urlunsplit(
            (
                self.base.scheme,
                self.base.netloc,
                parts.path or "/",
                parts.query,
                "",
            )
        )
        rewritten.headers[HOST_HEADER] = parts.netloc
        response = super().send(
            rewritten, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        response.url = original_url
        response.request = request
        return response


def mount(session: Any, *, endpoint: str | None, timeout: tuple[float, float]) -> None:
    """Mount the right adapter for ``https://`` on a requests session."""
    adapter: HTTPAdapter
    adapter = EmulatorAdapter(endpoint, timeout) if endpoint else TimeoutAdapter(timeout)
    session.mount("https://", adapter)
