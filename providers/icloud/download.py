"""Whether a download answer is the file asked for, or part of it.

iCloud's download URLs can answer with something that is not the file: a
proxy's or captive portal's page, a CDN's "try later" message, in an HTTP
200. Such an answer is shorter than the file, so it looks like a download cut
off; resumed with ``Range``, the real server sends the file's tail, and the
page and the tail together are exactly the listed size. The size alone proves
nothing then, and iCloud's own checksum of the file cannot be computed here.

So an answer's bytes are kept only where it shows it is the file:

- a 200 announces the file's whole size (its Content-Length), and a 206 the
  very range asked, of a resource of the file's size (its Content-Range);
- neither says it is a page or a message (text, HTML, JSON, XML) where a
  photo or video is asked for (an edit's adjustment data is a property list:
  XML may be the file there, an HTML page never is).

Only a 200 of the whole size, cut off by the connection, or a 206 of the
range asked is resumed from: anything else is discarded whole and the
download starts again from byte 0. Bytes of two answers are joined only when
each showed it was part of the same resource.

A file whose name says photo or video and whose first bytes are a page or a
message (``<``, ``{``) is refused too, whatever the headers said: no photo or
video format starts that way. One that merely sniffs as another kind than its
name (a HEIC under a ``.JPG`` name) is archived as it is, with a warning:
names lie, and the bytes are what iCloud holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.media.kinds import (
    HEAD_BYTES,
    OTHER,
    content_name,
    is_media,
    media_kind,
    sniff_kind,
)

__all__ = ["HEAD_BYTES", "answer_problem", "content_problem", "kind_mismatch"]

#: Content types that are never a file iCloud Photos holds.
_NEVER_A_FILE = ("text/html", "application/xhtml+xml")
#: Content types of pages and API messages: not a photo or video.
_MESSAGE_SUBTYPES = ("json", "xml", "html")

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)


def _media_type(headers: Mapping[str, str]) -> str:
    """The Content-Type without its parameters, lower case ("" if none)."""
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _type_problem(headers: Mapping[str, str], name: str) -> str:
    ctype = _media_type(headers)
    if not ctype:
        return ""
    if ctype in _NEVER_A_FILE:
        return f"a page ({ctype}), not the file"
    if is_media(name):
        kind, _, sub = ctype.partition("/")
        if kind == "text" or any(sub == s or sub.endswith("+" + s) for s in _MESSAGE_SUBTYPES):
            return f"a message ({ctype}), not the file"
    return ""


def _length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return -1  # announced, but not a length: never the file's


def answer_problem(
    status: int, headers: Mapping[str, str], *, name: str, size: int, start: int
) -> tuple[str, bool]:
    """Why an answer to a download of ``name`` (``size`` bytes) asked from
    byte ``start`` is not (part of) the file ("" if it is), and whether its
    bytes may be resumed from should it end short: only an answer that
    showed it is the whole resource (a 200 announcing ``size`` bytes) or
    the range asked of it (a 206 whose Content-Range says so). A 200 to a
    range request is the whole file sent again: read from byte 0."""
    why = _type_problem(headers, name)
    if why:
        return why, False
    length = _length(headers)
    if status == 200:
        if length is None:
            return "", False  # no size announced: kept only if it is all there
        if length != size:
            return f"an answer of {length} bytes, not the file's {size}", False
        return "", True
    if status == 206 and start:
        found = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if found is None:
            return "a partial answer that does not say which bytes it holds", False
        first, last, total = (int(g) for g in found.groups())
        if first != start or total != size or last < first or last >= size:
            return (
                f"bytes {first}-{last} of {total}, not the bytes {start}- of {size} asked",
                False,
            )
        if length is not None and length != last - first + 1:
            return f"an answer of {length} bytes for a range of {last - first + 1}", False
        return "", True
    return f"HTTP {status}, not the file", False


def content_problem(name: str, head: bytes) -> str:
    """Why bytes beginning with ``head``, downloaded as ``name``, are no
    photo or video ("" if they may be): a page or a message in its place."""
    if not is_media(name) or sniff_kind(head) != OTHER:
        return ""  # (bytes that announce a photo or video are one: a movie's
        # first atom may be sized 0x093C…, a tab then "<")
    if head.lstrip()[:1] in (b"<", b"{"):
        return "its first bytes are a page or a message, not a photo or video"
    return ""


def kind_mismatch(name: str, head: bytes) -> str:
    """What the bytes are when they are not the kind the name says (a JPEG,
    a HEIC, a video), for a warning; "" when they are, or the name says no
    such kind."""
    named = media_kind(name)
    if named == "other":
        return ""
    found = sniff_kind(head)
    if found == named:
        return ""
    return found if found != "other" else content_name(head)
