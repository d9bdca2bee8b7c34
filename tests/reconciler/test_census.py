"""The census counts items by state from real runs' state databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from providers.filesystem import write_marker
from reconciler import config
from reconciler.census import STATES, census
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
YOUNG = NOW - timedelta(days=5)  # kept in the source for keep_recent_days = 30
OLD = NOW - timedelta(days=400)


def _census(ws: Workspace) -> dict[str, object]:
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        return census(db, desired).to_json()
    finally:
        db.close()


def _items(**counts: int) -> dict[str, int]:
    return {s: counts.get(s, 0) for s in STATES}


def _history(ws: Workspace) -> list[dict[str, object]]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return [c for _, c in db.census_history(10)]
    finally:
        db.close()


def test_items_move_from_the_source_to_two_targets_to_removed(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    young = make_jpeg(ws.incoming / "IMG_1.JPG", YOUNG, seed=1).stat().st_size
    old = make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2).stat().st_size
    assert ws.run("plan", now=NOW).code == 0
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("apply", "--yes", now=NOW + timedelta(days=60)).code == 0
    first, second, third = _history(ws)
    assert first == {
        "items": _items(source_only=2),
        "tiers": {},
        "targets": {"nas": {"files": 0, "bytes": 0}, "usb": {"files": 0, "bytes": 0}},
        "bytes": {"library": 0, "saved_by_compression": 0, "offloaded": 0, "icloud": 0},
        "oldest_unarchived": {"name": "incoming:IMG_2.JPG", "captured_at": OLD.isoformat()},
        "waiting_since": {},
        "saved_by_tier": {},
    }
    both = {"files": 2, "bytes": young + old}
    assert second == {
        "items": _items(archived_2plus=1, removed=1),
        "tiers": {"original": 2},
        "targets": {"nas": both, "usb": both},
        "bytes": {"library": young + old, "saved_by_compression": 0, "offloaded": old, "icloud": 0},
        "oldest_unarchived": None,
        "waiting_since": {},
        "saved_by_tier": {},
    }
    assert third["items"] == _items(removed=2)
    assert third["bytes"] == second["bytes"] | {"offloaded": young + old}
    assert _census(ws) == third  # what the run stored is what is true now


def test_a_target_only_partly_filled_leaves_the_item_on_one(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, stores=("library",))
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 1  # no target has its marker
    assert _census(ws)["items"] == _items(library_only=1)
    write_marker(ws.target("nas"), "nas")
    assert ws.run("apply", "--yes", now=NOW).code == 1  # usb is still not mounted
    got = _census(ws)
    assert got["items"] == _items(archived_1=1)
    day = f"{OLD:%Y/%m/%d}"
    assert got["oldest_unarchived"] == {
        "name": f"{day}/IMG_1.JPG",
        "captured_at": OLD.isoformat(),
    }
    assert got["targets"] == {
        "nas": {"files": 1, "bytes": (ws.target("nas") / day / "IMG_1.JPG").stat().st_size},
        "usb": {"files": 0, "bytes": 0},
    }


def test_a_failed_action_counts_its_item_as_failed_with_its_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", YOUNG, seed=1)
    make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=2)
    blocker = ws.target("nas") / f"{YOUNG:%Y}"
    blocker.symlink_to(tmp_path / "elsewhere")  # nothing is written through a link
    assert ws.run("apply", "--yes", now=NOW).code == 1
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    try:
        got = census(db, desired)
    finally:
        db.close()
    assert got.to_json()["items"] == _items(archived_1=1, removed=1, failed=1)
    [failure] = got.failures
    assert (failure.subject, failure.kind) == ("incoming:IMG_1.JPG", "copy-to-target")
    assert str(blocker) in failure.error
    blocker.unlink()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _census(ws)["items"] == _items(archived_2plus=1, removed=1)


def test_a_delivery_the_phone_has_not_confirmed_is_waiting(tmp_path: Path) -> None:
    phone = """
[targets.nas]
kind = "filesystem"
path = "nas"
same_disk_ok = true
[targets.phone]
kind = "syncthing"
path = "phone"
folder_id = "photos"
device_id = "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA"
url = "http://127.0.0.1:9"
"""
    ws = make_workspace(
        tmp_path, extra=KEEP_ORIGINALS, targets=phone, stores=("library", "nas"), removal=False
    )
    (tmp_path / "phone").mkdir()
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    ws.run("apply", "--yes", now=NOW)  # the phone is unreachable: the NAS only
    assert _census(ws)["items"] == _items(archived_1=1)
    db = StateDB.in_dir(ws.root / "state")
    try:
        [row] = db.lineage().values()
        db.record_delivery("phone", "x/IMG_1.JPG", row.original_sha256, row.size)
        since = db.deliveries_for("phone", "x/IMG_1.JPG")
        assert since is not None
        got = _census(ws)
        assert got["items"] == _items(waiting_phone=1)
        assert got["waiting_since"] == {"phone": since["delivered_at"]}
        nas = {"files": 1, "bytes": row.size}
        assert got["targets"] == {"nas": nas, "phone": {"files": 0, "bytes": 0}}
        phone = "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA/photos"
        db.record_confirmation(
            "phone", "x/IMG_1.JPG", row.original_sha256, row.size, identity=phone
        )
        got = _census(ws)
        assert got["items"] == _items(archived_2plus=1)  # a phone is a disk of its own
        assert got["targets"] == {"nas": nas, "phone": {"files": 1, "bytes": row.size}}
        assert got["waiting_since"] == {}
    finally:
        db.close()


def test_bytes_saved_by_compression_are_broken_down_by_tier(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    originals = {
        "recent": make_jpeg(ws.incoming / "IMG_1.JPG", NOW - timedelta(days=100), seed=1, size=256),
        "older": make_jpeg(ws.incoming / "IMG_2.JPG", NOW - timedelta(days=500), seed=2, size=256),
        "archive": make_jpeg(
            ws.incoming / "IMG_3.JPG", NOW - timedelta(days=2000), seed=3, size=256
        ),
    }
    sizes = {tier: p.stat().st_size for tier, p in originals.items()}
    assert ws.run("apply", "--yes", now=NOW).code == 0
    got = _census(ws)
    library = {p.name: p.stat().st_size for p in ws.library.rglob("IMG_*.JPG")}
    want = {
        tier: sizes[tier] - library[originals[tier].name] for tier in ("archive", "older", "recent")
    }
    assert all(n > 0 for n in want.values())  # each tier's encode made its file smaller
    assert got["saved_by_tier"] == want
    bytes_ = got["bytes"]
    assert isinstance(bytes_, dict) and bytes_["saved_by_compression"] == sum(want.values())
    assert _history(ws)[-1]["saved_by_tier"] == want  # and the run stored it for the report


def test_a_second_items_sidecar_is_found_beside_a_name_holding_a_newline() -> None:
    """``<original>.<item tag>.xmp`` beside an original whose name holds a
    newline (any character but "/" and NUL may be in a name)."""
    from reconciler.census.items import Item, beside

    item = Item("trip\nday/IMG_1.JPG", in_library=True)
    at = {"2021/06/01/trip\nday.JPG": item}
    assert beside("2021/06/01/trip\nday.JPG.xmp", at) is item
    assert beside("2021/06/01/trip\nday.JPG.0123abcd.xmp", at) is item
