"""The capture time zone iCloud keeps for an asset (``timeZoneOffset``,
seconds east of UTC) is read into the item's metadata, and the removal's
re-check compares it with the rest: a zone changed since the listing keeps
the asset in iCloud until its sidecar says so."""

from __future__ import annotations

import pytest

from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler.errors import ProviderError
from tests.providers.icloud.conftest import Library
from tests.providers.icloud.test_source import items_by_name

NEW_YORK = -4 * 3600
PARIS = 2 * 3600


def test_the_zone_is_read_and_a_value_no_zone_has_is_none(
    source: ICloudSource, library: Library
) -> None:
    library.jpeg.time_zone_offset = NEW_YORK
    library.live.time_zone_offset = 5 * 3600 + 30 * 60  # India
    library.video.time_zone_offset = None  # no such field, as Apple sends some
    library.twin_a.time_zone_offset = 30  # not whole minutes: no zone is
    library.twin_b.time_zone_offset = 90_000  # more than a day
    offsets = {
        name: [i.metadata.utc_offset for i in items if i.metadata is not None]
        for name, items in items_by_name(source).items()
    }
    assert offsets == {
        "IMG_0001.JPG": [NEW_YORK],
        "IMG_0002.HEIC": [19_800],
        "IMG_0003.MOV": [0],
        "IMG_1234.JPG": [0, 0],
        "SCAN.JPG": [0],
    }


def test_a_zone_adjusted_since_the_listing_stops_the_removal(
    emulator: RunningEmulator, source: ICloudSource, library: Library
) -> None:
    library.jpeg.time_zone_offset = NEW_YORK
    (item,) = items_by_name(source)["IMG_0001.JPG"]
    # "Adjust Date & Time" on a phone: the same moment, taken in Paris.
    emulator.account.adjust_date(library.jpeg, time_zone_offset=PARIS)
    with pytest.raises(
        ProviderError, match=r"metadata changed since it was archived \(utc_offset;"
    ):
        source.remove(item, lambda: None)
    assert not library.jpeg.deleted
    (relisted,) = items_by_name(source)["IMG_0001.JPG"]
    source.remove(relisted, lambda: None)
    assert library.jpeg.deleted


def test_no_zone_and_zone_0_are_the_same(
    emulator: RunningEmulator, source: ICloudSource, library: Library
) -> None:
    library.jpeg.time_zone_offset = None
    (item,) = items_by_name(source)["IMG_0001.JPG"]
    emulator.account.adjust_date(library.jpeg, time_zone_offset=0)
    source.remove(item, lambda: None)
    assert library.jpeg.deleted
