"""The emulator's HTTP server: Apple's hosts behind one loopback port.

Requests arrive through ``providers.icloud.transport.EmulatorAdapter``, which
sends every ``https://<apple host>/…`` request to ``http://127.0.0.1:PORT/…``
and names the Apple host in ``X-Emulated-Host``; the path and that header pick
the handler. Requests without the header may use the control endpoint
``/__emulator__/…`` (faults, expiry) for a driver in another process. A
client that cannot be pointed anywhere (icloudpd) reaches it through a TLS
proxy (``bench/download.py``): its requests name the Apple host in ``Host``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from providers.icloud.emulator import records
from providers.icloud.emulator.auth import AuthState
from providers.icloud.emulator.cloudkit import CloudKitDatabase
from providers.icloud.emulator.faults import Fault, FaultPlan
from providers.icloud.emulator.store import Account, Blob, Zone

HOST_HEADER = "X-Emulated-Host"
LOOPBACK_NAMES = frozenset({"", "127.0.0.1", "localhost", "::1"})
AUTH_HOST = "idmsa.apple.com"
SETUP_HOST = "setup.icloud.com"
CKDATABASE_HOST = "p00-ckdatabasews.icloud.com"
CK_PREFIX = "/database/1/com.apple.photos.cloud/production/"
JSON = dict[str, Any]


@attrs.define
class Request:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None


@attrs.define
class Response:
    status: int
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes | Iterator[bytes] = b""
    length: int | None = None
    #: Close the connection after ``length`` announced bytes were not all sent.
    cut_after: int | None = None


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(payload, separators=(",", ":")).encode()
    out = {"Content-Type": "application/json;charset=UTF-8"}
    out.update(headers or {})
    return Response(status, out, data)


def _route(host: str, path: str) -> str:
    if host == AUTH_HOST:
        return "auth"
    if host == SETUP_HOST:
        return "setup"
    if host == records.DOWNLOAD_HOST:
        return "download"
    if host == CKDATABASE_HOST and path.startswith(CK_PREFIX):
        rest = path[len(CK_PREFIX) :].split("/", 1)[-1]
        return {
            "records/query": "query",
            "records/lookup": "lookup",
            "records/modify": "modify",
            "internal/records/query/batch": "count",
            "zones/list": "zones",
            "changes/zone": "changes",
            "changes/database": "changes",
        }.get(rest, "ckdatabase")
    return "unknown"


@attrs.define
class EmulatorServer(CloudKitDatabase):
    """An iCloud emulator bound to 127.0.0.1 (``port=0``: any free port).

    Use as a context manager, or ``start()`` / ``stop()``. Tests drive
    faults with ``inject(...)``, ``inject_record_errors(...)``,
    ``expire_download_urls()``, ``expire_sync_tokens()``, ``expire_sessions()``
    and ``revoke_trust()``, and change the library between two requests with
    ``before_query(...)``; ``last_sms_code`` is the code a person would have
    received.
    """

    account: Account
    port: int = 0
    host: str = "127.0.0.1"
    #: What an expired download URL answers: 410 Gone, or 403.
    expired_url_status: int = 410
    #: Seconds added to every answer (not the control endpoint): the round
    #: trip to Apple, so that benchmarks see what parallel requests buy.
    latency: float = 0.0
    faults: FaultPlan = attrs.field(factory=FaultPlan)
    auth: AuthState = attrs.field(init=False)
    url_generation: int = 0
    #: ``changes/zone`` sync tokens: their epoch (bumped by
    #: ``expire_sync_tokens()``), how many changes one may lag behind before
    #: it expires (None: never), and the names per page by default.
    token_epoch: int = 0
    token_horizon: int | None = None
    changes_page_size: int = 200
    hits: Counter[str] = attrs.field(factory=Counter)
    looked_up: list[str] = attrs.field(factory=list)
    desired_keys: list[tuple[str, list[str] | None]] = attrs.field(factory=list)
    range_requests: list[str] = attrs.field(factory=list)
    #: (record type prefix, action) run once, before the first query of
    #: that record type is answered (``before_query``).
    query_hooks: list[tuple[str, Callable[[], None]]] = attrs.field(factory=list)
    #: The most download requests seen being answered at once.
    peak_downloads: int = 0
    _downloads: int = 0
    _downloads_lock: threading.Lock = attrs.field(factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __attrs_post_init__(self) -> None:
        self.auth = AuthState(self.account)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ test API

    def inject(
        self,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | bytes | None = None,
        delay: float = 0.0,
        times: int | None = 1,
        path_contains: str = "",
        body_contains: str = "",
        applied: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests on ``route`` with ``status``
        (Apple's body for it, and ``Retry-After``), after ``delay`` seconds;
        ``applied``: only after the request took effect (a lost answer);
        ``path_contains``/``body_contains``: only requests holding that text;
        ``headers``: sent besides (``Content-Type`` of a ``bytes`` body)."""
        return self.faults.add(
            Fault(
                route=route,
                status=status,
                retry_after=retry_after,
                body=body,
                delay=delay,
                times=times,
                path_contains=path_contains,
                body_contains=body_contains,
                applied=applied,
                extra_headers=dict(headers or {}),
            )
        )

    def inject_record_errors(
        self, code: str, names: tuple[str, ...] = (), *, times: int | None = 1
    ) -> Fault:
        """Answer the next ``times`` lookups naming any of ``names`` (every
        lookup: none given) in an HTTP 200 with an error item of ``code``
        (INTERNAL_ERROR, TRY_AGAIN_LATER…) in place of each of those records:
        CloudKit's answer for a record it cannot serve now."""
        return self.faults.add(
            Fault(route="lookup", record_error=code, record_names=names, times=times)
        )

    def inject_truncation(
        self, *, fraction: float = 0.5, mode: Literal["cut", "lie"] = "cut", times: int | None = 1
    ) -> Fault:
        """Send only part of the next ``times`` download bodies."""
        return self.faults.add(
            Fault(route="download", truncate=fraction, truncate_mode=mode, times=times)
        )

    def inject_conflict(self, *, times: int | None = 1) -> Fault:
        """Answer the next ``times`` modifies with a CONFLICT for every record,
        as if each record had changed on another device meanwhile."""
        return self.faults.add(Fault(route="modify", conflict=True, times=times))

    def before_query(self, record_type: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, as the first query whose record type starts
        with ``record_type`` arrives, before it is answered: a person
        changing the library (on a phone) between two requests of a listing."""
        with self.account.lock:
            self.query_hooks.append((record_type, action))

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_download_urls(self) -> None:
        """Every download URL handed out so far stops working; a fresh
        listing gives new ones."""
        with self.account.lock:
            self.url_generation += 1

    def expire_sync_tokens(self) -> None:
        """Every ``changes/zone`` sync token handed out so far is refused as
        expired (CloudKit's answer to a token it no longer keeps history for)."""
        with self.account.lock:
            self.token_epoch += 1

    def expire_sessions(self) -> None:
        self.auth.expire_sessions()

    def revoke_trust(self) -> None:
        self.auth.revoke_trust()

    @property
    def last_sms_code(self) -> str | None:
        return self.auth.sms_codes[-1] if self.auth.sms_codes else None

    def trusted_session(self) -> tuple[str, str]:
        """A trusted session token and trust token, as a completed 2FA login
        leaves them (for seeding a client's session file)."""
        return self.auth.new_session(trusted=True), self.auth.new_trust_token()

    # ------------------------------------------------------------ dispatch

    def handle(self, req: Request) -> Response:
        if not req.host and req.path.startswith("/__emulator__/"):
            return self._control(req)
        route = _route(req.host, req.path)
        self.hits[route] += 1
        if route != "download":
            return self._handle(req, route)
        with self._downloads_lock:
            self._downloads += 1
            self.peak_downloads = max(self.peak_downloads, self._downloads)
        try:
            return self._handle(req, route)
        finally:
            with self._downloads_lock:
                self._downloads -= 1

    def _handle(self, req: Request, route: str) -> Response:
        if self.latency:
            time.sleep(self.latency)
        fault = self.faults.take(route, req.path, req.body)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None and not fault.applied:
            return _fault_response(fault, fault.status)
        response = self._dispatch(req, route, fault)
        if fault is not None and fault.status is not None:
            # ``applied``: it happened, but the client hears only the error.
            return _fault_response(fault, fault.status)
        return response

    def _dispatch(self, req: Request, route: str, fault: Fault | None) -> Response:
        if route == "auth":
            return self._auth(req)
        if route == "setup":
            return self._setup(req)
        if route == "download":
            return self._download(req, fault)
        if route == "unknown":
            return json_response(404, {"reason": f"no such endpoint {req.host}{req.path}"})
        return self._ckdatabase(req, route, fault)

    def _control(self, req: Request) -> Response:
        action = req.path[len("/__emulator__/") :]
        if action == "faults" and req.method == "POST":
            self.faults.add(Fault(**req.json()))
        elif action == "faults" and req.method == "DELETE":
            self.clear_faults()
        elif action == "expire-urls":
            self.expire_download_urls()
        elif action == "expire-sync-tokens":
            self.expire_sync_tokens()
        elif action == "expire-sessions":
            self.expire_sessions()
        elif action == "revoke-trust":
            self.revoke_trust()
        elif action != "state":
            return json_response(404, {"reason": f"unknown control {action}"})
        return json_response(
            200,
            {
                "assets": len(self.account.live_assets()),
                "deleted": len(self.account.deleted_assets()),
                "sms_codes": list(self.auth.sms_codes),
                "hits": dict(self.hits),
            },
        )

    # ------------------------------------------------------------ idmsa

    def _auth(self, req: Request) -> Response:
        path = req.path.removeprefix("/appleauth/auth")
        session_id = req.headers.get("x-apple-id-session-id", "")
        if path == "/authorize/signin":
            html = b"<html><body>Sign in</body></html>"
            return Response(200, {"Content-Type": "text/html"}, html)
        if path == "/signin/init":
            body = req.json()
            challenge = self.auth.srp_init(body.get("accountName", ""), body.get("a", ""))
            if challenge is None:
                return _bad_credentials()
            headers = {"scnt": "scnt-emulated", "X-Apple-ID-Session-Id": "sid-" + challenge["c"]}
            return json_response(200, challenge, headers)
        if path == "/signin/complete":
            body = req.json()
            if not self.auth.srp_complete(body.get("c", ""), body.get("m1", "")):
                return _bad_credentials()
            trust_tokens = [t for t in body.get("trustTokens", []) if isinstance(t, str)]
            if self.auth.has_trust(trust_tokens):
                headers = {
                    "X-Apple-Session-Token": self.auth.new_session(trusted=True),
                    "X-Apple-TwoSV-Trust-Token": trust_tokens[0],
                }
                return json_response(200, {"authType": "hsa2"}, headers)
            token = self.auth.new_session(trusted=False)
            self.auth.start_2fa(session_id, token)
            return json_response(409, {"authType": "hsa2"}, {"X-Apple-Session-Token": token})
        if path in ("", "/") and req.method == "GET":
            if session_id not in self.auth.pending:
                return json_response(401, {"reason": "no sign-in in progress"})
            if "json" not in req.headers.get("accept", ""):
                # The sign-in page (what icloudpd and a browser ask for):
                # its boot_args carry the trusted phone numbers.
                return Response(200, {"Content-Type": "text/html"}, _auth_page())
            return json_response(200, _phone_options())
        if path == "/verify/phone" and req.method == "PUT":
            if not self.auth.send_code(session_id):
                return json_response(401, {"reason": "no sign-in in progress"})
            return json_response(200, {**_phone_options(), "trustedPhoneNumber": _PHONE})
        if path in ("/verify/phone/securitycode", "/verify/trusteddevice/securitycode"):
            try:
                body = req.json()
            except ValueError:
                body = None
            # A PUT with no body (icloudpd asks the device to prompt) is a
            # wrong code, never a server error.
            wanted = body.get("securityCode") if isinstance(body, dict) else None
            code = str(wanted.get("code", "")) if isinstance(wanted, dict) else ""
            if not self.auth.verify_code(session_id, code):
                return json_response(
                    400,
                    {
                        "service_errors": [
                            {"code": "-21669", "message": "Incorrect verification code."}
                        ],
                        "hasError": True,
                    },
                )
            return json_response(200, {})
        if path == "/2sv/trust":
            tokens = self.auth.trust(session_id)
            if tokens is None:
                return json_response(401, {"reason": "not verified"})
            headers = {"X-Apple-Session-Token": tokens[0], "X-Apple-TwoSV-Trust-Token": tokens[1]}
            return Response(204, headers, b"")
        return json_response(404, {"reason": f"unknown auth endpoint {path}"})

    # ------------------------------------------------------------ setup

    def _account_data(self, trusted: bool) -> JSON:
        account = self.account
        return {
            "dsInfo": {
                "dsid": account.dsid,
                "hsaVersion": 2,
                "appleId": account.username,
                "primaryEmail": account.username,
                "fullName": account.full_name,
                "languageCode": "en-us",
                "isWebAccessAllowed": account.web_access,
                "hasICloudQualifyingDevice": True,
            },
            "hasMinimumDeviceForPhotosWeb": True,
            "iCDPEnabled": not account.web_access,
            "webservices": {
                "ckdatabasews": {
                    "url": f"https://{CKDATABASE_HOST}:443",
                    "pcsRequired": True,
                    "status": "active",
                },
            },
            "pcsEnabled": True,
            "hsaTrustedBrowser": trusted,
            "hsaChallengeRequired": False,
            "appsOrder": ["photos"],
            "apps": {"photos": {}},
        }

    def _setup(self, req: Request) -> Response:
        op = req.path.removeprefix("/setup/ws/1/")
        if op == "accountLogin":
            body = req.json() or {}
            trusted = self.auth.session_trusted(str(body.get("dsWebAuthToken") or ""))
            if trusted is None:
                return json_response(421, {"success": False, "reason": "Invalid session token"})
            cookie = self.auth.new_webauth(trusted=trusted)
            response = json_response(200, self._account_data(trusted))
            response.headers["Set-Cookie"] = (
                f'X-APPLE-WEBAUTH-TOKEN="{cookie}"; Domain=.icloud.com; Path=/; Secure; HttpOnly'
            )
            return response
        if op == "validate":
            trusted = self.auth.webauth_trusted(req.cookie("X-APPLE-WEBAUTH-TOKEN"))
            if trusted is None:
                return json_response(421, {"success": False, "reason": "Missing session"})
            return json_response(200, self._account_data(trusted))
        if op == "requestWebAccessState":
            return json_response(200, {"isICDRSDisabled": False, "isDeviceConsentedForPCS": True})
        if op == "logout":
            return json_response(200, {"success": True})
        return json_response(404, {"reason": f"unknown setup endpoint {op}"})

    # ------------------------------------------------------------ CloudKit

    def _ckdatabase(self, req: Request, route: str, fault: Fault | None) -> Response:
        if not self.account.web_access:
            return json_response(403, dict(_ACCESS_DENIED))
        if self.auth.webauth_trusted(req.cookie("X-APPLE-WEBAUTH-TOKEN")) is None:
            return json_response(
                401, {"serverErrorCode": "AUTHENTICATION_REQUIRED", "reason": "no auth"}
            )
        database = req.path[len(CK_PREFIX) :].split("/", 1)[0]
        body = req.json() or {}
        with self.account.lock:
            if route == "query":
                self._run_query_hooks(body)
                payload = self._query(body)
            elif route == "lookup":
                payload = self._lookup(body, fault)
            elif route == "modify":
                payload = self._modify(body, conflict=fault is not None and fault.conflict)
            elif route == "count":
                payload = self._count(body)
            elif route == "zones":
                payload = self._zones(database)
            elif route == "changes":
                payload = self._changes(body)
            else:
                return json_response(404, {"reason": f"unknown CloudKit endpoint {req.path}"})
        if payload is None:
            return json_response(
                400, {"serverErrorCode": "ZONE_NOT_FOUND", "reason": "Zone does not exist"}
            )
        return json_response(200, payload)

    def _run_query_hooks(self, body: dict[str, Any]) -> None:
        """Run (and forget) the ``before_query`` actions this query matches.
        Callers hold ``account.lock``."""
        record_type = str((body.get("query") or {}).get("recordType", ""))
        due = [hook for hook in self.query_hooks if record_type.startswith(hook[0])]
        for hook in due:
            self.query_hooks.remove(hook)
            hook[1]()

    # ------------------------------------------------------------ downloads

    def _download(self, req: Request, fault: Fault | None) -> Response:
        parts = req.path.split("/")
        parsed = records.parse_download_token(parts[2]) if len(parts) > 3 else None
        if parsed is None:
            return Response(404, {"Content-Type": "text/plain"}, b"not found")
        zone_name, master_id, resource, generation = parsed
        if generation != self.url_generation:
            return Response(self.expired_url_status, {"Content-Type": "text/plain"}, b"expired")
        with self.account.lock:
            zone = self.account.zones.get(zone_name)
            blob = _blob(zone, master_id, resource) if zone is not None else None
        if blob is None:
            return Response(404, {"Content-Type": "text/plain"}, b"not found")
        start, end, status = 0, blob.size, 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        wanted = req.headers.get("range")
        if wanted:
            self.range_requests.append(wanted)
            span = _parse_range(wanted, blob.size)
            if span is None:
                headers["Content-Range"] = f"bytes */{blob.size}"
                return Response(416, headers, b"")
            start, end = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
        length = end - start
        if fault is not None and fault.truncate is not None:
            short = int(length * fault.truncate)
            if fault.truncate_mode == "lie":
                return Response(status, headers, blob.iter_range(start, start + short), short)
            return Response(
                status, headers, blob.iter_range(start, start + short), length, cut_after=short
            )
        return Response(status, headers, blob.iter_range(start, end), length)


def _blob(zone: Zone, record_name: str, resource: str) -> Blob | None:
    """The bytes a download URL names (an edit's URL names its asset)."""
    if resource == "edit":
        asset = zone.assets.get(record_name)
        return asset.edit if asset is not None else None
    master = zone.masters.get(record_name)
    if master is None:
        return None
    by_resource = {
        "original": master.original,
        "live": master.live_video,
        "alt": master.alternative,
        "sidecar": master.sidecar,
    }
    return by_resource.get(resource)


_ACCESS_DENIED = {
    "serverErrorCode": "ACCESS_DENIED",
    "reason": "private db access disabled for this account",
}

_PHONE = {
    "id": 1,
    "numberWithDialCode": "+1 (•••) •••-••42",
    "obfuscatedNumber": "(•••) •••-••42",
    "lastTwoDigits": "42",
    "pushMode": "sms",
}


def _fault_response(fault: Fault, status: int) -> Response:
    body = fault.error_body()
    if isinstance(body, bytes):
        headers = {"Content-Type": "text/plain", **fault.headers()}  # a Content-Type asked wins
        return Response(status, headers, body)
    return json_response(status, body, fault.headers())


def _phone_options() -> JSON:
    return {
        "trustedPhoneNumbers": [_PHONE],
        "phoneNumber": _PHONE,
        "trustedPhoneNumber": _PHONE,
        "securityCode": {"length": 6, "tooManyCodesSent": False, "tooManyCodesValidated": False},
        "mode": "sms",
        "type": "verification",
        "hsa2Account": True,
        "restrictedAccount": False,
    }


def _auth_page() -> bytes:
    """The HTML sign-in shell, with its ``boot_args`` in both shapes clients
    read: ``direct.twoSV.phoneNumberVerification`` (icloudpd) and inside
    ``bridgeInitiateData`` (pyicloud), without offering the device bridge."""
    options = _phone_options()
    boot = {
        "direct": {
            "twoSV": {
                "phoneNumberVerification": options,
                "bridgeInitiateData": {"phoneNumberVerification": options},
                "authFactors": ["sms"],
            }
        }
    }
    payload = json.dumps(boot).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html><head><title>Apple ID</title></head><body>"
        f'<script type="application/json" class="boot_args">{payload}</script>'
        "</body></html>"
    ).encode()


def _bad_credentials() -> Response:
    return json_response(
        401,
        {
            "serviceErrors": [
                {"code": "-20101", "message": "Your Apple ID or password was incorrect."}
            ]
        },
    )


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or start < 0 or end <= start:
        return None
    return start, min(end, size)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive handler threads block on idle connections; never wait for them.
    block_on_close = False
    app: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts in tests) is expected, not news.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle
    # and the client's delayed ACK add ~40 ms to every answer on a reused
    # connection, and every download figure measures the emulator instead.
    disable_nagle_algorithm = True
    server: _HTTPServer
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get(HOST_HEADER.lower(), "").split(":")[0].lower()
        if not host:
            # Through a proxy the request names Apple's host itself.
            named = headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
            host = "" if named in LOOPBACK_NAMES else named
        req = Request(
            method=self.command,
            host=host,
            path=unquote(split.path),
            query=parse_qs(split.query),
            headers=headers,
            body=body,
        )
        try:
            resp = self.server.app.handle(req)
        except Exception as exc:  # a bug in the emulator: say so in the answer
            resp = json_response(500, {"reason": f"emulator error: {exc!r}"})
        self._write(resp)

    def _write(self, resp: Response) -> None:
        self.send_response(resp.status)
        body = resp.body
        length = resp.length if resp.length is not None else len(body)  # type: ignore[arg-type]
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if isinstance(body, bytes):
                self.wfile.write(body)
            else:
                for chunk in body:
                    self.wfile.write(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if resp.cut_after is not None:
            # The announced length was not sent: hang up so the client sees a
            # short read, as on a dropped connection.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_HEAD = _serve
