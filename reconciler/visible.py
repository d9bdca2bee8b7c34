"""Text as a person sees it: every character that could make or break a
line, drive a terminal, or reorder or hide the text around it, escaped
visibly. Used by everything that shows a name (render, status, the report)
and by the log, for the libraries' records too."""

from __future__ import annotations

import unicodedata

#: Unicode categories never shown raw, for they make or break a line, drive
#: the terminal, or reorder or hide text around them: controls (Cc: C0,
#: DEL, C1), format characters (Cf: the bidi marks, embeddings, overrides
#: and isolates U+061C, U+200E/F, U+202A-E, U+2066-9; zero-width and
#: invisible characters; the BOM U+FEFF; the soft hyphen; tag characters,
#: which can carry invisible text), the line and paragraph separators
#: (Zl, Zp) and lone surrogates (Cs). Other spaces (Zs), private-use and
#: unassigned code points (an emoji newer than this Python's Unicode
#: tables) are shown as they are.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
#: ZERO WIDTH NON-JOINER and JOINER are kept between two letters, marks,
#: digits or symbols: there they only join or part the two (a Persian word,
#: an Indic conjunct, an emoji sequence such as a family or a flag of
#: fire), and can neither reorder a line nor stand alone unseen.
_JOINERS = frozenset("\u200c\u200d")
_JOINED = ("L", "M", "N", "So", "Sk")


def _escape(c: str) -> str:
    n = ord(c)
    if c in _NAMED:
        return _NAMED[c]
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _joining(text: str, i: int) -> bool:
    """Whether ``text[i]`` is a joiner inside a word or an emoji sequence."""
    if text[i] not in _JOINERS or i == 0 or i == len(text) - 1:
        return False
    return all(unicodedata.category(text[j]).startswith(_JOINED) for j in (i - 1, i + 1))


def escape_controls(text: str) -> str:
    """``text`` as shown to a person: every control, format and separator
    character (``_HIDDEN``) escaped visibly (a newline as ``\\n``, ESC as
    ``\\x1b``, RIGHT-TO-LEFT OVERRIDE as ``\\u202e``), so a file's name can
    never make or break a line, nor make one read as another. Letters,
    accents and emoji are shown as they are. Only for showing: names are
    stored, compared and written to ``--json`` as they are."""
    if text.isprintable():
        return text
    return "".join(
        _escape(c) if unicodedata.category(c) in _HIDDEN and not _joining(text, i) else c
        for i, c in enumerate(text)
    )
