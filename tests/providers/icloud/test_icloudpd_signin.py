"""What icloudpd's own fresh sign-in asks of the emulator, past pyicloud's
SRP step: the HTML sign-in page with the trusted phone numbers in its
``boot_args``, a bodiless PUT to the trusted-device code endpoint that is
refused (not a server error), and ``dsInfo.hasICloudQualifyingDevice``."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pyicloud.exceptions import PyiCloudAPIResponseException

from providers.icloud.emulator.testing import RunningEmulator
from tests.providers.icloud.test_emulator_pyicloud import client

AUTH = "https://idmsa.apple.com/appleauth/auth"


class _BootArgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self._inside = False
        self.found: dict[str, Any] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._inside = tag == "script" and ("class", "boot_args") in attrs

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.found = json.loads(data)


def test_icloudpd_sign_in_steps(emulator: RunningEmulator, tmp_path: Path) -> None:
    with client(emulator, tmp_path, emulator.password) as api:
        api.authenticate()
        assert api.requires_2fa
        headers = api._get_auth_headers({})
        # icloudpd sends a prepared request without an Accept header.
        page = api.session.get(AUTH, headers={**headers, "Accept": None})
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        parser = _BootArgs()
        parser.feed(page.text)
        phones = parser.found["direct"]["twoSV"]["phoneNumberVerification"]["trustedPhoneNumbers"]
        assert [(p["id"], p["obfuscatedNumber"][-2:]) for p in phones] == [(1, "42")]
        # Asking the trusted device to prompt: a PUT with no body.
        with pytest.raises(PyiCloudAPIResponseException) as refused:
            api.session.put(f"{AUTH}/verify/trusteddevice/securitycode", headers=headers, data=b"")
        assert refused.value.code == 400  # a wrong code, not a server error
        code = emulator.server.last_sms_code
        assert code is not None and api.validate_2fa_code(code) is True
        assert api.data["dsInfo"]["hasICloudQualifyingDevice"] is True
