"""The kept plan is given again only while each target's disk is judged as
it was: that judgement reads sysfs (a disk image's file and where it lies),
which neither the mount table nor any walked tree shows. A target's image
file moved out of the library (nothing mounted or unmounted) makes it a
backup again: the items waiting in the source leave it, and the kept
answer ("No changes", exit 0) would say they stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers import physical_disks
from providers.filesystem import write_marker
from reconciler import kept_plan, walk_ahead
from reconciler.commands import common
from tests.helpers import KEEP_ORIGINALS, Run, Workspace, ext4_image, make_jpeg, make_workspace

OLD = datetime.now(UTC) - timedelta(days=800)


def _run(ws: Workspace, *args: str) -> Run:
    """As cron runs it: a process of its own, with no sysfs answers kept
    (one process keeps them until the mount table changes)."""
    physical_disks._seen.generation = -1
    return ws.run(*args)


def test_a_targets_image_file_moved_out_of_the_library_plans_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk_ahead, "MIN_STATE_BYTES", 0)  # kept for a library this small
    monkeypatch.setattr(kept_plan, "RACY_S", -3600.0)  # and for files seconds old
    observed: list[int] = []
    real = common.observe

    def counting(*args: Any, **kwargs: Any) -> Any:
        observed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "observe", counting)
    root = tmp_path / "ws"
    stash = root / "library" / "misc" / ".stash"  # a dot-folder: no walk enters it
    outside = tmp_path / "images"
    outside.mkdir()
    with ext4_image(stash / "usb.img", root / "usb"):
        write_marker(root / "usb", "usb")
        ws = make_workspace(root, removal=True, extra=KEEP_ORIGINALS)
        for i in range(3):
            make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
        first = _run(ws, "apply", "--yes")
        assert "image file kept in library" in first.out, first.out
        assert len(list(ws.incoming.glob("*.JPG"))) == 3  # one backup of two: kept
        for _ in range(3):  # the mark, the plan kept, then one given again
            before = len(observed)
            assert _run(ws, "plan", "--detailed-exitcode").code == 0
        assert len(observed) == before, "the set-up: a kept plan is given again"
        (stash / "usb.img").rename(outside / "usb.img")
        try:
            again = _run(ws, "plan", "--detailed-exitcode")
            assert len(observed) == before + 1, "the kept plan was given again"
            assert again.code == 2, again.out
            assert "remove-from-source (3" in again.out, again.out
        finally:
            (outside / "usb.img").rename(stash / "usb.img")  # for the unmount
