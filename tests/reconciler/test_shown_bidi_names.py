"""A file name carrying a Unicode bidi override (U+202E RIGHT-TO-LEFT
OVERRIDE, the "Trojan Source" character) reaches the plan, apply, status and
the log unescaped. ``visible.escape_controls`` promises every control
character escaped visibly so a name can never make a line look like another;
U+202E is a format control (category Cf, not printable) that reverses the
rest of the line in any bidi-aware terminal or mail reader:
``incoming:IMG_<U+202E>GPJ.exe`` shows as ``incoming:IMG_exe.JPG`` and the
reason after it is shown reversed too."""

from __future__ import annotations

import logging
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

from reconciler import logfile
from reconciler.visible import escape_controls
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)
RLO = "\u202e"
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: Invisible without reordering: zero-width space, word joiner, BOM, soft
#: hyphen, a tag character (invisible text), line and paragraph separators.
HIDDEN = BIDI + "\u200b\u2060\ufeff\u00ad\U000e0041\u2028\u2029"
#: Shown as they are: letters, accents, emoji, and joiners inside a word
#: or an emoji sequence (a family; a Persian word with its non-joiner).
KEPT = (
    "café",
    "Ωμέγα",
    "\U0001f600",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "می\u200cخواهم",
)


def _raw_bidi(text: str) -> set[str]:
    return {f"U+{ord(c):04X}" for c in text if c in BIDI}


def test_escape_controls_escapes_bidi_overrides() -> None:
    for c in BIDI:
        assert unicodedata.category(c) == "Cf" and not c.isprintable()
        shown = escape_controls(f"IMG_{c}GPJ.exe")
        assert c not in shown, f"U+{ord(c):04X} left raw: {shown!r}"
    assert escape_controls(f"IMG_{RLO}GPJ.exe") == "IMG_\\u202eGPJ.exe"


def test_escape_controls_escapes_invisible_characters_and_keeps_words() -> None:
    for c in HIDDEN:
        shown = escape_controls(f"a{c}b")
        assert c not in shown and shown.isprintable(), f"U+{ord(c):04X}: {shown!r}"
    assert escape_controls("flag\U000e0041") == "flag\\U000e0041"
    for text in KEPT:
        assert escape_controls(text) == text
    # A joiner that joins nothing (at an end, beside a space) is escaped.
    assert escape_controls("\u200dIMG \u200c.JPG") == "\\u200dIMG \\u200c.JPG"
    # Unchanged: C0/C1 controls, as before.
    assert escape_controls("a\nb\x1b\x85") == "a\\nb\\x1b\\x85"


def test_a_name_with_a_right_to_left_override_is_shown_escaped(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    photo.rename(ws.incoming / f"IMG_{RLO}GPJ.exe")  # any file type is archived
    plan = ws.run("plan", now=NOW)
    assert plan.code == 0, plan.err
    applied = ws.run("apply", "--yes", "--only", "library", now=NOW)
    assert applied.code == 0, applied.err
    status = ws.run("status", now=NOW)
    log = (ws.root / "state" / "reconcile.log").read_text(encoding="utf-8")
    found = {
        "plan": _raw_bidi(plan.out),
        "apply": _raw_bidi(applied.out),
        "status": _raw_bidi(status.out),
        "log": _raw_bidi(log),
    }
    out = tmp_path / "report.html"
    assert ws.run("report", str(out), now=NOW).code == 0
    found["report"] = _raw_bidi(out.read_text(encoding="utf-8"))
    assert found == {"plan": set(), "apply": set(), "status": set(), "log": set(), "report": set()}
    assert "IMG_\\u202eGPJ.exe" in plan.out and "IMG_\\u202eGPJ.exe" in status.out


def test_the_logs_own_records_are_escaped_line_by_line(tmp_path: Path) -> None:
    """Records the CLI does not say (a library's under ``-v``, a traceback)
    go to the log too: each of their lines is escaped as a shown line is,
    and the log's line breaks stay line breaks."""
    logfile.open_log(tmp_path, max_bytes=1 << 20, backups=1, verbose=True)
    try:
        logging.getLogger("urllib3.connectionpool").debug(
            "GET /IMG_\u202eGPJ.exe\nsecond line\x1b[2J"
        )
    finally:
        logfile.close_log()
    text = (tmp_path / logfile.LOG_NAME).read_text(encoding="utf-8")
    assert "\u202e" not in text and "\x1b" not in text
    assert "GET /IMG_\\u202eGPJ.exe\nsecond line\\x1b[2J\n" in text
