"""An off-loaded item's sidecar in the library, edited by the person with
exiftool (a keyword added, as digiKam or Lightroom would): exiftool writes
one rdf:Description per namespace, and the parser read only the first, so
the sidecar was no longer the item's ("another program's .xmp"): the
keyword never reached the targets and the plan said the library matched.
``sidecar.parse`` now reads XMP as XMP. Real exiftool and the emulator."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from reconciler import sidecar
from reconciler.layout import dated_path
from tests.helpers import Workspace, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
SIDECAR = dated_path(OLD, "IMG_0001.JPG") + sidecar.SUFFIX


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "src1.jpg", OLD, seed=1, size=256).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, caption="Dawn", favorite=True)
    return account


def _offloaded(ws: Workspace, account: Account) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []
    assert (ws.library / SIDECAR).exists()


def _xmps(ws: Workspace, store: str) -> dict[str, bytes]:
    return {p: b for p, b in files_under(ws.target(store)).items() if p.endswith(".xmp")}


def test_the_persons_keyword_in_the_librarys_sidecar_reaches_the_targets(
    ws: Workspace, account: Account
) -> None:
    """After off-load, the person adds a keyword to the library's sidecar
    (exiftool, as digiKam or Lightroom would): the library's sidecar is the
    one its copies are kept from, so the keyword is to reach both targets."""
    _offloaded(ws, account)
    path = ws.library / SIDECAR
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=Grandma", str(path)],
        check=True,
    )
    edited = path.read_bytes()
    assert b"Grandma" in edited
    for _ in range(2):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    assert (ws.library / SIDECAR).read_bytes() == edited
    for t in ("nas", "usb"):
        xmps = _xmps(ws, t)
        assert len(xmps) == 1, xmps.keys()
        assert b"Grandma" in xmps[SIDECAR], t
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out
