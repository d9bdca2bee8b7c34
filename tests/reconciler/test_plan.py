"""Planner table cases: desired + world -> exact actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from reconciler import config
from reconciler.model import (
    Delivery,
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
from reconciler.plan.tiers import tier_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
A, B = "a" * 64, "b" * 64


def desired(**policy: Any) -> config.DesiredState:
    raw = {
        "library": {"path": "lib"},
        "state": {"dir": "st"},
        "sources": {"card": {"kind": "folder", "path": "card"}},
        "targets": {
            "nas": {"kind": "filesystem", "path": "nas"},
            "usb": {"kind": "filesystem", "path": "usb"},
        },
        "policy": {
            "removal": {"enabled": True, "keep_recent_days": 30},
            "tiers": [{"name": "all", "keep": "original"}],
            **policy,
        },
    }
    return config.parse(raw, name="d.toml", base=Path("/x"))


def item(key: str, sha: str | None, when: datetime | None = OLD, name: str = "") -> SourceItem:
    f = MediaFile(name=name or key, size=100, ref=key, sha256=sha)
    return SourceItem(source_id="card", key=key, files=(f,), captured_at=when)


def copy(store: str, sha: str) -> FileCopy:
    return FileCopy(store_id=store, path=f"p/{sha[:4]}", size=100, mtime_ns=1, sha256=sha)


def world(
    items: tuple[SourceItem, ...],
    *,
    nas: tuple[str, ...] = (),
    usb: tuple[str, ...] = (),
    library: tuple[str, ...] = (),
    remote: bool = False,
    usb_available: bool = True,
    trusted: bool = True,
    known: dict[tuple[str, str, str], str] | None = None,
) -> World:
    return World(
        observed_at=NOW,
        sources=(
            SourceState(
                source_id="card",
                kind="folder",
                remote=remote,
                items=items,
                trusted=trusted,
                problem="" if trusted else "listing came back empty",
            ),
        ),
        targets=(
            TargetState(
                target_id="nas",
                kind="filesystem",
                available=True,
                copies=tuple(copy("nas", s) for s in nas),
            ),
            TargetState(
                target_id="usb",
                kind="filesystem",
                available=usb_available,
                copies=tuple(copy("usb", s) for s in usb),
                problem="" if usb_available else "no marker",
            ),
        ),
        library=LibraryState(
            available=True,
            files=tuple(
                LibraryFile(path=f"l/{s[:4]}", sha256=s, original_sha256=s, tier="original", size=1)
                for s in library
            ),
        ),
        known_sha256=known or {},
    )


def ids(p: Any) -> list[str]:
    return [a.id for a in p.actions]


def test_new_item_is_copied_everywhere_then_removed_after_the_copies() -> None:
    p = plan(desired(), world((item("x.jpg", A),)), NOW)
    assert ids(p) == [f"library:{A}", f"copy:nas:{A}", f"copy:usb:{A}", "remove:card:x.jpg"]
    assert p.actions[-1].depends_on == (f"copy:nas:{A}", f"copy:usb:{A}")


def test_converged_world_plans_nothing() -> None:
    w = world((), nas=(A,), usb=(A,), library=(A,))
    p = plan(desired(), w, NOW)
    assert p.actions == () and p.notes == ()


def test_archived_item_is_removed_without_dependencies() -> None:
    p = plan(desired(), world((item("x", A),), nas=(A,), usb=(A,), library=(A,)), NOW)
    assert ids(p) == ["remove:card:x"]
    assert p.actions[0].depends_on == ()


def test_recent_item_is_archived_but_kept_in_the_source() -> None:
    p = plan(desired(), world((item("x", A, NOW - timedelta(days=3)),)), NOW)
    assert ids(p) == [f"library:{A}", f"copy:nas:{A}", f"copy:usb:{A}"]


def test_unavailable_target_gets_nothing_and_blocks_removal() -> None:
    p = plan(desired(), world((item("x", A),), nas=(A,), library=(A,), usb_available=False), NOW)
    assert ids(p) == []
    assert [(n.status, n.subject) for n in p.notes] == [
        ("unavailable", "target usb"),
        ("waiting", "card:x"),
    ]
    assert p.notes[1].reason == "1 of 2 verified copies; kept in the source"


def test_untrusted_listing_archives_but_never_removes() -> None:
    p = plan(
        desired(), world((item("x", A),), nas=(A,), usb=(A,), library=(A,), trusted=False), NOW
    )
    assert ids(p) == []
    assert p.notes[0].status == "blocked"


def test_remote_file_is_downloaded_first_and_everything_depends_on_it() -> None:
    p = plan(desired(), world((item("r", None),), remote=True), NOW)
    dl = "download:card:r:r"
    assert ids(p) == [dl, "copy:nas:card:r:r", "copy:usb:card:r:r", "remove:card:r"]
    assert p.actions[1].depends_on == (dl,)
    assert p.actions[3].depends_on == ("copy:nas:card:r:r", "copy:usb:card:r:r")


def test_known_download_is_not_repeated() -> None:
    w = world((item("r", None),), remote=True, library=(A,), known={("card", "r", "r"): A})
    assert ids(plan(desired(), w, NOW)) == [f"copy:nas:{A}", f"copy:usb:{A}", "remove:card:r"]


def test_duplicate_content_is_copied_once() -> None:
    p = plan(desired(), world((item("x", A), item("y", A)), nas=(A,), usb=(A,)), NOW)
    assert ids(p) == [f"library:{A}", "remove:card:x", "remove:card:y"]


def test_unknown_capture_date_is_kept_in_the_source() -> None:
    p = plan(desired(), world((item("x", A, None),), nas=(A,), usb=(A,), library=(A,)), NOW)
    assert ids(p) == []
    assert p.notes[0].reason == "capture date unknown; kept in the source"


def test_deletion_budget_by_count_and_bytes() -> None:
    d = desired(removal={"enabled": True, "max_items_per_run": 1, "max_bytes_per_run": 150})
    w = world((item("x", A), item("y", B)), nas=(A, B), usb=(A, B), library=(A, B))
    p = plan(d, w, NOW)
    assert ids(p) == ["remove:card:x"]
    assert p.notes[0].reason == "deletion budget for this run reached; next run"


def test_an_item_larger_than_the_byte_budget_goes_alone() -> None:
    """It waited for ever, each run promising the next (a 4K clip under a
    "500 MiB" budget); now it is a run's first removal, and alone."""
    d = desired(removal={"enabled": True, "max_bytes_per_run": 50})
    w = world((item("x", A), item("y", B)), nas=(A, B), usb=(A, B), library=(A, B))
    p = plan(d, w, NOW)
    assert ids(p) == ["remove:card:x"]
    assert p.notes[0].reason == "deletion budget for this run reached; next run"


