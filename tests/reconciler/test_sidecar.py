"""XMP sidecars: pure rendering, our own parse, and exiftool as the outside reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore, files, write_marker
from reconciler import sidecar
from reconciler.errors import ForeignFileError, ProviderError
from reconciler.hashing import sha256_file
from reconciler.model import ItemMetadata, MediaFile, SourceItem

SHAS = {"original": "a" * 64, "edited": "b" * 64}


def _item(**meta: object) -> SourceItem:
    return SourceItem(
        source_id="icloud",
        key="ASSET-1:MASTER-1",
        files=(
            MediaFile(name="IMG_0001.JPG", size=10, ref="original", fingerprint="fp|1"),
            MediaFile(name="IMG|0001-edited.JPG", size=5, ref="edited", role="edited"),
        ),
        captured_at=datetime(2021, 6, 1, 9, 30, tzinfo=UTC),
        metadata=ItemMetadata(
            record_ids=(("AssetId", "ASSET-1"), ("MasterId", "MASTER-1")),
            **meta,  # type: ignore[arg-type]
        ),
    )


def test_the_same_item_renders_the_same_bytes_and_parses_back() -> None:
    item = _item(title="Dawn", albums=("Trip",))
    data = sidecar.render(item, SHAS)
    assert data == sidecar.render(item, SHAS)
    found = sidecar.parse(data)
    assert found is not None
    assert (found.source_id, found.item_key) == ("icloud", "ASSET-1:MASTER-1")
    assert [(f.ref, f.size, f.sha256, f.name) for f in found.files] == [
        ("original", 10, "a" * 64, "IMG_0001.JPG"),
        ("edited", 5, "b" * 64, "IMG|0001-edited.JPG"),
    ]
    assert sidecar.parse(b"<not xml") is None
    assert sidecar.parse(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>") is None


def test_metadata_changes_change_the_digest() -> None:
    plain = sidecar.digest(_item(), SHAS)
    assert sidecar.digest(_item(favorite=True), SHAS) != plain
    assert sidecar.digest(_item(albums=("Trip",)), SHAS) != plain
    assert sidecar.digest(_item(), {**SHAS, "edited": "c" * 64}) != plain


def test_exiftool_reads_every_field(tmp_path: Path) -> None:
    item = _item(
        title='Beach & <"dawn">\x01',
        description="First morning",
        keywords=("sea", "family"),
        albums=("Trip 2023", "Best/Of"),
        favorite=True,
        hidden=True,
        latitude=-33.8568,
        longitude=151.2153,
        altitude=-4.5,
    )
    path = tmp_path / "IMG_0001.JPG.xmp"
    path.write_bytes(sidecar.render(item, SHAS))
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool is needed (make apt)"
    out = subprocess.run(
        [exiftool, "-j", "-n", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    tags = json.loads(out.stdout)[0]
    assert tags["XMP-dc:Title"] == 'Beach & <"dawn">'
    assert tags["XMP-dc:Description"] == "First morning"
    assert tags["XMP-dc:Subject"] == ["sea", "family"]
    assert tags["XMP-lr:HierarchicalSubject"] == [
        "Albums|Trip 2023",
        "Albums|Best|Of",
        "sea",
        "family",
    ]
    assert tags["XMP-xmp:Rating"] == 5
    assert tags["XMP-reconcile:Hidden"] is True
    assert round(tags["XMP-exif:GPSLatitude"], 4) == -33.8568
    assert round(tags["XMP-exif:GPSLongitude"], 4) == 151.2153
    assert tags["XMP-exif:GPSAltitude"] == 4.5 and tags["XMP-exif:GPSAltitudeRef"] == 1
    assert tags["XMP-xmp:CreateDate"] == "2021:06:01 09:30:00+00:00"
    assert tags["XMP-reconcile:AssetId"] == "ASSET-1"
    assert tags["XMP-reconcile:MasterId"] == "MASTER-1"
    assert tags["XMP-reconcile:OriginalSHA256"] == "a" * 64


def test_a_keyword_holding_the_hierarchy_separator_stays_one_level(tmp_path: Path) -> None:
    """``lr:hierarchicalSubject`` splits at "|": a Photos keyword "AC|DC"
    would read as a keyword "DC" under a parent "AC" (digiKam, Lightroom)."""
    path = tmp_path / "IMG_0001.JPG.xmp"
    path.write_bytes(sidecar.render(_item(keywords=("AC|DC", "sea")), SHAS))
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool is needed (make apt)"
    out = subprocess.run(
        [exiftool, "-j", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    tags = json.loads(out.stdout)[0]
    assert tags["XMP-dc:Subject"] == ["AC|DC", "sea"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["AC/DC", "sea"]


def test_an_xmp_this_tool_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """darktable and Lightroom name their sidecars IMG_0001.JPG.xmp too: one
    archived from a folder source is a backup, and ours must not overwrite it."""
    store_root = tmp_path / "nas"
    write_marker(store_root, "nas")
    store = FilesystemStore("nas", store_root)
    rel = "2021/06/01/IMG_0001.JPG.xmp"
    theirs = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><darktable:history/></x:xmpmeta>'
    (store_root / rel).parent.mkdir(parents=True)
    (store_root / rel).write_bytes(theirs)
    ours = sidecar.render(_item(title="Dawn"), SHAS)
    with pytest.raises(ProviderError, match=r"holds an \.xmp this tool did not write"):
        store.put_sidecar(rel, ours)
    assert (store_root / rel).read_bytes() == theirs  # kept, byte for byte
    assert [p.name for p in (store_root / rel).parent.iterdir()] == ["IMG_0001.JPG.xmp"]

    # Our own sidecar, once there, is rewritten when the metadata changes.
    mine = "2021/06/01/IMG_0002.JPG.xmp"
    store.put_sidecar(mine, ours)
    newer = sidecar.render(_item(title="Dusk"), SHAS)
    assert store.put_sidecar(mine, newer).sha256 == sha256_file(store_root / mine)
    assert (store_root / mine).read_bytes() == newer


def test_a_foreign_xmp_appearing_while_ours_is_written_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name was free when checked, and another program took it before
    ours was moved there: ours does not replace it, and the error names the
    file by its store and path."""
    store_root = tmp_path / "nas"
    write_marker(store_root, "nas")
    store = FilesystemStore("nas", store_root)
    rel = "2021/06/01/IMG_0001.JPG.xmp"
    (store_root / rel).parent.mkdir(parents=True)
    theirs = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><darktable:history/></x:xmpmeta>'
    read_back = files.sha256_file

    def meanwhile(path: Path) -> str:
        (store_root / rel).write_bytes(theirs)  # darktable, between check and rename
        return read_back(path)

    monkeypatch.setattr(files, "sha256_file", meanwhile)
    with pytest.raises(ForeignFileError) as caught:
        store.put_sidecar(rel, sidecar.render(_item(title="Dawn"), SHAS))
    assert str(caught.value).startswith(f"nas:{rel} holds an .xmp this tool did not write")
    assert "/proc/" not in str(caught.value)
    assert (store_root / rel).read_bytes() == theirs
    assert [p.name for p in (store_root / rel).parent.iterdir()] == ["IMG_0001.JPG.xmp"]
