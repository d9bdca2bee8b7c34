"""A download answered once with an error page in an HTTP 200 (a proxy, a
captive portal, a CDN's "try later" page): shorter than the file, it looked
like a download cut off, was resumed with ``Range`` from the page's length,
and page plus the file's tail, exactly the listed size, were archived as the
photo: the gate then proved two copies of those bytes and the photo left
iCloud. The whole tool, the real pyicloud and the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from tests.helpers import Workspace, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)

PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>We are having trouble. Try again later.</h1></body></html>\n"
)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "src" / "0.jpg", OLD, seed=0, size=256).read_bytes()
    account.add_asset(data, "IMG_0000.JPG", asset_date=OLD)
    return account


def test_an_error_page_in_a_200_is_never_archived_as_the_photo(
    ws: Workspace, account: Account, emu: RunningEmulator
) -> None:
    (asset,) = account.live_assets()
    original = asset.master.original.data
    assert original is not None and len(original) > len(PAGE)
    emu.server.inject(
        "download", status=200, body=PAGE, headers={"Content-Type": "text/html"}, times=1
    )
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in ("library", "nas", "usb"):
        photos = {n: d for n, d in files_under(ws.target(store)).items() if n.endswith(".JPG")}
        assert list(photos.values()) == [original], store
    # Removed on the strength of copies of the photo itself.
    assert asset.deleted, r.out
