"""``.stignore`` is read as Syncthing reads it: lines end at "\\n" only.

A file name may hold U+2028, U+0085 or another character ``str.splitlines``
breaks at. Freed, its ignore line was then never found again: each run
wrote it anew, and each rewrite split the old copies into pieces, one a
bare ``A.JPG`` that ignores every A.JPG of the folder (a later photo of
that name never reached the phone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.syncthing import ignores


@pytest.mark.parametrize("odd", ["\u2028", "\u2029", "\x85", "\x1c", "\x1e", "\x0b", "\x0c"])
def test_a_freed_names_line_is_found_again_whatever_it_holds(tmp_path: Path, odd: str) -> None:
    rel = f"2022/03/04/IMG{odd}A.JPG"
    line = ignores.exact_line(rel)
    assert line is not None
    for _ in range(3):  # three runs
        ignores.ensure(tmp_path, line, ignores.FREED_COMMENT)
    text = (tmp_path / ".stignore").read_text(encoding="utf-8")
    assert text.split("\n").count(line) == 1, text
    assert rel in ignores.ignored_paths(tmp_path)
    assert "A.JPG" not in ignores.ignored_paths(tmp_path)
    ignores.remove(tmp_path, line)
    assert rel not in ignores.ignored_paths(tmp_path)


def test_lines_written_on_windows_are_read_without_their_cr(tmp_path: Path) -> None:
    (tmp_path / ".stignore").write_bytes(b"/a.jpg\r\n// a comment\r\n")
    assert ignores.lines(tmp_path) == ["/a.jpg", "// a comment"]
    assert ignores.ignored_paths(tmp_path) == frozenset({"a.jpg"})


def test_a_pattern_is_named_for_a_path_whose_names_hold_a_newline() -> None:
    """A name may hold any character but "/" and NUL; Syncthing's globs
    match a newline like any other, and so must the pattern named."""
    assert ignores.pattern_for(["*.JPG"], "trip\nday/IMG_1.JPG") == "*.JPG"
    assert ignores.pattern_for(["/trip**"], "trip\nday/IMG_1.JPG") == "/trip**"
