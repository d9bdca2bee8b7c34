"""A file a removal set aside (``<name>.reconcile-removing-<token>``) always
gets its whole name back: after a killed run, by the first apply that can
reach its card (not only the one right after the kill), and after a live
run that could not put it back (the card turned read-only after the gate),
whose failure says where the photo is meanwhile. A name too long to be
carried whole aside comes back whole too."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers import folder
from reconciler import config, sweep
from reconciler.gate import RemovalGate
from reconciler.state import StateDB
from tests.helpers import (
    KEEP_ORIGINALS,
    Workspace,
    apply_killed_at,
    ext4_image,
    files_under,
    image_mounted,
    make_jpeg,
    make_workspace,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def _killed_aside(ws: Workspace) -> None:
    """An apply killed once it set the first file aside."""
    apply_killed_at(ws, "aside:1")


def _restore_wanted(ws: Workspace) -> frozenset[str]:
    db = StateDB.in_dir(ws.root / "state")
    try:
        return db.restore_wanted()
    finally:
        db.close()


def test_a_file_a_killed_run_left_aside_is_put_back_when_its_card_comes_back(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    card, image = ws.incoming, tmp_path / "images/card.img"
    with ext4_image(image, card):
        photo = make_jpeg(card / "DCIM/IMG_0001.JPG", OLD, seed=1).read_bytes()
        _killed_aside(ws)
        (aside,) = files_under(card)
        assert folder.original_name(Path(aside).name) == "IMG_0001.JPG"
    # the card pulled after the crash: the next apply cannot look there
    away = ws.run("apply", "--yes", now=NOW)
    assert away.code == 3, away.out + away.err  # its listing came back empty: held back
    assert "marked crashed; removed 0 temporary file(s) it left.\n" in away.out
    assert "incoming: a file an earlier run was removing may still be set aside there" in away.out
    assert _restore_wanted(ws) == {"incoming"}
    also_away = ws.run("apply", "--yes", now=NOW)  # nor the one after
    assert also_away.code == 3 and _restore_wanted(ws) == {"incoming"}

    ws.removal(False)  # the person looks into it before removing more
    with image_mounted(image, card):
        run = ws.run("apply", "--yes", now=NOW)
        assert run.code == 0, run.out + run.err
        assert "Put back 1 source file(s) an earlier run could not put back." in run.out
        assert files_under(card) == {"DCIM/IMG_0001.JPG": photo}
        assert _restore_wanted(ws) == frozenset()
        # and looked for no more: nothing is said the next time
        assert "Put back" not in ws.run("apply", "--yes", now=NOW).out


def test_a_file_that_could_not_be_put_back_says_where_it_is_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card turns read-only after the gate passed, the file aside (a
    FAT error remounts it so; a card reader's lock switch)."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    card = ws.incoming
    with ext4_image(tmp_path / "images/card.img", card):
        photo = make_jpeg(card / "DCIM/IMG_0001.JPG", OLD, seed=1).read_bytes()
        real = RemovalGate.check

        def check(self: RemovalGate, *args: object) -> list[str]:
            passed = real(self, *args)  # type: ignore[arg-type]
            subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
            return passed

        monkeypatch.setattr(RemovalGate, "check", check)
        first = ws.run("apply", "--yes", now=NOW)
        monkeypatch.undo()
        assert first.code == 1, first.out + first.err
        (aside,) = files_under(card)
        assert re.search(
            r"x failed remove-from-source incoming:DCIM/IMG_0001\.JPG: incoming: removing "
            r"DCIM/IMG_0001\.JPG failed: .*Read-only file system.*; the photo is now "
            + re.escape(aside)
            + ": the next run puts it back\n",
            first.out,
        ), first.out
        assert _restore_wanted(ws) == {"incoming"}

        ws.removal(False)  # the person looks into it before removing more
        still_ro = ws.run("apply", "--yes", now=NOW)  # read-only still: looked at again
        assert "incoming: a file an earlier run was removing may still be set aside" in still_ro.out
        assert _restore_wanted(ws) == {"incoming"}

        subprocess.run(["mount", "-o", "remount,rw", str(card)], check=True)
        second = ws.run("apply", "--yes", now=NOW)
        assert second.code == 0, second.out + second.err
        assert "Put back 1 source file(s) an earlier run could not put back." in second.out
        assert files_under(card) == {"DCIM/IMG_0001.JPG": photo}
        assert _restore_wanted(ws) == frozenset()


#: 75 kana (3 bytes each) + ".JPG": 229 bytes, well within a name's 255,
#: too long to be carried whole with the aside mark and token
LONG = "ア" * 75 + ".JPG"


def test_a_long_name_left_aside_by_a_killed_run_is_put_back_whole(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / LONG, OLD, seed=1).read_bytes()
    _killed_aside(ws)
    aside, record = sorted(os.listdir(ws.incoming), key=lambda n: n.startswith("."))
    assert len(aside.encode()) <= 255 and LONG.startswith(folder.original_name(aside) or "-")
    assert record.startswith(".") and (ws.incoming / record).read_text() == LONG
    ws.removal(False)
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "put back 1 source file(s) it was removing" in run.out
    assert os.listdir(ws.incoming) == [LONG]  # whole, and its record gone
    assert files_under(ws.incoming) == {LONG: photo}


def test_an_empty_source_is_looked_at_again_only_where_it_held_items(tmp_path: Path) -> None:
    """As the listing guard judges an empty listing: a folder emptied by
    the tool is merely empty; one that held items when last listed may be
    a card's bare mount point."""
    ws = make_workspace(tmp_path)
    desired = config.load(ws.config)
    assert sweep.restore_aside(desired).unreached == frozenset()
    assert sweep.restore_aside(desired, listed={"incoming"}).unreached == {"incoming"}
    (ws.incoming / "IMG_0001.JPG").write_bytes(b"a photo")  # not empty: reached
    assert sweep.restore_aside(desired, listed={"incoming"}) == sweep.Restoring([], frozenset())