def test_a_byte_budget_of_zero_removes_nothing() -> None:
    d = desired(removal={"enabled": True, "max_bytes_per_run": 0})
    w = world((item("x", A),), nas=(A,), usb=(A,), library=(A,))
    p = plan(d, w, NOW)
    assert ids(p) == []
    assert p.notes[0].reason == "the deletion budget is 0; nothing is removed"


def test_removal_disabled_plans_no_removal() -> None:
    d = desired(removal={"enabled": False})
    assert ids(plan(d, world((item("x", A),), nas=(A,), usb=(A,), library=(A,)), NOW)) == []


def test_phone_copy_counts_only_once_confirmed() -> None:
    w = world((item("x", A),), nas=(A,), library=(A,))
    phone = TargetState(
        target_id="usb",
        kind="syncthing",
        available=True,
        pending=(Delivery(sha256=A, path="x", delivered_at=NOW),),
    )
    w = World(
        observed_at=NOW,
        sources=w.sources,
        targets=(w.targets[0], phone),
        library=w.library,
    )
    p = plan(desired(), w, NOW)
    assert ids(p) == []
    assert (
        p.notes[0].reason
        == "1 of 2 verified copies; waiting for usb to confirm; kept in the source"
    )


@pytest.mark.parametrize(
    ("days", "tier"),
    [(0, "recent"), (364, "recent"), (365, "older"), (1094, "older"), (1095, "archive")],
)
def test_tier_arithmetic(days: int, tier: str) -> None:
    tiers = config.DEFAULT_TIERS
    found = tier_for(tiers, NOW - timedelta(days=days), NOW)
    assert found is not None and found.name == tier
    assert tier_for(tiers, None, NOW) is None


