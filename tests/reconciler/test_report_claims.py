"""``reconcile report`` says "Every item the tool knows is archived." whenever
the census has no *dated* unarchived item: an undated item still only in its
source, or copies counted on a target the last run could not read, do not
stop it. ``status`` withholds its own "every item is archived" line in both
cases (reconciler/commands/status.py: _all_archived, _unproven); the page
should not claim more than status does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from PIL import ExifTags, Image

from providers.filesystem import MARKER
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
CLAIM = "Every item the tool knows is archived."


def _undated_jpeg(path: Path) -> Path:
    """A photo whose capture date cannot be read (EXIF year 10000 in UTC):
    archived as undated (tests/test_far_future_mtime.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "9999:12:31 23:59:59"
    sub[ExifTags.Base.OffsetTimeOriginal] = "-12:00"
    Image.effect_noise((64, 64), 40).convert("RGB").save(path, quality=95, exif=exif)
    return path


def _page_text(path: Path) -> str:
    text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
    return " ".join(text.split())


def test_report_does_not_call_an_undated_item_in_its_source_archived(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    _undated_jpeg(ws.incoming / "SCAN_0001.JPG")
    for _ in range(2):  # two runs: the page plots and shows the census
        assert ws.run("plan", now=NOW).code == 0
    items = json.loads(ws.run("status", "--json", now=NOW).out)["census"]["items"]
    assert items["source_only"] == 1  # nothing is archived anywhere
    assert "every item is archived" not in ws.run("status", now=NOW).out  # status holds back
    out = tmp_path / "report.html"
    r = ws.run("report", str(out), now=NOW)
    assert r.code == 0, r.err
    text = _page_text(out)
    assert "in a source only 1" in text
    assert CLAIM not in text, "the page calls an item archived that no target holds"


def test_report_does_not_call_items_archived_while_a_target_is_unplugged(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (ws.target("nas") / MARKER).unlink()  # the NAS disk is unplugged
    r = ws.run("plan", now=NOW)
    assert r.code == 1  # nas unavailable: the last run could not read it
    st = ws.run("status", now=NOW).out
    assert "not proven now: nas" in st and "every item is archived" not in st
    out = tmp_path / "report.html"
    assert ws.run("report", str(out), now=NOW).code == 0
    text = _page_text(out)
    assert CLAIM not in text, "the page calls every item archived while nas cannot be read"


def test_report_says_every_item_is_archived_as_status_does(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert "every item is archived (2 copies required)" in ws.run("status", now=NOW).out
    out = tmp_path / "report.html"
    assert ws.run("report", str(out), now=NOW).code == 0
    assert CLAIM in _page_text(out)
