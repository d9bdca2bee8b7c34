"""Planner table cases: a file the library made by encoding for an earlier
tier (remembered in ``World.renditions``), found in a source again."""

from __future__ import annotations

import attrs
import pytest

from reconciler.model import CopyToTarget, MediaFile, SourceItem
from reconciler.plan import plan
from tests.reconciler.test_plan import NOW, desired, ids
from tests.reconciler.test_plan_library_items import WHEN, lib, world

X = "1" * 64  # an original
Y = "2" * 64  # its library file now, encoded for "older"
Z = "3" * 64  # what was encoded from it for "recent" before
#: Every kind is encoded in both tiers (HEICs only where a tier says so).
TIERS = [
    {"name": "recent", "max_age_days": 365, "heic_quality": 60},
    {"name": "older", "heic_quality": 50},
]


def back(name: str, sha: str) -> SourceItem:
    return SourceItem(
        source_id="card",
        key=f"phone/{name}",
        files=(MediaFile(name=name, size=9, ref=f"phone/{name}", sha256=sha),),
        captured_at=WHEN,
    )


@pytest.mark.parametrize("name", ["IMG_1.JPG", "IMG_1.HEIC", "CLIP_1.MOV"])
def test_an_earlier_encoding_is_archived_as_it_is_never_imported_nor_encoded(name: str) -> None:
    """Every kind the library encodes: the earlier encoding goes to the
    targets as it is and leaves the source once its own bytes have their
    copies; nothing of it enters the library, nothing is encoded."""
    w = attrs.evolve(
        world((lib(f"2021/01/02/{name}", Y, X, "older"),), items=(back(name, Z),), archived=(X,)),
        renditions={Y: X, Z: X},
    )
    p = plan(desired(tiers=TIERS), w, NOW)
    assert ids(p) == [f"copy:nas:{Z}", f"copy:usb:{Z}", f"remove:card:phone/{name}"]
    assert all(a.sha256 == Z for a in p.actions if isinstance(a, CopyToTarget))
    assert [(n.status, n.subject, n.reason) for n in p.notes] == [
        (
            "skipped",
            f"card:phone/{name}",
            f"an earlier encoding of the library's own 2021/01/02/{name} (now tier older, "
            f"made from original {X[:10]}): archived as it is, never compressed twice",
        )
    ]


def test_an_earlier_encoding_of_an_original_the_library_holds_as_it_is() -> None:
    """The library holds the original itself now (a tier that keeps
    originals): the earlier encoding is still not a second original."""
    w = attrs.evolve(
        world((lib("2021/01/02/IMG_1.JPG", X),), items=(back("IMG_1.JPG", Z),), archived=(X,)),
        renditions={Z: X},
    )
    keep = [{"name": "all", "keep": "original"}]
    p = plan(desired(tiers=keep), w, NOW)
    assert ids(p) == [f"copy:nas:{Z}", f"copy:usb:{Z}", "remove:card:phone/IMG_1.JPG"]
    assert "(now tier original, made from original" in p.notes[0].reason


def test_an_earlier_encoding_whose_original_left_the_library_is_imported() -> None:
    """Nothing in the library keeps that photo any more: the encoding is
    all there is of it here, so it is taken in as an original."""
    w = attrs.evolve(world((), items=(back("IMG_1.JPG", Z),), archived=(X,)), renditions={Z: X})
    p = plan(desired(tiers=TIERS), w, NOW)
    assert ids(p)[0] == f"library:{Z}"
    assert p.notes == ()


def test_without_a_record_the_planner_cannot_tell() -> None:
    """The same world without the record (a lost state DB): the bytes are
    new to the planner, and are imported as an original."""
    w = world((lib("2021/01/02/IMG_1.JPG", Y, X, "older"),), items=(back("IMG_1.JPG", Z),))
    p = plan(desired(tiers=TIERS), w, NOW)
    assert ids(p)[0] == f"library:{Z}"
