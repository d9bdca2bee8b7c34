"""The capture time's zone in the XMP sidecar: the time on the person's
clock with its offset, as exiftool (the outside reader) reads it; and a
sidecar of an item without a zone byte for byte what it always was, so an
upgrade rewrites none of them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import sidecar
from reconciler.model import ItemMetadata, MediaFile, SourceItem

SHAS = {"original": "a" * 64}
#: 23:30 on 1 June 2021 in New York (UTC-4) is 03:30 on 2 June in UTC.
MOMENT = datetime(2021, 6, 2, 3, 30, tzinfo=UTC)
#: ``sidecar.digest`` of ``_item(0)`` as every release before the zone was
#: kept wrote it (times always ``+00:00``).
DIGEST_WITHOUT_ZONE = "dfad9062e754b33e5eddaf2c5b21bbcada66f3b483d1b1c44190d8c121a52628"


def _item(utc_offset: int) -> SourceItem:
    return SourceItem(
        source_id="icloud",
        key="ASSET-1:MASTER-1",
        files=(MediaFile(name="IMG_0001.PNG", size=10, ref="original", fingerprint="fp"),),
        captured_at=MOMENT,
        metadata=ItemMetadata(
            utc_offset=utc_offset, record_ids=(("AssetId", "ASSET-1"), ("MasterId", "MASTER-1"))
        ),
    )


def test_exiftool_reads_the_capture_time_on_the_persons_clock(tmp_path: Path) -> None:
    offsets = {"new-york": -4 * 3600, "kathmandu": 5 * 3600 + 45 * 60, "utc": 0}
    for name, offset in offsets.items():
        (tmp_path / f"{name}.xmp").write_bytes(sidecar.render(_item(offset), SHAS))
    read = subprocess.run(
        ["exiftool", "-j", "-G1", "-XMP:all", *sorted(map(str, tmp_path.glob("*.xmp")))],
        capture_output=True,
        text=True,
        check=True,
    )
    dates = {
        Path(found["SourceFile"]).stem: {
            found["XMP-xmp:CreateDate"],
            found["XMP-photoshop:DateCreated"],
            found["XMP-exif:DateTimeOriginal"],
        }
        for found in json.loads(read.stdout)
    }
    assert dates == {
        "new-york": {"2021:06:01 23:30:00-04:00"},
        "kathmandu": {"2021:06:02 09:15:00+05:45"},
        "utc": {"2021:06:02 03:30:00+00:00"},
    }


def test_without_a_zone_the_sidecar_is_what_it_always_was() -> None:
    assert b"<xmp:CreateDate>2021-06-02T03:30:00+00:00</xmp:CreateDate>" in sidecar.render(
        _item(0), SHAS
    )
    assert sidecar.digest(_item(0), SHAS) == DIGEST_WITHOUT_ZONE


def test_the_zone_is_part_of_the_digest() -> None:
    # A zone set later ("Adjust Date & Time") makes the sidecar stale.
    assert sidecar.digest(_item(2 * 3600), SHAS) != sidecar.digest(_item(-4 * 3600), SHAS)


@pytest.mark.parametrize("bad", [30, 19 * 3600, -19 * 3600, True, 3600.0, "-04:00", None])
def test_an_offset_no_sidecar_can_write_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="utc_offset"):
        ItemMetadata(utc_offset=bad)  # type: ignore[arg-type]
