"""An .xmp the person's editor writes in the library once its item left
iCloud (Lightroom's ``IMG_0001.xmp``, darktable's ``IMG_0001.JPG_01.xmp``
for a duplicate, or darktable rewriting the tool's ``IMG_0001.JPG.xmp`` in
its own format): the person's work, in the library only. It is archived to
every target as any file, counted by the census until it is, and the
tool's own sidecar is never confused with it: neither replaces the other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from reconciler import sidecar
from tests.helpers import Workspace, exiftool_tags, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
DAY = "2021/06/01"
OURS = f"{DAY}/IMG_0001.JPG.xmp"
THEIRS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
    b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:darktable="http://darktable.sf.net/" darktable:history_end="7"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "s1.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, caption="Dawn")
    return account


def _title(path: Path) -> str:
    return str(exiftool_tags(path)["XMP-dc:Title"])


@pytest.mark.parametrize("name", ["IMG_0001.xmp", "IMG_0001.JPG_01.xmp"])
def test_the_person_s_xmp_in_the_library_is_archived(
    ws: Workspace, account: Account, name: str
) -> None:
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []  # the item lives only in the library now
    ours = {t: files_under(ws.target(t))[OURS] for t in ("library", "nas", "usb")}
    (ws.library / DAY / name).write_bytes(THEIRS)

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out + p.err
    for t in ("nas", "usb"):
        assert f"copy-to-target[{t}] library:{DAY}/{name}: no verified copy on {t}" in p.out
    st = ws.run("status", now=NOW).out  # on no target yet: said so
    assert "1 in the library only" in st and "every item is archived" not in st, st

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for t in ("library", "nas", "usb"):
        held = files_under(ws.target(t))
        assert held[f"{DAY}/{name}"] == THEIRS, t  # byte for byte, at its name
        assert held[OURS] == ours[t], t  # the tool's own sidecar untouched beside it
        assert _title(ws.target(t) / OURS) == "Dawn"
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    st = ws.run("status", now=NOW).out
    assert "1 on 2+ targets" in st and "every item is archived" in st, st


def test_the_tool_s_sidecar_rewritten_by_another_program_is_archived_beside_its_own(
    ws: Workspace, account: Account
) -> None:
    """darktable writes its own format over the tool's ``IMG_0001.JPG.xmp``
    in the library: no longer the tool's (its content says so), so it is the
    person's file, copied to the targets beside the tool's sidecar there
    (which it never replaces), and that sidecar is never written over it."""
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []
    ours = files_under(ws.target("nas"))[OURS]
    (ws.library / OURS).write_bytes(THEIRS)

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.library)[OURS] == THEIRS
    for t in ("nas", "usb"):
        held = files_under(ws.target(t))
        assert held.pop(OURS) == ours, t
        assert _title(ws.target(t) / OURS) == "Dawn"
        [theirs] = [p for p, data in held.items() if data == THEIRS]
        assert theirs.startswith(f"{DAY}/IMG_0001.JPG") and theirs.endswith(".xmp"), theirs
        assert sidecar.parse(held[theirs]) is None
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    st = ws.run("status", now=NOW).out
    assert "every item is archived" in st, st


def test_a_copy_of_the_tool_s_sidecar_under_another_name_is_the_person_s_file(
    ws: Workspace, account: Account
) -> None:
    """The item's sidecar copied by the person under a name the tool never
    writes (a darktable duplicate's, edited to try another caption): it
    still reads as the item's, but it is their file. It is archived under
    its own name and never written over the item's own sidecar on a target
    (the two took turns there on every run)."""
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert account.live_assets() == []
    ours = {t: files_under(ws.target(t))[OURS] for t in ("library", "nas", "usb")}
    copy = f"{DAY}/IMG_0001.JPG_01.xmp"
    edited = ours["library"].replace(b"Dawn", b"Dusk")
    assert edited != ours["library"]
    (ws.library / copy).write_bytes(edited)

    for _ in range(2):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    for t in ("library", "nas", "usb"):
        held = files_under(ws.target(t))
        assert (held[OURS], held[copy]) == (ours[t], edited), t
        assert (_title(ws.target(t) / OURS), _title(ws.target(t) / copy)) == ("Dawn", "Dusk")
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    st = ws.run("status", now=NOW).out  # counted as a file of theirs
    assert "1 on 2+ targets" in st and "1 removed from their source" in st, st
