"""The library's files are the person's items: one its walk cannot list (a
name that is not UTF-8, a folder past the system's 4096-byte path limit)
is said, once a run, as a source's is (``x unreadable``, exit 1), never
passed over as if the library matched; the rest of the library is
archived, and once the file is renamed (or the folder moved up) it is too."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace, write_raw_name

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
HEADLINE = "every item is archived"
RENAME = (
    "its name is not valid UTF-8 (shown with \\x escapes); rename it "
    "(e.g. convmv -f latin1 -t utf8) and the next run archives it"
)


def _unreadable(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  x unreadable")]


def test_a_library_photo_named_in_latin1_is_said_and_archived_once_renamed(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    day = ws.library / "2020" / "01" / "02"
    plain = make_jpeg(day / "plain.jpg", OLD, seed=1).read_bytes()
    odd = make_jpeg(tmp_path / "x.jpg", OLD, seed=2).read_bytes()
    raw = write_raw_name(day, b"caf\xe9.jpg", odd)
    write_raw_name(day, b".DS_Stor\xe9", b"junk")  # not an item: not said
    said = (
        f"  x unreadable library:2020/01/02/caf\\xe9.jpg: cannot read "
        f"{ws.library}/2020/01/02/caf\\xe9.jpg: {RENAME}"
    )

    applied = ws.run("apply", "--yes", now=NOW)
    assert applied.code == 1, applied.out + applied.err
    assert _unreadable(applied.out) == [said]
    assert sorted(files_under(ws.target("nas")).values()) == [plain]  # the rest archived
    planned = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert planned.code == 1 and _unreadable(planned.out) == [said], planned.out
    assert HEADLINE not in ws.run("status", now=NOW).out

    os.rename(raw, day / "café.jpg")  # as convmv would
    assert ws.run("apply", "--yes", now=NOW).code == 0
    for target in ("nas", "usb"):
        assert sorted(files_under(ws.target(target)).values()) == sorted([plain, odd])
    again = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert (again.code, _unreadable(again.out)) == (0, []), again.out


def _deep(folder: Path, data: bytes) -> None:
    """IMG_1.JPG in folders of 200-byte names below ``folder``, its path
    past 4096 bytes (made one folder at a time: no such path can be given whole)."""
    fd = os.open(folder, os.O_RDONLY)
    used = len(os.fsencode(folder))
    try:
        while used < 4000:
            os.mkdir("d" * 200, dir_fd=fd)
            fd, parent = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
            used += 201
        w = os.open("IMG_1.JPG", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(w, data)
        os.close(w)
    finally:
        os.close(fd)


def test_a_library_folder_too_deep_to_be_read_is_said(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    plain = make_jpeg(ws.library / "2020" / "01" / "02" / "plain.jpg", OLD, seed=1).read_bytes()
    (ws.library / "export").mkdir()
    _deep(ws.library / "export", make_jpeg(tmp_path / "x.jpg", OLD, seed=2).read_bytes())

    applied = ws.run("apply", "--yes", now=NOW)
    assert applied.code == 1, applied.out + applied.err
    (line,) = _unreadable(applied.out)
    assert line.startswith("  x unreadable library:export/…") and len(line) < 500, line
    assert "folders…/dddddddddd…dddddddddd/: cannot read " in line
    assert "paths in it pass the system's limit (4096 bytes)" in line
    assert sorted(files_under(ws.target("nas")).values()) == [plain]
    planned = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert planned.code == 1 and _unreadable(planned.out) == [line], planned.out


def test_a_targets_own_file_it_cannot_name_is_logged_and_the_run_converges(
    tmp_path: Path,
) -> None:
    """Not an item (another tool's file on the disk): no note, no error,
    but never passed over in silence either: each run's log names it."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    write_raw_name(ws.target("nas") / "old", b"caf\xe9.jpg", b"another tool's")
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0
    log = (ws.root / "state" / "reconcile.log").read_text()
    said = "nas: left out of its listing (a name not UTF-8, or a folder past the 4096-byte "
    assert log.count(f"{said}path limit): old/caf\\xe9.jpg") == 2, log
