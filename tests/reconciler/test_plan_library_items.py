"""Planner table cases for what the library holds: its own encoded files
brought back into a source, and Live Photo videos once their item left."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from reconciler.model import (
    CopyToLibrary,
    CopyToTarget,
    Delivery,
    EncodeForTier,
    FileCopy,
    LibraryFile,
    LibraryState,
    MediaFile,
    SourceItem,
    SourceState,
    TargetState,
    World,
)
from reconciler.plan import plan
from tests.reconciler.test_plan import NOW, desired, ids

X, Y = "1" * 64, "2" * 64  # an original, and its library file encoded for "recent"
STILL, LIVE, VIDEO = "3" * 64, "4" * 64, "5" * 64
WHEN = datetime(2021, 1, 2, tzinfo=UTC)
TIERS = [{"name": "recent", "max_age_days": 365}, {"name": "older"}]


def lib(path: str, sha: str, original: str = "", tier: str = "original") -> LibraryFile:
    return LibraryFile(
        path=path,
        sha256=sha,
        original_sha256=original or sha,
        tier=tier,
        size=9,
        captured_at=WHEN,
    )


def world(
    files: tuple[LibraryFile, ...],
    *,
    items: tuple[SourceItem, ...] = (),
    archived: tuple[str, ...] = (),
    tombstones: dict[tuple[str, str], frozenset[str]] | None = None,
) -> World:
    targets = tuple(
        TargetState(
            target_id=t,
            kind="filesystem",
            available=True,
            copies=tuple(
                FileCopy(store_id=t, path=f"p/{s[:4]}", size=9, mtime_ns=1, sha256=s)
                for s in archived
            ),
        )
        for t in ("nas", "usb")
    )
    tombstones = tombstones or {}
    return World(
        observed_at=NOW,
        sources=(SourceState(source_id="card", kind="folder", remote=False, items=items),),
        targets=targets,
        library=LibraryState(available=True, files=files),
        tombstones=tombstones,
        removed_sha256=frozenset().union(*tombstones.values()),
    )


def test_a_library_file_brought_back_is_archived_as_it_is_and_encoded_never() -> None:
    """The source's file is the library's own encoded file: nothing goes
    into the library (the same bytes would land on the very file and make it
    an original), it is not encoded; its original is, once, from itself."""
    back = SourceItem(
        source_id="card",
        key="again/IMG_1.JPG",
        files=(MediaFile(name="IMG_1.JPG", size=9, ref="again/IMG_1.JPG", sha256=Y),),
        captured_at=WHEN,
    )
    w = world((lib("2021/01/02/IMG_1.JPG", Y, X, "recent"),), items=(back,), archived=(X,))
    p = plan(desired(tiers=TIERS), w, NOW)
    assert ids(p) == [
        f"copy:nas:{Y}",
        f"copy:usb:{Y}",
        f"encode:{X}",
        "remove:card:again/IMG_1.JPG",
    ]
    (encode,) = [a for a in p.actions if isinstance(a, EncodeForTier)]
    assert (encode.sha256, encode.subject) == (X, "library:2021/01/02/IMG_1.JPG")
    assert all(a.sha256 == Y for a in p.actions if isinstance(a, CopyToTarget))
    assert [(n.status, n.subject) for n in p.notes] == [("skipped", "card:again/IMG_1.JPG")]


def test_a_live_video_is_known_by_its_removal_whatever_its_name() -> None:
    """A video removed with a still is a Live Photo's video, under any name;
    one removed alone is one only beside a still of its name (a collision tag
    not its own is part of the name)."""
    files = (
        lib("2021/01/02/IMG_1.JPG", STILL),
        lib(f"2021/01/02/IMG_1~{LIVE[:10]}.MOV", LIVE),
        lib(f"2021/01/02/IMG_2~{STILL[:10]}.JPG", "6" * 64),
        lib(f"2021/01/02/IMG_2~{VIDEO[:10]}.MOV", VIDEO),
    )
    tombstones = {
        ("card", "a/IMG_1.JPG"): frozenset({STILL, LIVE}),
        ("card", "IMG_2.JPG"): frozenset({"6" * 64}),
        ("card", "b/IMG_2.MOV"): frozenset({VIDEO}),
    }
    everything = tuple(f.sha256 for f in files)
    p = plan(desired(tiers=TIERS), world(files, archived=everything, tombstones=tombstones), NOW)
    assert ids(p) == [f"encode:{STILL}", f"encode:{'6' * 64}", f"encode:{VIDEO}"]


def test_without_a_record_a_still_of_its_name_says_it_collision_tags_aside() -> None:
    files = (
        lib(f"2021/01/02/IMG_1~{STILL[:10]}.JPG", STILL),
        lib(f"2021/01/02/IMG_1~{LIVE[:10]}.MOV", LIVE),
        lib("2021/01/02/IMG_1~0123456789.MOV", VIDEO),  # not its own tag: another name
    )
    everything = tuple(f.sha256 for f in files)
    p = plan(desired(tiers=TIERS), world(files, archived=everything), NOW)
    assert ids(p) == [f"encode:{STILL}", f"encode:{VIDEO}"]


def _lost(w: World, *gone: LibraryFile) -> World:
    return attrs.evolve(w, library=attrs.evolve(w.library, lost=gone))


def test_a_library_file_gone_is_put_back_from_a_target_then_encoded() -> None:
    """Its row says it was X's file for "older"; nothing in the library
    holds X now, and the targets do: X is placed again, then encoded."""
    w = _lost(world((), archived=(X,)), lib("2021/01/02/IMG_1.JPG", Y, X, "older"))
    p = plan(desired(tiers=TIERS), w, NOW)
    assert ids(p) == [f"library:{X}", f"encode:{X}"]
    put, enc = p.actions
    assert isinstance(put, CopyToLibrary) and isinstance(enc, EncodeForTier)
    assert (put.name, put.size, put.captured_at) == ("IMG_1.JPG", 9, WHEN)
    assert put.reason == "gone from the library; put back from a target's copy"
    assert (enc.tier, enc.depends_on) == ("older", (put.id,))
    assert p.notes == ()


def test_a_library_file_gone_and_on_no_target_waits_for_one_not_read_else_is_lost() -> None:
    gone = lib("2021/01/02/IMG_1.JPG", Y, X, "older")
    read = world(())
    unplugged = attrs.evolve(read, targets=(attrs.evolve(read.targets[0], available=False),))
    notes = [
        [
            (n.status, n.reason)
            for n in plan(desired(tiers=TIERS), _lost(w, gone), NOW).notes
            if n.status != "unavailable"  # (the unplugged target's own note)
        ]
        for w in (unplugged, read)
    ]
    assert notes == [
        [("waiting", "gone from the library; put back once a target holding it is available")],
        [
            (
                "lost",
                "gone from the library, and no target holds it any more; "
                "nothing here can put it back",
            )
        ],
    ]


def test_a_library_file_gone_while_its_source_holds_it_is_placed_from_there_once() -> None:
    card = SourceItem(
        source_id="card",
        key="DCIM/IMG_1.JPG",
        files=(MediaFile(name="IMG_1.JPG", size=9, ref="DCIM/IMG_1.JPG", sha256=X),),
        captured_at=WHEN,
    )
    w = _lost(world((), items=(card,), archived=(X,)), lib("2021/01/02/IMG_1.JPG", Y, X))
    p = plan(desired(tiers=TIERS), w, NOW)
    placing = [a for a in p.actions if isinstance(a, CopyToLibrary)]
    assert [a.subject for a in placing] == ["card:DCIM/IMG_1.JPG"]


KEEP_ORIGINAL = [{"name": "all", "keep": "original"}]


@pytest.mark.parametrize("tiers", [KEEP_ORIGINAL, TIERS], ids=["heavier", "lighter"])
def test_an_encode_whose_original_no_store_holds_waits_or_is_lost(tiers: list[dict]) -> None:
    """Y is X's encode for "recent"; the tier wants another encode (the
    original back for a tier now kept "original", or "older"), made only
    from X, which no store read holds. A target unread (or a source not
    listed): it waits for one. Every store read: X is lost, said once; Y,
    the best left, is archived in its place under a tagged name; nothing
    is encoded."""
    encoded = lib("2021/01/02/IMG_1.JPG", Y, X, "recent")
    read = world((encoded,))
    unplugged = attrs.evolve(read, targets=(attrs.evolve(read.targets[0], available=False),))
    card = read.sources[0]
    unlisted = attrs.evolve(read, sources=(attrs.evolve(card, trusted=False, reachable=False),))
    for w in (unplugged, unlisted):
        waiting = plan(desired(tiers=tiers), w, NOW)
        assert ids(waiting) == []
        assert [(n.status, n.subject) for n in waiting.notes if n.status != "unavailable"] == [
            ("waiting", "library:2021/01/02/IMG_1.JPG")
        ]
    lost = plan(desired(tiers=tiers), read, NOW)
    assert ids(lost) == [f"copy:nas:{Y}", f"copy:usb:{Y}"]
    assert {(a.name, a.size) for a in lost.actions if isinstance(a, CopyToTarget)} == {
        ("IMG_1.encoded.JPG", 9)
    }
    assert [(n.status, n.subject) for n in lost.notes] == [("lost", "library:2021/01/02/IMG_1.JPG")]
    converged = plan(desired(tiers=tiers), world((encoded,), archived=(Y,)), NOW)
    assert ids(converged) == [] and [n.status for n in converged.notes] == ["lost"]


def test_an_original_a_phone_may_hold_waits_for_it() -> None:
    """A phone may hold the original with none of it left on this machine
    (its staging copy freed): that is no reason to say it lost."""
    encoded = lib("2021/01/02/IMG_1.JPG", Y, X, "recent")
    w = world((encoded,))
    phone = attrs.evolve(
        w.targets[1],
        kind="syncthing",
        copies=(FileCopy(store_id="usb", path="p/x", size=9, mtime_ns=1, sha256=X),),
        freed=frozenset({"p/x"}),
    )
    p = plan(desired(tiers=TIERS), attrs.evolve(w, targets=(w.targets[0], phone)), NOW)
    assert ids(p) == []
    assert [n.status for n in p.notes] == ["waiting"]


def _unfetched(**problem: str) -> SourceState:
    """An iCloud source listing one asset not downloaded yet: its content
    is not known this run (it may be any original)."""
    asset = MediaFile(name="IMG_0001.JPG", size=9, ref="original", **problem)
    item = SourceItem(source_id="icloud", key="A1", files=(asset,), captured_at=WHEN)
    return SourceState(source_id="icloud", kind="icloud", remote=True, items=(item,))


def test_an_original_is_not_lost_while_a_source_file_s_content_is_unknown() -> None:
    """Every target read and none holds X, but a source file's content is
    not known yet (an asset not downloaded: its download is planned this
    run; one that could not be read; a file the walk could not read): it
    may be X. X waits, and nothing is archived in its place."""
    encoded = lib("2021/01/02/IMG_1.JPG", Y, X, "recent")
    read = world((encoded,))
    for w in (
        attrs.evolve(read, sources=(*read.sources, _unfetched())),
        attrs.evolve(read, sources=(*read.sources, _unfetched(problem="I/O error"))),
        attrs.evolve(read, unread=1),
    ):
        p = plan(desired(tiers=KEEP_ORIGINAL), w, NOW)
        assert not [a for a in p.actions if isinstance(a, CopyToTarget) and a.sha256 == Y]
        notes = [(n.status, n.subject) for n in p.notes if n.status != "unreadable"]
        assert notes == [("waiting", "library:2021/01/02/IMG_1.JPG")], p.notes
    gone = _lost(attrs.evolve(read, sources=(*read.sources, _unfetched())), encoded)
    assert [n.status for n in plan(desired(tiers=TIERS), gone, NOW).notes] == ["waiting"]


def test_a_phone_read_that_lists_no_copy_of_an_original_does_not_hold_it() -> None:
    """A phone target read this run lists every copy it holds (freed ones
    too) and every delivery on its way: an original it lists neither way
    is not on it, and with every other store read it is lost (its encode
    archived in its place, the phone included). A phone not read, or one
    listing it, may hold it: it waits."""
    encoded = lib("2021/01/02/IMG_1.JPG", Y, X, "recent")
    w = world((encoded,))
    phone = TargetState(target_id="phone", kind="syncthing", available=True)
    lost = plan(desired(tiers=TIERS), attrs.evolve(w, targets=(*w.targets, phone)), NOW)
    assert ids(lost) == [f"copy:nas:{Y}", f"copy:usb:{Y}", f"copy:phone:{Y}"]
    assert [n.status for n in lost.notes] == ["lost"]
    on_its_way = attrs.evolve(phone, pending=(Delivery(sha256=X, path="p/x", delivered_at=NOW),))
    for t in (attrs.evolve(phone, available=False), on_its_way):
        p = plan(desired(tiers=TIERS), attrs.evolve(w, targets=(*w.targets, t)), NOW)
        assert ids(p) == []
        assert [n.reason for n in p.notes if n.status == "lost"] == []
        assert [n.reason.split(" (")[0] for n in p.notes if "its original" in n.reason] == [
            "its original is on no store read this run"
        ]
