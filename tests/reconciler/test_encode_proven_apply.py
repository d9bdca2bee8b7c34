"""An encode is made from the original it proved, or not at all: a new photo
that takes the original's name after the proof (a camera's counter reset,
a sync) fails the action, to be encoded from the original next run, and is
never encoded in its place with the original's lineage. An encode on a full
library disk says which library file it could not write, and why."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from reconciler.apply.encodes import Encoder
from reconciler.media import read_lineage
from reconciler.originals import Originals
from tests.helpers import make_workspace, mounted
from tests.media.conftest import make_jpeg

RECENT = datetime(2021, 12, 1, tzinfo=UTC)  # the photos are from 2021-06-01
OLDER = datetime(2023, 1, 1, tzinfo=UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_a_photo_that_takes_the_originals_name_after_its_proof_is_not_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, removal=False)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    original = photo.read_bytes()
    assert ws.run("apply", "--yes", now=RECENT).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    other = make_jpeg(tmp_path / "IMG_1.JPG", size=(480, 640)).read_bytes()
    proven = Originals.readable

    @contextmanager
    def readable(self: Originals, sha: str) -> Iterator[Path]:
        with proven(self, sha) as path:
            if path == photo and photo.read_bytes() == original:
                (tmp_path / "new").write_bytes(other)
                os.replace(tmp_path / "new", photo)  # the camera's new IMG_1.JPG
            yield path

    monkeypatch.setattr(Originals, "readable", readable)
    r = ws.run("apply", "--yes", now=OLDER)
    monkeypatch.undo()
    assert r.code == 1, r
    (line,) = [x for x in r.out.splitlines() if x.startswith("  x failed encode")]
    assert line == (
        f"  x failed encode incoming:IMG_1.JPG: incoming:IMG_1.JPG (sha256 {_sha(original)[:12]}, "
        "also nas:2021/06/01/IMG_1.JPG, usb:2021/06/01/IMG_1.JPG): no longer holds the "
        f"original's bytes (now sha256 {_sha(other)[:12]}): another file took its name, or it "
        "changed, before the encode read it; nothing was encoded, and the next run tries again"
    ), line
    assert (_size(lib), read_lineage(lib)) == ((640, 480), (_sha(original), "recent"))
    # Not settled: the next run encodes the original, from a target's copy.
    assert ws.run("apply", "--yes", now=OLDER).code == 0
    assert (_size(lib), read_lineage(lib)) == ((640, 480), (_sha(original), "older"))


def _fill_leaving(folder: Path, spare: int) -> None:
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - spare))


def test_an_encode_on_a_full_library_disk_names_the_file_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    with mounted(root / "library", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as library:
        ws = make_workspace(root)
        original = make_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
        real = Encoder._encoded

        def encoded(self, a, sha, lib, proven=None):  # type: ignore[no-untyped-def]
            _fill_leaving(library, 4096)  # another program fills the library's disk
            return real(self, a, sha, lib, proven)

        monkeypatch.setattr(Encoder, "_encoded", encoded)
        r = ws.run("apply", "--yes", now=RECENT)
        monkeypatch.undo()
        (lib,) = list(library.rglob("IMG_1.JPG"))
        rel = lib.relative_to(library)
        assert r.code == 1, r
        assert (
            f"  x failed encode incoming:IMG_1.JPG: library:{rel}: writing its encoded copy "
            "failed: No space left on device; the library keeps the file, and the next run "
            "encodes it again"
        ) in r.out.splitlines(), r.out
        assert lib.read_bytes() == original
        (library / "filler").unlink()  # the disk is fixed
        assert ws.run("apply", "--yes", now=RECENT).code == 0
        assert read_lineage(lib) == (_sha(original), "recent")
