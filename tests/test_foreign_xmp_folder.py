"""Another program's .xmp archived from a folder source (darktable's
``IMG_0001.JPG.xmp`` beside its photo): the person's file, kept on the
required number of targets, put back in the library, and counted by the
census as any file, once its source is emptied too. Only the tool's own
sidecars are written again from an item's metadata; this one is not the
tool's, so a lost copy of it is copied again from one that is left."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import KEEP_ORIGINALS, Workspace, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, 30, tzinfo=UTC)
REL = "2021/06/01/IMG_0001.JPG.xmp"
#: What darktable writes beside a photo: XMP, not the tool's.
THEIRS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
    b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:darktable="http://darktable.sf.net/" darktable:history_end="7"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _offloaded(tmp_path: Path) -> Workspace:
    """A photo and darktable's .xmp, archived to nas and usb and removed
    from the folder (both older than ``keep_recent_days``)."""
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_0001.JPG", OLD, seed=1)
    xmp = ws.incoming / "IMG_0001.JPG.xmp"
    xmp.write_bytes(THEIRS)
    os.utime(xmp, (OLD.timestamp(), OLD.timestamp()))
    for _ in range(2):
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    for store in ("library", "nas", "usb"):
        assert files_under(ws.target(store))[REL] == THEIRS, store
    return ws


def test_a_copy_lost_on_a_target_is_copied_again(tmp_path: Path) -> None:
    ws = _offloaded(tmp_path)
    (ws.target("usb") / REL).unlink()

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out + p.err
    assert f"copy-to-target[usb] library:{REL}: no verified copy on usb" in p.out
    # Down to one copy: said so, and no claim of every item archived.
    st = ws.run("status", now=NOW).out
    assert "1 archived on 1 target" in st and "1 removed from their source" in st, st
    assert "every item is archived" not in st, st

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in ("library", "nas", "usb"):
        assert files_under(ws.target(store))[REL] == THEIRS, store
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    st = ws.run("status", now=NOW).out
    assert "2 removed from their source" in st and "every item is archived" in st, st


def test_a_file_lost_in_the_library_is_put_back(tmp_path: Path) -> None:
    ws = _offloaded(tmp_path)
    (ws.library / REL).unlink()

    p = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert p.code == 2, p.out + p.err
    assert f"copy-to-library library:{REL}: gone from the library; put back" in p.out

    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for store in ("library", "nas", "usb"):
        assert files_under(ws.target(store))[REL] == THEIRS, store
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    st = ws.run("status", now=NOW).out
    assert "2 removed from their source" in st and "every item is archived" in st, st


@pytest.mark.parametrize("lost_on", ["usb", "library"])
def test_the_person_s_xmp_is_repaired_as_a_photo_is(tmp_path: Path, lost_on: str) -> None:
    """The contrast: the photo beside it, lost the same way, comes back the
    same way."""
    ws = _offloaded(tmp_path)
    photo = "2021/06/01/IMG_0001.JPG"
    kept = files_under(ws.target("nas"))[photo]
    (ws.target(lost_on) / photo).unlink()
    (ws.target(lost_on) / REL).unlink()
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    held = files_under(ws.target(lost_on))
    assert (held[photo], held[REL]) == (kept, THEIRS)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
