"""Apple ID sign-in for the emulator: SRP-6a, SMS two-factor, trust tokens.

The flow is the one pyicloud drives (``base.py``): ``signin/init`` and
``signin/complete`` prove the password with SRP-6a (s2k: PBKDF2 over
SHA-256 of the password); without a valid trust token the answer is 409
``{"authType": "hsa2"}`` and a code must be verified by SMS, after which
``2sv/trust`` hands out a trusted session token and a trust token. The
session token buys the ``X-APPLE-WEBAUTH-TOKEN`` cookie at ``accountLogin``;
``validate`` checks that cookie. Tokens can be expired and trust revoked at
will, to test what an unattended run does when a person is needed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from typing import Any

import attrs
import srp._pysrp as _srp

from providers.icloud.emulator.store import Account

SRP_ITERATIONS = 1000
# Process-wide flags of the pure-Python SRP module only; pyicloud sets the
# same ones on the module it uses. They select Apple's variant of SRP-6a.
_srp.rfc5054_enable()
_srp.no_username_in_x()


@attrs.define
class _Pending:
    """A sign-in waiting for its second factor, keyed by the auth session id."""

    session_token: str
    code: str | None = None
    verified: bool = False


def new_salt() -> bytes:
    """16 random bytes, the first not zero. pyicloud's SRP (srp's OpenSSL
    module) reads the salt as a number, so it hashes a leading zero byte
    away where the server keeps it: with one salt in 256 the right password
    was refused (a flaky sign-in test, reproduced 4 times in 1,500)."""
    while True:
        salt = secrets.token_bytes(16)
        if salt[0]:
            return salt


@attrs.define
class AuthState:
    account: Account
    salt: bytes = attrs.field(factory=lambda: new_salt())
    _verifier: bytes = b""
    _challenges: dict[str, Any] = attrs.field(factory=dict)
    #: session token -> trusted
    sessions: dict[str, bool] = attrs.field(factory=dict)
    #: X-APPLE-WEBAUTH-TOKEN cookie value -> trusted
    webauth: dict[str, bool] = attrs.field(factory=dict)
    trust_tokens: set[str] = attrs.field(factory=set)
    pending: dict[str, _Pending] = attrs.field(factory=dict)
    sms_codes: list[str] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        derived = self.derived_password()
        x = _srp.gen_x(hashlib.sha256, self.salt, self.account.username, derived)
        n, g = _srp.get_ng(_srp.NG_2048, None, None)
        self._verifier = _srp.long_to_bytes(pow(g, x, n))

    def derived_password(self) -> bytes:
        digest = hashlib.sha256(self.account.password.encode("utf-8")).digest()
        return hashlib.pbkdf2_hmac("sha256", digest, self.salt, SRP_ITERATIONS, 32)

    # ------------------------------------------------------------ SRP

    def srp_init(self, account_name: str, a_b64: str) -> dict[str, Any] | None:
        if account_name != self.account.username:
            return None
        verifier = _srp.Verifier(
            account_name,
            self.salt,
            self._verifier,
            base64.b64decode(a_b64),
            hash_alg=_srp.SHA256,
            ng_type=_srp.NG_2048,
        )
        salt, b = verifier.get_challenge()
        if b is None:
            return None
        c = secrets.token_hex(12)
        with self._lock:
            self._challenges[c] = verifier
        return {
            "iteration": SRP_ITERATIONS,
            "salt": base64.b64encode(salt).decode(),
            "protocol": "s2k",
            "b": base64.b64encode(b).decode(),
            "c": c,
        }

    def srp_complete(self, c: str, m1_b64: str) -> bool:
        with self._lock:
            verifier = self._challenges.pop(c, None)
        if verifier is None:
            return False
        return verifier.verify_session(base64.b64decode(m1_b64)) is not None

    # ------------------------------------------------------------ tokens

    def new_session(self, *, trusted: bool) -> str:
        token = "st-" + secrets.token_urlsafe(24)
        with self._lock:
            self.sessions[token] = trusted
        return token

    def new_trust_token(self) -> str:
        token = "tt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.trust_tokens.add(token)
        return token

    def has_trust(self, tokens: list[str]) -> bool:
        with self._lock:
            return any(t in self.trust_tokens for t in tokens)

    def session_trusted(self, token: str) -> bool | None:
        with self._lock:
            return self.sessions.get(token)

    def new_webauth(self, *, trusted: bool) -> str:
        cookie = "v=2:t=" + secrets.token_urlsafe(32)
        with self._lock:
            self.webauth[cookie] = trusted
        return cookie

    def webauth_trusted(self, cookie: str | None) -> bool | None:
        if cookie is None:
            return None
        with self._lock:
            return self.webauth.get(cookie)

    def expire_sessions(self) -> None:
        """Session tokens and cookies die (trust tokens survive: the next
        sign-in with the password skips 2FA)."""
        with self._lock:
            self.sessions.clear()
            self.webauth.clear()

    def revoke_trust(self) -> None:
        """Everything dies: the next sign-in needs a password and a 2FA code."""
        with self._lock:
            self.trust_tokens.clear()
            self.sessions.clear()
            self.webauth.clear()

    # ------------------------------------------------------------ 2FA

    def start_2fa(self, auth_session_id: str, session_token: str) -> None:
        with self._lock:
            self.pending[auth_session_id] = _Pending(session_token=session_token)

    def send_code(self, auth_session_id: str) -> bool:
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            pending = self.pending.get(auth_session_id)
            if pending is None:
                return False
            pending.code = code
            self.sms_codes.append(code)
        return True

    def verify_code(self, auth_session_id: str, code: str) -> bool:
        with self._lock:
            pending = self.pending.get(auth_session_id)
            if pending is None or pending.code is None or pending.code != code:
                return False
            pending.verified = True
            return True

    def trust(self, auth_session_id: str) -> tuple[str, str] | None:
        """After a verified code: (trusted session token, trust token)."""
        with self._lock:
            pending = self.pending.get(auth_session_id)
            if pending is None or not pending.verified:
                return None
            del self.pending[auth_session_id]
            self.sessions.pop(pending.session_token, None)
        return self.new_session(trusted=True), self.new_trust_token()
