"""Lineage in a JPEG whose XMP packet (nearly) fills its segment, as Lightroom
and Photoshop leave them with edit history and padding: the padding is given
up for the lineage, so the encoded copy still says which original it is, and
a lost state database does not take it for one. Checked with exiftool."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import encode_file
from reconciler.media.lineage import XMP_NAMESPACE
from tests.helpers import make_workspace

from .conftest import XMP, XMP_MARKER, make_jpeg

SHA = "ab" * 32
# What one JPEG APP1 segment holds of an XMP packet.
MAX_XMP = 65504


def padded_xmp(room: int) -> bytes:
    """A packet of ``MAX_XMP - room`` bytes, most of it padding (whitespace
    before ``<?xpacket end``, kept by XMP writers for edits in place)."""
    head, tail = XMP.split(b"<?xpacket end=")
    padding = (b" " * 99 + b"\n") * 20  # 2 kB, as Adobe's tools leave
    body = head + padding + b"<?xpacket end=" + tail
    filler = MAX_XMP - room - len(body)
    return body.replace(XMP_MARKER.encode(), XMP_MARKER.encode() + b"x" * filler)


def _exiftool_xmp(path: Path) -> bytes:
    return subprocess.run(
        ["exiftool", "-b", "-XMP", str(path)], capture_output=True, check=True
    ).stdout


def _lineage(xmp: bytes) -> tuple[str | None, str | None]:
    root = ET.fromstring(xmp.rstrip(b"\x00 \t\r\n"))
    for element in root.iter():
        sha = element.get(f"{{{XMP_NAMESPACE}}}original_sha256")
        if sha:
            return sha, element.get(f"{{{XMP_NAMESPACE}}}tier")
    return None, None


def test_padding_is_given_up_for_the_lineage(tmp_path: Path) -> None:
    xmp = padded_xmp(room=60)  # the lineage needs more than 60 bytes
    src = make_jpeg(tmp_path / "IMG_1.JPG", xmp=xmp)
    dst = tmp_path / "out.jpg"
    result = encode_file(
        src, dst, quality=70, crf=None, original_sha256=SHA, tier="t", replaces_size=10**9
    )
    assert result.status == "encoded"
    assert result.reason.endswith("(q70)")
    out = _exiftool_xmp(dst)
    assert len(out) == MAX_XMP
    assert _lineage(out) == (SHA, "t")
    # Only padding went: everything the packet said is there, in order.
    ours = re.compile(rb"<rdf:Description[^>]*xmlns:reconcile=[^>]*/>")
    assert re.sub(rb"\s+", b"", ours.sub(b"", out)) == re.sub(rb"\s+", b"", xmp)
    data = json.loads(subprocess.run(["exiftool", "-j", str(dst)], capture_output=True).stdout)
    assert "Warning" not in data[0]


def test_a_lost_state_database_does_not_take_the_encoded_copy_for_an_original(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws")
    src = make_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480), xmp=padded_xmp(room=60))
    original = hashlib.sha256(src.read_bytes()).hexdigest()
    assert ws.run("apply", "--yes", now=datetime(2021, 12, 1, tzinfo=UTC)).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    encoded = lib.read_bytes()
    assert hashlib.sha256(encoded).hexdigest() != original
    assert _lineage(_exiftool_xmp(lib)) == (original, "recent")
    shutil.rmtree(ws.root / "state")
    plan = ws.run("plan", now=datetime(2021, 12, 1, tzinfo=UTC))
    assert "No changes" in plan.out, plan.out
    assert ws.run("apply", "--yes", now=datetime(2023, 1, 1, tzinfo=UTC)).code == 0
    for target in ("nas", "usb"):
        held = {
            hashlib.sha256(p.read_bytes()).hexdigest() for p in ws.target(target).rglob("*.JPG")
        }
        assert held == {original}, target
    assert _lineage(_exiftool_xmp(lib))[0] == original
