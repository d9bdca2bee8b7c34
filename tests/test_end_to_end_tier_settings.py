"""A tier is known by its name: new settings under the same name apply to
what is encoded from then on; a new name re-encodes, from the originals,
and tries anew what was "not worth it" (README, Compression)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.media import read_lineage
from reconciler.originals import Originals
from tests.helpers import Workspace, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the sample was taken 2021-06-01: 183 days old


def tier(name: str, quality: int) -> str:
    return f'\n[[policy.tiers]]\nname = "{name}"\njpeg_quality = {quality}\n'


def set_tier(ws: Workspace, name: str, quality: int) -> None:
    head = ws.config.read_text().split("[[policy.tiers]]")[0]
    ws.config.write_text(head.rstrip("\n") + "\n" + tier(name, quality))


def test_new_settings_apply_under_a_new_tier_name(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False, extra=tier("recent", 100))
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0 and "not smaller" in r.out, r.out
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert lib.read_bytes() == original  # q100: not worth it, settled for "recent"

    set_tier(ws, "recent", 50)  # the same name: settled, as documented
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0

    set_tier(ws, "recent-q50", 50)
    p = ws.run("plan", now=T1)
    assert p.out.splitlines()[1] == (
        "  ~ encode incoming:IMG_1.JPG (captured 2021-06-01, 0.5 years ago): "
        "tier recent-q50 (quality 50), library has original"
    )
    assert ws.run("apply", "--yes", now=T1).code == 0
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "recent-q50")
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0


def test_a_tier_kept_original_again_restores_the_originals_bytes(tmp_path: Path) -> None:
    # The library file was encoded; the tier now keeps originals: the
    # original comes back from a target, byte for byte, streamed.
    ws = make_workspace(tmp_path / "ws", removal=False, extra=tier("recent", 50))
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (hashlib.sha256(original).hexdigest(), "recent")
    head = ws.config.read_text().split("[[policy.tiers]]")[0]
    ws.config.write_text(
        head.rstrip("\n") + '\n\n[[policy.tiers]]\nname = "recent"\nkeep = "original"\n'
    )

    encoded = lib.read_bytes()
    # Bytes that change between the check and the read (another program
    # writing the target's copy meanwhile) are never restored as the original.
    real = Originals.readable

    @contextmanager
    def changing(self: Originals, sha: str) -> Iterator[Path]:
        with real(self, sha) as path:
            other = tmp_path / "changed.jpg"
            data = bytearray(path.read_bytes())
            data[-10] ^= 1
            other.write_bytes(bytes(data))
            yield other

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Originals, "readable", changing)
        r = ws.run("apply", "--yes", now=T1)
    assert r.code == 1, r.out
    assert "the original's bytes changed while they were read" in r.out
    assert lib.read_bytes() == encoded

    r = ws.run("apply", "--yes", now=T1)

    assert r.code == 0, r.out + r.err
    assert "original restored" in r.out
    assert lib.read_bytes() == original
    assert ws.run("plan", "--detailed-exitcode", now=T1).code == 0
