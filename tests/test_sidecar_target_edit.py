"""A person's edit of an item's sidecar on a backup target (a keyword added
with exiftool, as digiKam would on the NAS's folder) is in no other file:
the next run rewrote it in place ("sidecar missing or out of date") and the
keyword was gone from every store. A sidecar is now replaced only by a newer
one where the file there is exactly as the tool writes one
(``sidecar.is_rendering``); anything else there is kept, and the tool's
sidecar goes beside it under the item's tagged name. Real exiftool and the
emulator."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore, write_marker
from providers.icloud.emulator import Account
from reconciler import sidecar
from reconciler.errors import ForeignFileError
from tests.helpers import Workspace, exiftool_tags, files_under, make_jpeg
from tests.reconciler.test_sidecar import SHAS, _item

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
SIDECAR = "2021/06/01/IMG_0001.JPG.xmp"


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    data = make_jpeg(tmp_path / "s1.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, caption="Dawn")
    return account


def _keyword(path: Path, word: str) -> None:
    """The person's edit, as digiKam or Lightroom would make it."""
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", f"-XMP-dc:Subject+={word}", str(path)],
        check=True,
    )


def _xmps(root: Path) -> dict[str, bytes]:
    return {p: b for p, b in files_under(root).items() if p.endswith(".xmp")}


@pytest.mark.parametrize("in_icloud", [False, True])
def test_the_persons_keyword_on_the_nas_is_kept_beside_the_tools_sidecar(
    ws: Workspace, account: Account, in_icloud: bool
) -> None:
    """Both when the item lives only in the library (the library's sidecar
    copied to the nas) and when it is still in iCloud (rendered from it)."""
    ws.removal(on=not in_icloud)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert len(account.live_assets()) == int(in_icloud)
    _keyword(ws.target("nas") / SIDECAR, "Grandma")
    edited = (ws.target("nas") / SIDECAR).read_bytes()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    found = _xmps(ws.target("nas"))
    assert found.pop(SIDECAR) == edited  # the person's, as they left it
    assert exiftool_tags(ws.target("nas") / SIDECAR)["XMP-dc:Subject"] == "Grandma"
    [tagged] = found  # the tool's, under the item's tagged name
    assert tagged.startswith(SIDECAR[: -len(".xmp")] + ".")
    ours = exiftool_tags(ws.target("nas") / tagged)
    assert ours["XMP-dc:Title"] == "Dawn" and "XMP-dc:Subject" not in ours
    assert found[tagged] == (ws.library / SIDECAR).read_bytes()
    # converged: nothing to do, nothing rewritten by the next apply
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 0, p.out
    before = files_under(ws.target("nas"))
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert files_under(ws.target("nas")) == before
    assert [p for p in files_under(ws.target("usb")) if p.endswith(".xmp")] == [SIDECAR]


def test_a_later_metadata_change_rewrites_the_tools_sidecar_not_the_persons(
    ws: Workspace, account: Account
) -> None:
    ws.removal(on=False)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    _keyword(ws.target("nas") / SIDECAR, "Grandma")
    edited = (ws.target("nas") / SIDECAR).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    [asset] = account.live_assets()
    account.describe(asset, caption="Dusk")
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    found = _xmps(ws.target("nas"))
    assert found.pop(SIDECAR) == edited
    [tagged] = found
    assert exiftool_tags(ws.target("nas") / tagged)["XMP-dc:Title"] == "Dusk"
    assert exiftool_tags(ws.target("usb") / SIDECAR)["XMP-dc:Title"] == "Dusk"
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_the_librarys_edits_still_reach_the_targets_in_place(
    ws: Workspace, account: Account
) -> None:
    """An item that lives only in the library: its sidecar there, edited by
    the person twice, is copied over the targets' each time (theirs are the
    library's, written there by the tool): never a second one beside."""
    assert ws.run("apply", "--yes", now=NOW).code == 0
    for word in ("Grandma", "Beach"):
        _keyword(ws.library / SIDECAR, word)
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
        for target in ("nas", "usb"):
            assert _xmps(ws.target(target)) == {SIDECAR: (ws.library / SIDECAR).read_bytes()}
    assert exiftool_tags(ws.target("nas") / SIDECAR)["XMP-dc:Subject"] == ["Grandma", "Beach"]
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_only_a_rendering_is_replaced_by_a_rendering(tmp_path: Path) -> None:
    """The rule itself, on a store: exiftool's edit, a keyword added by hand
    to one list of the file, a property render never writes, all kept."""
    write_marker(tmp_path, "nas")
    store = FilesystemStore("nas", tmp_path)
    rel = "2021/06/01/IMG_0001.JPG.xmp"
    old = sidecar.render(_item(title="Dawn", keywords=("Sea",)), SHAS)
    new = sidecar.render(_item(title="Dusk", keywords=("Sea",)), SHAS)
    assert sidecar.is_rendering(old) and sidecar.is_rendering(new)
    store.put_sidecar(rel, old)
    assert store.put_sidecar(rel, new).sha256  # ours, out of date: replaced
    assert (tmp_path / rel).read_bytes() == new
    by_hand = new.replace(b"<rdf:li>Sea</rdf:li>", b"<rdf:li>Sea</rdf:li><rdf:li>Gran</rdf:li>", 1)
    other = new.replace(b"<xmp:Rating>", b"<dc:creator>Me</dc:creator>\n      <xmp:Rating>")
    _keyword(tmp_path / rel, "Grandma")
    for theirs in ((tmp_path / rel).read_bytes(), by_hand, other, new[:-40]):
        assert not sidecar.is_rendering(theirs)
        (tmp_path / rel).write_bytes(theirs)
        with pytest.raises(ForeignFileError, match="kept as it is"):
            store.put_sidecar(rel, old)
        assert (tmp_path / rel).read_bytes() == theirs


@pytest.mark.parametrize(
    "meta,now,then",
    [
        ({"keywords": ("Family|Kids",)}, "Family/Kids", "Family|Kids"),
        ({"albums": ("Trips|Chile",)}, "Albums|Trips/Chile", "Albums|Trips|Chile"),
    ],
    ids=["pipe-keyword", "pipe-album"],
)
def test_a_sidecar_laid_out_by_an_older_release_is_the_tools(
    tmp_path: Path, meta: dict[str, object], now: str, then: str
) -> None:
    """Before 2026-12-01 a "|" in a keyword or an album's name was kept in
    lr:hierarchicalSubject: such a sidecar, untouched since, is the tool's
    and is replaced by a newer rendering, not kept as the person's edit with
    a second, tagged sidecar beside it on every store."""
    write_marker(tmp_path, "nas")
    store = FilesystemStore("nas", tmp_path)
    rel = "2021/06/01/IMG_0001.JPG.xmp"
    current = sidecar.render(_item(title="Dawn", **meta), SHAS)
    older = current.replace(f"<rdf:li>{now}</rdf:li>".encode(), f"<rdf:li>{then}</rdf:li>".encode())
    assert older != current
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(older)
    new = sidecar.render(_item(title="Dusk", **meta), SHAS)
    store.put_sidecar(rel, new)
    assert (tmp_path / rel).read_bytes() == new
    assert [p for p in files_under(tmp_path) if p.endswith(".xmp")] == [rel]
