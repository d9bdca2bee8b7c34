"""``status`` and the census never call an item safe that holds fewer proven
copies than ``policy.copies``: off-loaded or not, whatever made it so (a
copy deleted by hand, the requirement raised, two targets found to share a
disk, a target not mounted now, a phone that failed its canary)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from providers.filesystem import MARKER, write_marker
from providers.syncthing.pair import SyncthingPair
from tests.helpers import KEEP_ORIGINALS, Workspace, make_jpeg, make_workspace, phone_workspace

OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
YOUNG = datetime(2026, 11, 20, 9, tzinfo=UTC)  # kept in the source (keep_recent_days = 30)
HEADLINE = "every item is archived (2 copies required) or off-loaded"


def _items(ws: Workspace) -> dict[str, int]:
    r = ws.run("status", "--json", now=NOW)
    assert r.code == 0, r.err
    items: dict[str, int] = json.loads(r.out)["census"]["items"]
    return {state: n for state, n in items.items() if n}


def _census_lines(ws: Workspace) -> list[str]:
    """The status lines from the items to the runs (the census and the headline)."""
    r = ws.run("status", now=NOW)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("items: "))
    return lines[start : lines.index("last runs:")]


def _archived(ws: Workspace, *names: str) -> None:
    for seed, name in enumerate(names, 1):
        make_jpeg(ws.incoming / name, OLD, seed=seed)
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert _items(ws) == {"removed": len(names)}
    assert HEADLINE in ws.run("status", now=NOW).out


def test_an_offloaded_item_that_lost_a_copy_is_archived_on_one_not_removed(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG", "IMG_2.JPG")
    next(ws.target("nas").rglob("IMG_1.JPG")).unlink()
    plan = ws.run("plan", now=NOW)
    assert "+ copy-to-target[nas] library:2021/06/01/IMG_1.JPG: no verified copy on nas" in plan.out
    assert _items(ws) == {"archived_1": 1, "removed": 1}
    lines = _census_lines(ws)
    assert lines[0] == (
        "items: 0 in a source only, 0 in the library only, 1 archived on 1 target, "
        "0 on 2+ targets, 0 waiting on the phone, 1 removed from their source, 0 failed"
    )
    assert lines[-1] == "oldest not yet archived: 2021/06/01/IMG_1.JPG, captured 2021-06-01"
    assert HEADLINE not in lines
    # copied again, it is safe again
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _items(ws) == {"removed": 2}
    assert HEADLINE in ws.run("status", now=NOW).out


def test_an_offloaded_item_that_lost_every_copy_is_in_the_library_only(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG")
    for store in ("nas", "usb"):
        next(ws.target(store).rglob("IMG_1.JPG")).unlink()
    assert ws.run("plan", now=NOW).code == 0
    assert _items(ws) == {"library_only": 1}
    assert HEADLINE not in ws.run("status", now=NOW).out


def test_an_item_in_its_source_that_lost_a_copy_is_archived_on_one(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", YOUNG, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert _items(ws) == {"archived_2plus": 1}
    next(ws.target("usb").rglob("IMG_1.JPG")).unlink()
    assert ws.run("plan", now=NOW).code == 0
    assert _items(ws) == {"archived_1": 1}
    assert HEADLINE not in ws.run("status", now=NOW).out


def test_raising_the_required_copies_takes_offloaded_items_out_of_removed(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG")
    third = '[targets.usb2]\nkind = "filesystem"\npath = "usb2"\nsame_disk_ok = true\n'
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 3") + third)
    write_marker(ws.target("usb2"), "usb2")
    assert "+ copy-to-target[usb2] library:2021/06/01/IMG_1.JPG" in ws.run("plan", now=NOW).out
    assert _items(ws) == {"archived_2plus": 1}  # two copies of the three now required
    lines = _census_lines(ws)
    assert lines[-1] == "oldest not yet archived: 2021/06/01/IMG_1.JPG, captured 2021-06-01"
    assert not any(line.startswith("every item is archived") for line in lines)


def test_targets_found_on_one_disk_no_longer_make_an_item_removed(tmp_path: Path) -> None:
    """Without same_disk_ok the two targets (and the library) share one disk:
    not a backup at all, as the removal gate counts them."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG")
    ws.config.write_text(ws.config.read_text().replace("same_disk_ok = true\n", ""))
    assert ws.run("plan", now=NOW).code == 0
    assert _items(ws) == {"library_only": 1}
    assert HEADLINE not in ws.run("status", now=NOW).out


