"""Dates at the edges: a file whose mtime no 64-bit integer holds (year
2302; ext4 stores it): SQLite cannot keep its hash-cache row, so it is read
every run instead of the run failing, and the library still converges and
off-loads it; a capture date that falls outside years 1-9999 in UTC."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_capture_date
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

FAR = 10_500_000_000 * 10**9  # ns: 2302, past int64's 2262


def test_a_file_dated_past_2262_is_archived_and_the_library_converges(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_2302.JPG", datetime(2023, 4, 5, tzinfo=UTC), seed=3)
    make_jpeg(ws.incoming / "IMG_0001.JPG", datetime(2023, 4, 6, tzinfo=UTC), seed=4)
    os.utime(photo, ns=(FAR, FAR))
    done = ws.run("apply", "--yes")
    assert done.code == 0, done.err
    again = ws.run("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # converged: nothing left to do
    db = StateDB.in_dir(tmp_path / "state")
    try:
        cached = {r[0] for r in db.db.conn.execute("select path from hash_cache")}
        assert any(p.endswith("IMG_0001.JPG") for p in cached)
    finally:
        db.close()
    copies = list(tmp_path.glob("*/**/IMG_2302.JPG"))
    stores = {p.relative_to(tmp_path).parts[0] for p in copies}
    assert "library" in stores and len(stores - {"incoming"}) >= 3  # library and 2 targets
    assert len({p.read_bytes() for p in copies}) == 1
    for p in copies:
        if p.stat().st_mtime_ns == FAR:
            assert str(p) not in cached  # no row it could hold: read every run


def _dated_jpeg(path: Path, date: str, offset: str) -> Path:
    from PIL import ExifTags, Image

    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = date
    sub[ExifTags.Base.OffsetTimeOriginal] = offset
    Image.effect_noise((64, 64), 40).convert("RGB").save(path, quality=95, exif=exif)
    return path


def test_a_capture_date_past_year_9999_in_utc_is_no_date_not_a_stopped_run(
    tmp_path: Path,
) -> None:
    """9999-12-31 23:59:59 at -12:00 is in year 10000 in UTC (and year 1 at
    +12:00 is in year 0): the photo is archived as undated, and every other
    photo with it. Before, every plan and apply stopped with an internal
    error on it."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    late = _dated_jpeg(ws.incoming / "IMG_LATE.JPG", "9999:12:31 23:59:59", "-12:00")
    early = _dated_jpeg(ws.incoming / "IMG_EARLY.JPG", "0001:01:01 00:00:00", "+12:00")
    assert read_capture_date(late) is None and read_capture_date(early) is None
    make_jpeg(ws.incoming / "IMG_0001.JPG", datetime(2023, 4, 6, tzinfo=UTC), seed=4)
    done = ws.run("apply", "--yes")
    assert done.code == 0, done.out + done.err
    for name in ("IMG_LATE.JPG", "IMG_EARLY.JPG", "IMG_0001.JPG"):
        assert list(ws.target("nas").rglob(name)) and list(ws.target("usb").rglob(name)), name
    assert ws.run("plan", "--detailed-exitcode").code == 0
