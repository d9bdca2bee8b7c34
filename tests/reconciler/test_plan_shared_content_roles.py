"""Planner table cases for one piece of content held by several items in
different roles: the same bytes as a Live Photo's video (an edit, a RAW
alternative) and as a plain original. They are planned once, as what is
never encoded, whichever item is listed first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import config
from reconciler.model import (
    CopyToLibrary,
    CopyToTarget,
    EncodeForTier,
    LibraryState,
    MediaFile,
    Plan,
    RemoveFromSource,
    SourceItem,
    SourceState,
    TargetState,
    World,
)
from reconciler.plan import plan

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PAIR_DAY = NOW - timedelta(days=100)  # tier "recent": its originals are encoded
CLIP_DAY = NOW - timedelta(days=50)
STILL, SHARED = "3" * 64, "4" * 64


def desired(max_age_days: int = 0) -> config.DesiredState:
    raw = {
        "library": {"path": "lib"},
        "state": {"dir": "st"},
        "sources": {"card": {"kind": "folder", "path": "card", "max_age_days": max_age_days}},
        "targets": {
            "nas": {"kind": "filesystem", "path": "nas"},
            "usb": {"kind": "filesystem", "path": "usb"},
        },
        "policy": {
            "removal": {"enabled": True, "keep_recent_days": 30},
            "tiers": [{"name": "recent", "max_age_days": 365}, {"name": "older"}],
        },
    }
    return config.parse(raw, name="d.toml", base=Path("/x"))


def pair(role: str, name: str) -> SourceItem:
    """An item whose second file holds SHARED as ``role`` (``name``)."""
    still = MediaFile(name="IMG_1.JPG", size=9, ref="b/IMG_1.JPG", sha256=STILL)
    other = MediaFile(name=name, size=7, ref=f"b/{name}", role=role, sha256=SHARED)
    return SourceItem(
        source_id="card", key="b/IMG_1.JPG", files=(still, other), captured_at=PAIR_DAY
    )


def plain(name: str) -> SourceItem:
    """An item of one original: SHARED again, alone (a copy, another name)."""
    f = MediaFile(name=name, size=7, ref=f"a/{name}", sha256=SHARED)
    return SourceItem(source_id="card", key=f"a/{name}", files=(f,), captured_at=CLIP_DAY)


def world(*items: SourceItem) -> World:
    return World(
        observed_at=NOW,
        sources=(SourceState(source_id="card", kind="folder", remote=False, items=items),),
        targets=tuple(
            TargetState(target_id=t, kind="filesystem", available=True) for t in ("nas", "usb")
        ),
        library=LibraryState(available=True),
    )


def shared(p: Plan) -> list[object]:
    """The plan's actions on SHARED's bytes in the library and the targets."""
    return [
        a
        for a in p.actions
        if isinstance(a, CopyToLibrary | CopyToTarget | EncodeForTier) and a.sha256 == SHARED
    ]


@pytest.mark.parametrize("plain_first", [True, False], ids=["clip-first", "pair-first"])
def test_a_live_photos_video_also_alone_is_placed_as_the_pairs_video_never_encoded(
    plain_first: bool,
) -> None:
    """The clip alone listed before its pair (a/ sorts before b/) decided the
    content's role: the video was placed as clip.MOV, an original, and
    encoded at the tier's CRF, which drops what pairs it with its still."""
    items = (plain("clip.MOV"), pair("live_video", "IMG_1.MOV"))
    p = plan(desired(), world(*(items if plain_first else items[::-1])), NOW)
    acts = shared(p)
    assert [type(a) for a in acts] == [CopyToLibrary, CopyToTarget, CopyToTarget]
    for a in acts:
        assert isinstance(a, CopyToLibrary | CopyToTarget)
        assert (a.subject, a.name, a.captured_at) == ("card:b/IMG_1.MOV", "IMG_1.MOV", PAIR_DAY)
    assert isinstance(acts[0], CopyToLibrary) and acts[0].role == "live_video"
    # The still is encoded as any original; each item leaves once the shared
    # video's copies, made once, are written.
    assert [a.sha256 for a in p.actions if isinstance(a, EncodeForTier)] == [STILL]
    removals = {a.item_key: a.depends_on for a in p.actions if isinstance(a, RemoveFromSource)}
    copies = (f"copy:nas:{SHARED}", f"copy:usb:{SHARED}")
    assert removals["a/clip.MOV"] == copies
    assert set(copies) <= set(removals["b/IMG_1.JPG"])


def test_the_plan_is_the_same_whichever_item_is_listed_first() -> None:
    items = (plain("clip.MOV"), pair("live_video", "IMG_1.MOV"))
    first = plan(desired(), world(*items), NOW)
    second = plan(desired(), world(*items[::-1]), NOW)
    assert sorted(map(repr, first.actions)) == sorted(map(repr, second.actions))


@pytest.mark.parametrize(
    ("role", "name", "alone"),
    [
        ("edited", "IMG_1-edited.JPG", "saved.JPG"),  # an edit saved again as a photo
        ("alternative", "IMG_1.DNG", "IMG_1.DNG"),  # a RAW+JPEG's RAW, and the RAW alone
        ("edit_sidecar", "IMG_1.AAE", "IMG_1.AAE"),
    ],
)
def test_content_held_as_anything_never_encoded_is_planned_as_that(
    role: str, name: str, alone: str
) -> None:
    """The library remembers the role it is placed with: once both items
    left their source, only that keeps it from being encoded."""
    p = plan(desired(), world(plain(alone), pair(role, name)), NOW)
    acts = shared(p)
    assert [type(a) for a in acts] == [CopyToLibrary, CopyToTarget, CopyToTarget]
    assert isinstance(acts[0], CopyToLibrary)
    assert (acts[0].role, acts[0].name, acts[0].subject) == (role, name, f"card:b/{name}")


def test_a_holder_this_run_does_not_plan_decides_nothing() -> None:
    """A pair older than the source's max_age_days is not the run's to
    handle: the clip alone is planned as the original it is."""
    old_pair = pair("live_video", "IMG_1.MOV")
    p = plan(desired(max_age_days=80), world(plain("clip.MOV"), old_pair), NOW)
    acts = shared(p)
    assert [type(a) for a in acts] == [CopyToLibrary, CopyToTarget, CopyToTarget, EncodeForTier]
    assert isinstance(acts[0], CopyToLibrary)
    assert (acts[0].role, acts[0].name) == ("original", "clip.MOV")