def test_with_one_copy_required_one_target_is_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS, removal=False)
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", "--target", "nas", now=NOW).code == 0
    assert _items(ws) == {"archived_1": 1}
    assert _census_lines(ws)[-1] == "every item is archived (1 copy required) or off-loaded"


def test_a_target_not_mounted_now_proves_nothing(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG")
    (ws.target("nas") / MARKER).unlink()  # the disk is unplugged: its folder is bare
    assert ws.run("plan", now=NOW).code == 1
    lines = _census_lines(ws)
    assert HEADLINE not in lines
    assert lines[-1] == (
        f"not proven now: nas cannot be read ({ws.target('nas')} has no marker of it: not "
        "mounted?); the counts above take the copies there as last recorded"
    )
    r = ws.run("init-target", str(ws.target("nas")), "--id", "nas")  # plugged in again
    assert r.code == 0, r.err
    # not proven until a run reads it again (the last one could not)
    assert HEADLINE not in ws.run("status", now=NOW).out
    assert ws.run("plan", now=NOW).code == 0
    assert HEADLINE in ws.run("status", now=NOW).out


def test_a_phone_that_failed_its_canary_proves_nothing(tmp_path: Path, pair: SyncthingPair) -> None:
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 2\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    deadline = time.monotonic() + 30
    while _items(ws) != {"removed": 1} and time.monotonic() < deadline:
        assert ws.run("apply", "--yes", now=NOW).code == 0
        time.sleep(0.2)
    assert _items(ws) == {"removed": 1}
    assert HEADLINE in ws.run("status", now=NOW).out
    pair.stop_phone()
    assert ws.run("plan", now=NOW).code == 0  # the canary fails: the phone is away
    lines = _census_lines(ws)
    assert HEADLINE not in lines
    assert (
        "not proven now: phone failed its last canary; the counts above take the copies "
        "there as last recorded" in lines
    )


def test_two_targets_copies_made_one_file_count_once(tmp_path: Path) -> None:
    """A deduplicating tool hard-links the two targets' copies on the disk
    they share (``same_disk_ok``): one file is one copy, as the gate counts
    it. Off-loaded, the item is archived on one target, not removed; the
    plan says why and copies nothing again; a copy of its own counts again."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    _archived(ws, "IMG_1.JPG", "IMG_2.JPG")
    nas_copy = next(ws.target("nas").rglob("IMG_1.JPG"))
    usb_copy = next(ws.target("usb").rglob("IMG_1.JPG"))
    photo = usb_copy.read_bytes()
    usb_copy.unlink()
    os.link(nas_copy, usb_copy)  # as `jdupes -L` would
    plan = ws.run("plan", now=NOW)
    assert plan.code == 0, plan.err
    assert "copy-to-target" not in plan.out, plan.out
    assert (
        "target usb: its copies of 1 file are the same file as another's (hard links" in plan.out
    ), plan.out
    assert _items(ws) == {"archived_1": 1, "removed": 1}
    assert HEADLINE not in ws.run("status", now=NOW).out
    usb_copy.unlink()
    usb_copy.write_bytes(photo)
    assert ws.run("plan", now=NOW).code == 0
    assert _items(ws) == {"removed": 2}
    assert HEADLINE in ws.run("status", now=NOW).out
