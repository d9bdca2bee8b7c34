"""An action that needs an item's original bytes (a copy to a target, an
encode for its tier) is planned only when this run can read them. Here the
original is lost: the photo was encoded and off-loaded, then both targets
were replaced by new, empty disks. Every run used to fail copying and
encoding it (``no readable original … anywhere``, "run apply again"), and
the library's encode, the only copy left, went to no disk. Now the loss is
said once (``x lost``) and the encode is archived in the original's place,
under a tagged name, as what it is."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import write_marker
from reconciler.media import read_lineage
from tests.helpers import files_under, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the sample is from 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older: an encode wanted, from the original
LOST = "x lost library:2021/06/01/IMG_1.JPG: its original is on no store any more"


def test_an_original_lost_has_the_librarys_encode_archived_in_its_place(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert files_under(ws.incoming) == {}
    (lib,) = ws.library.rglob("IMG_1.JPG")
    encoded = lib.read_bytes()
    for t in ("nas", "usb"):  # new disks, marked
        shutil.rmtree(ws.target(t))
        write_marker(ws.target(t), t)

    r = ws.run("apply", "--yes", now=T1)
    assert "failed" not in r.out, r.out
    assert r.out.count(LOST) == 1, r.out
    assert r.code == 1 and "held by no" in r.err, r.err  # lost: as a library file gone
    for t in ("nas", "usb"):
        # The best bytes left, as themselves (they say which original they
        # were made from), never under the original's name.
        assert files_under(ws.target(t)) == {"2021/06/01/IMG_1.encoded.JPG": encoded}
        copy = ws.target(t) / "2021/06/01/IMG_1.encoded.JPG"
        assert read_lineage(copy)[0] == hashlib.sha256(original).hexdigest()

    # Converged: a tier change wants an encode from the original, which is
    # lost: nothing to run, the loss said once, nothing touched.
    for now in (T1, T2):
        r = ws.run("apply", "--yes", now=now)
        assert "Nothing to run, but the library does not match" in r.out, r.out
        assert r.out.count(LOST) == 1 and r.code == 1, r.out + r.err
    assert lib.read_bytes() == encoded
    for t in ("nas", "usb"):
        assert files_under(ws.target(t)) == {"2021/06/01/IMG_1.encoded.JPG": encoded}