def test_encode_for_tier_and_aging_into_a_heavier_tier() -> None:
    d = desired(
        tiers=[{"name": "recent", "max_age_days": 365}, {"name": "old", "jpeg_quality": 60}]
    )
    lib = LibraryFile(path="l", sha256="e" * 64, original_sha256=A, tier="recent", size=1)
    w = world((item("x.jpg", A, NOW - timedelta(days=100)),), nas=(A,), usb=(A,))
    w = World(
        observed_at=NOW,
        sources=w.sources,
        targets=w.targets,
        library=LibraryState(available=True, files=(lib,)),
    )
    assert ids(plan(d, w, NOW)) == ["remove:card:x.jpg"]
    later = NOW + timedelta(days=300)
    p = plan(d, w, later)
    assert ids(p) == [f"encode:{A}", "remove:card:x.jpg"]
    assert p.actions[0].tier == "old" and p.actions[0].quality == 60


def test_same_inputs_same_plan() -> None:
    w = world((item("x", A), item("y", B)))
    assert plan(desired(), w, NOW) == plan(desired(), w, NOW)


def test_library_items_keep_their_copies_and_live_videos_stay_original() -> None:
    d = desired(tiers=[{"name": "all", "video_crf": 30, "heic_quality": 85}])
    files = (
        LibraryFile(
            path="2021/01/02/IMG_1.HEIC",
            sha256="1" * 64,
            original_sha256="1" * 64,
            tier="original",
            size=9,
        ),
        LibraryFile(
            path="2021/01/02/IMG_1.MOV",
            sha256="2" * 64,
            original_sha256="2" * 64,
            tier="original",
            size=9,
        ),
        LibraryFile(
            path="2021/01/02/VID_2.MOV",
            sha256="3" * 64,
            original_sha256="3" * 64,
            tier="original",
            size=9,
        ),
    )
    w = world((), nas=("1" * 64, "2" * 64, "3" * 64), usb=("1" * 64, "2" * 64))
    w = World(
        observed_at=NOW,
        sources=w.sources,
        targets=w.targets,
        library=LibraryState(available=True, files=files),
    )
    p = plan(d, w, NOW)
    assert ids(p) == [f"copy:usb:{'3' * 64}", f"encode:{'1' * 64}", f"encode:{'3' * 64}"]
    assert p.actions[1].reason == ("tier all (quality 85), library has original")


def test_heics_stay_as_they_are_in_a_tier_without_heic_quality() -> None:
    # A phone's HEIC re-encoded at q75 or above comes out larger: by default
    # only the archive tier (q50) re-encodes HEICs.
    files = tuple(
        LibraryFile(
            path=f"2021/01/02/IMG_{n}.{ext}",
            sha256=str(n) * 64,
            original_sha256=str(n) * 64,
            tier="original",
            size=9,
        )
        for n, ext in ((1, "HEIC"), (2, "JPG"))
    )
    w = world((), nas=("1" * 64, "2" * 64), usb=("1" * 64, "2" * 64))
    w = World(
        observed_at=NOW,
        sources=w.sources,
        targets=w.targets,
        library=LibraryState(available=True, files=files),
    )
    d = desired(tiers=[{"name": "recent", "max_age_days": 3000}, {"name": "old"}])
    assert ids(plan(d, w, NOW)) == [f"encode:{'2' * 64}"]
    defaults = attrs.evolve(d, policy=attrs.evolve(d.policy, tiers=config.DEFAULT_TIERS))
    archive = plan(defaults, w, NOW)
    assert [a.reason for a in archive.actions] == [
        "tier archive (quality 50), library has original",
        "tier archive (quality 65), library has original",
    ]
