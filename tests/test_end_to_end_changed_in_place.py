"""A file rewritten in place with its size, mtime and inode kept (as
``exiftool -P -overwrite_original_in_place`` does for a tag of the same
length, or bit rot) is taken from the hash cache for what it was. A copy
read from it then fails its hash check; before, nothing forgot the wrong
hash nor read the original from its other holder, so every run failed the
same copies for ever ("no readable original", "changed while copying").
Now the file is distrusted, its hash forgotten and the next holder read;
the run after reads it afresh."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Other bytes, with the same inode, size and mtime."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _flip(data: bytes) -> bytes:
    """The same JPEG with one byte of its scan changed (same size)."""
    i = len(data) - 20
    return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1 :]


def test_a_source_rewritten_in_place_after_the_plan_is_archived_by_the_next_run(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    new = _flip(photo.read_bytes())
    _rewrite_in_place(photo, new)
    first = ws.run("apply", str(saved), "--yes", now=NOW)
    assert first.code == 1, first.out + first.err  # the bytes planned are nowhere
    again = ws.run("apply", "--yes", now=NOW)
    assert again.code == 0, again.out + again.err
    for target in ("nas", "usb"):
        assert new in media_under(ws.target(target)).values(), again.out
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_rotten_library_original_is_not_copied_and_the_source_is_read(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    good = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    assert ws.run("apply", "--yes", "--only", "library", now=NOW).code == 0
    (lib,) = media_under(ws.library)
    _rewrite_in_place(ws.library / lib, _flip(good))
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for target in ("nas", "usb"):
        # the source's good bytes are archived; the library file, whose
        # ctime shows it changed, is read again as content of its own
        assert good in media_under(ws.target(target)).values(), r.out
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_source_rewritten_in_place_after_it_was_archived_is_archived_again(
    tmp_path: Path,
) -> None:
    """Removal off: the photo archived, then edited in place (same size and
    mtime kept). Its cached hash named the old bytes, so the plan said the
    library matched while the targets held only the old photo. The file's
    ctime, which no program sets, now shows the change."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    new = _flip(photo.read_bytes())
    _rewrite_in_place(photo, new)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 2
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    for target in ("nas", "usb"):
        assert new in media_under(ws.target(target)).values(), r.out
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_a_file_whose_mode_changed_is_read_again_and_nothing_else_happens(
    tmp_path: Path,
) -> None:
    """A chmod changes the ctime too: the file is read again, found the same,
    and the plan still matches."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    photo.chmod(0o600)
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
