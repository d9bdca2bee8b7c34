"""An .xmp this tool did not write, at the very name an iCloud item's sidecar
would take (darktable and Lightroom name theirs ``IMG_0001.JPG.xmp`` too).

It is someone's file, so it is never replaced; and the item is not held
back forever by it either: its sidecar goes beside it under the item's own
tagged name, the item converges and is off-loaded, and the foreign file
stays byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from reconciler import sidecar
from reconciler.layout import dated_path
from tests.helpers import Workspace, exiftool_tags, files_under, make_jpeg

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
THEIRS = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><darktable:history/></x:xmpmeta>'


@pytest.fixture
def account() -> Account:
    return Account()


def _title(path: Path) -> str:
    return str(exiftool_tags(path)["XMP-dc:Title"])


def _sidecars(root: Path) -> dict[str, bytes]:
    return {p: b for p, b in files_under(root).items() if p.endswith(".xmp")}


@pytest.mark.parametrize("where", ["library", "nas", "every store"])
def test_a_foreign_xmp_at_the_sidecar_name_does_not_block_the_item(
    ws: Workspace, account: Account, tmp_path: Path, where: str
) -> None:
    photo = make_jpeg(tmp_path / "a.jpg", OLD, seed=3).read_bytes()
    account.add_asset(photo, "IMG_0001.JPG", asset_date=OLD, caption="Dawn")

    # Where the sidecar would go: beside the original, which every store
    # lays out by capture date.
    stores = ["library", "nas", "usb"] if where == "every store" else [where]
    roots = {s: ws.library if s == "library" else ws.target(s) for s in stores}
    rel = dated_path(OLD, "IMG_0001.JPG") + ".xmp"
    for root in roots.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(THEIRS)

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert account.live_assets() == []  # off-loaded: its metadata is archived
    for root in roots.values():
        found = _sidecars(root)
        assert found.pop(rel) == THEIRS  # kept, byte for byte
        [(tagged, ours)] = found.items()  # and ours beside it, under the item's tag
        assert tagged.startswith(rel[: -len(".xmp")] + ".") and tagged.endswith(".xmp")
        assert _title(root / tagged) == "Dawn"  # read by exiftool
        parsed = sidecar.parse(ours)
        assert parsed is not None and parsed.source_id == "icloud"
    if "library" in roots:  # the person's file, archived as any: on every target
        for target in ("nas", "usb"):
            assert _sidecars(ws.target(target))[rel] == THEIRS
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    # And again: nothing is rewritten, the foreign file still stands.
    assert ws.run("apply", "--yes", now=NOW).code == 0
    for root in roots.values():
        assert _sidecars(root)[rel] == THEIRS


def test_the_tagged_sidecar_follows_later_metadata_changes(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """A recent photo stays in iCloud, so its title can change after its
    sidecar went beside a foreign one: the tagged sidecar is rewritten in
    place (no second one), and the foreign file is still never touched."""
    recent = datetime(2026, 11, 20, 9, tzinfo=UTC)
    photo = make_jpeg(tmp_path / "a.jpg", recent, seed=4).read_bytes()
    asset = account.add_asset(photo, "IMG_0002.JPG", asset_date=recent, caption="Dawn")
    rel = dated_path(recent, "IMG_0002.JPG") + ".xmp"
    (ws.library / rel).parent.mkdir(parents=True)
    (ws.library / rel).write_bytes(THEIRS)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    account.describe(asset, caption="Dusk")
    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2 and "sidecar missing or out of date" in p.out, p.out
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert len(account.live_assets()) == 1  # recent: kept in iCloud
    found = _sidecars(ws.library)
    assert found.pop(rel) == THEIRS
    [tagged] = found
    assert _title(ws.library / tagged) == "Dusk"
    for target in ("nas", "usb"):  # the foreign file archived there too, as it is
        held = _sidecars(ws.target(target))
        assert held.pop(rel) == THEIRS
        assert list(held) == [tagged]
        assert _title(ws.target(target) / tagged) == "Dusk"
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_foreign_files_at_both_names_are_kept_and_the_write_fails_named(
    ws: Workspace, account: Account, tmp_path: Path
) -> None:
    """Another program took the tagged name too (it rewrote our sidecar in its
    own format): there is no third name to try. Nothing of theirs is
    replaced; the write fails every run, naming the file. Both of theirs
    are archived as they are, and on the targets, where the tool's
    sidecar keeps its tagged name, only that sidecar is rewritten."""
    recent = datetime(2026, 11, 20, 9, tzinfo=UTC)
    photo = make_jpeg(tmp_path / "a.jpg", recent, seed=5).read_bytes()
    asset = account.add_asset(photo, "IMG_0003.JPG", asset_date=recent, caption="Dawn")
    rel = dated_path(recent, "IMG_0003.JPG") + ".xmp"
    (ws.library / rel).parent.mkdir(parents=True)
    (ws.library / rel).write_bytes(THEIRS)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    [tagged] = [p for p in _sidecars(ws.library) if p != rel]
    rewritten = THEIRS.replace(b"history", b"history-2")
    (ws.library / tagged).write_bytes(rewritten)  # no longer ours
    targets = {t: files_under(ws.target(t)) for t in ("nas", "usb")}
    account.describe(asset, caption="Dusk")

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 1, r.out + r.err
    assert f"library:{tagged} holds an .xmp this tool did not write" in r.out
    assert _sidecars(ws.library) == {rel: THEIRS, tagged: rewritten}
    for target in ("nas", "usb"):  # rewritten there, nothing else touched
        now_there = files_under(ws.target(target))
        assert now_there[rel] == THEIRS
        assert _title(ws.target(target) / tagged) == "Dusk"
        # Their rewrite is archived too, beside the tool's sidecar, never over it.
        [kept] = [k for k, v in now_there.items() if v == rewritten]
        assert kept not in (rel, tagged) and kept.endswith(".xmp")
        assert {k: v for k, v in now_there.items() if k not in (tagged, kept)} == {
            k: v for k, v in targets[target].items() if k != tagged
        }
    assert len(account.live_assets()) == 1
