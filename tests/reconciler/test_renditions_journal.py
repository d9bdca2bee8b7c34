"""The library's journal of the tool's encodes (``renditions_journal``):
appended a whole line at a time, read once and only for the content the
library holds, and tolerant of what a crash, a person or a disk leaves."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from providers.filesystem.walk import scan_tree
from reconciler.renditions_journal import FOLDER, NAME, Journal, append, journal_path


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def everything(*shas: str) -> Callable[[], set[str]]:
    return lambda: set(shas)


def test_an_append_is_read_back_for_the_content_asked_about(tmp_path: Path) -> None:
    append(tmp_path, (sha(1), sha(10), "recent"))
    append(tmp_path, (sha(2), sha(20), "older"))
    path = journal_path(tmp_path)
    assert path == tmp_path / FOLDER / NAME
    assert path.read_text() == f"{sha(1)} {sha(10)} recent\n{sha(2)} {sha(20)} older\n"
    journal = Journal(tmp_path, everything(sha(1), sha(2), sha(3)))
    assert journal.original_of(sha(1)) == sha(10)
    assert journal.original_of(sha(2)) == sha(20)
    assert journal.original_of(sha(3)) is None
    assert not journal.unreadable


def test_only_the_lines_of_content_the_library_holds_are_kept(tmp_path: Path) -> None:
    for n in range(50):
        append(tmp_path, (sha(n), sha(1000 + n), "recent"))
    asked = []

    def wanted() -> set[str]:
        asked.append(1)
        return {sha(7)}

    journal = Journal(tmp_path, wanted)
    assert asked == []  # nothing read before a question
    assert journal.original_of(sha(7)) == sha(1007)
    assert journal.original_of(sha(8)) is None  # listed, but not of the library now
    assert journal.original_of(sha(9)) is None
    assert asked == [1]  # read once


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_line(tmp_path: Path) -> None:
    append(tmp_path, (sha(1), sha(10), "recent"))
    path = journal_path(tmp_path)
    with open(path, "ab") as f:  # a run killed mid-append
        f.write(f"{sha(2)} {sha(20)[:30]}".encode())
    assert Journal(tmp_path, everything(sha(1), sha(2))).original_of(sha(2)) is None
    append(tmp_path, (sha(3), sha(30), "older"))
    journal = Journal(tmp_path, everything(sha(1), sha(2), sha(3)))
    assert journal.original_of(sha(1)) == sha(10)
    assert journal.original_of(sha(2)) is None
    assert journal.original_of(sha(3)) == sha(30)
    assert path.read_bytes().endswith(f"\n{sha(3)} {sha(30)} older\n".encode())


def test_damaged_and_overlong_lines_are_skipped(tmp_path: Path) -> None:
    path = journal_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(
        b"x" * 100_000  # no newline for a long way
        + b"\n"
        + f"{sha(1)} {sha(10)} recent extra\n".encode()
        + f"{sha(2)} {sha(20).upper()} recent\n".encode()
        + f"{sha(3)} {sha(30)} recent\n".encode()
        + f"{sha(4)} {sha(40)} recent".encode()  # torn
    )
    journal = Journal(tmp_path, everything(sha(1), sha(2), sha(3), sha(4)))
    assert [journal.original_of(sha(n)) for n in (1, 2, 3, 4)] == [None, None, sha(30), None]
    assert not journal.unreadable


def test_no_journal_vouches_for_nothing(tmp_path: Path) -> None:
    journal = Journal(tmp_path, everything(sha(1)))
    assert journal.original_of(sha(1)) is None
    assert not journal.unreadable  # (none yet: no encode since it was begun)


def test_a_journal_that_cannot_be_read_vouches_for_nothing_and_says_so(tmp_path: Path) -> None:
    journal_path(tmp_path).mkdir(parents=True)  # a folder where the file should be
    journal = Journal(tmp_path, everything(sha(1)))
    assert journal.original_of(sha(1)) is None
    assert journal.unreadable


def test_a_journal_begun_now_starts_with_what_is_known(tmp_path: Path) -> None:
    """Begun (none there: the first encode since an upgrade, or one
    deleted), it starts with every encode the state database recorded;
    once there, it is only appended to."""
    known = [(sha(n), sha(100 + n), "recent") for n in range(2500)]
    known.append(("not a sha", sha(1), "recent"))  # carried over only if it is one
    append(tmp_path, (sha(9999), sha(99999), "older"), lambda: known)
    lines = journal_path(tmp_path).read_text().splitlines()
    assert len(lines) == 2501
    assert lines[0] == f"{sha(0)} {sha(100)} recent"
    assert lines[-1] == f"{sha(9999)} {sha(99999)} older"

    def never() -> list[tuple[str, str, str]]:
        raise AssertionError("read again")

    append(tmp_path, (sha(8888), sha(88888), "older"), never)
    assert len(journal_path(tmp_path).read_text().splitlines()) == 2502


def test_no_walk_lists_the_journal(tmp_path: Path) -> None:
    append(tmp_path, (sha(1), sha(10), "recent"))
    (tmp_path / "IMG_1.JPG").write_bytes(b"photo")
    assert [e[1] for e in scan_tree(tmp_path)] == ["IMG_1.JPG"]


def test_an_append_where_the_folder_is_a_file_fails_as_an_os_error(tmp_path: Path) -> None:
    (tmp_path / FOLDER).write_bytes(b"someone else's")
    try:
        append(tmp_path, (sha(1), sha(10), "recent"))
    except OSError as e:
        assert e.filename == os.fspath(journal_path(tmp_path))
    else:
        raise AssertionError("appended")
