"""Lineage inside a file's own metadata: which original it was made from, for which tier.

The state database records lineage too; a copy inside the file lets it
survive a lost database or a library moved by hand (DESIGN.md, Identity).

Stills carry it in their XMP packet, as one extra ``rdf:Description`` in a
namespace of our own; everything else in the packet is kept byte for byte,
so no editing tool's data is rewritten. Videos carry it as two QuickTime
metadata keys (written with ``-movflags use_metadata_tags``).

This module only builds and parses metadata values; reading files is done by
``still`` and ``video``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

XMP_NAMESPACE = "http://ns.reconcile.invalid/lineage/1.0/"
XMP_PREFIX = "reconcile"
VIDEO_SHA256_KEY = "org.reconcile.original_sha256"
VIDEO_TIER_KEY = "org.reconcile.tier"
#: What a video re-encode left out (data tracks), when anything.
VIDEO_DROPPED_KEY = "org.reconcile.dropped"

_SHA256 = re.compile(r"[0-9a-f]{64}")
# What a tier may be called: it travels in XMP attributes and QuickTime keys.
TIER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RDF_OPEN = re.compile(rb"<(?P<prefix>[A-Za-z_][\w.-]*):RDF\b[^>]*>")
# Only ever matches the element this module writes, so a re-encode of a file
# that already has lineage replaces it instead of stacking a second one. No
# leading ``\s*``: tried at every offset of Adobe's kilobytes of padding, it
# made the search quadratic (the newline we put before it is trimmed by hand).
_OWN_DESCRIPTION = re.compile(
    rb"<[\w.-]+:Description\b[^>]*\bxmlns:"
    + XMP_PREFIX.encode()
    + rb'="'
    + re.escape(XMP_NAMESPACE.encode())
    + rb'"[^>]*/>'
)
_DROPPED = re.compile(rb"\b" + XMP_PREFIX.encode() + rb":dropped=[\"']([^\"'<>]*)[\"']")
_FALLBACK = re.compile(
    rb"reconcile:original_sha256(?:=[\"']|>)([0-9a-f]{64}).*?reconcile:tier(?:=[\"']|>)([A-Za-z0-9_.-]+)",
    re.DOTALL,
)


def check_lineage(original_sha256: str, tier: str) -> None:
    """Refuse values that would not round-trip (a programming error, not bad media)."""
    if not _SHA256.fullmatch(original_sha256):
        raise ValueError(
            f"original_sha256 must be 64 lowercase hex digits, got {original_sha256!r}"
        )
    if not TIER_NAME.fullmatch(tier):
        raise ValueError(f"tier must be a short name of letters, digits, '_.-', got {tier!r}")


def _description(rdf_prefix: str, original_sha256: str, tier: str, dropped: str = "") -> bytes:
    # ``dropped`` names what of the original the encoder could not carry
    # (e.g. a JPEG segment), so the file itself says what it lacks.
    # (Imported here: xml.sax.saxutils loads urllib.request and http.client,
    # and every command reads this module for TIER_NAME.)
    from xml.sax.saxutils import quoteattr

    extra = f" {XMP_PREFIX}:dropped={quoteattr(dropped)}" if dropped else ""
    return (
        f"<{rdf_prefix}:Description {rdf_prefix}:about=''"
        f" xmlns:{XMP_PREFIX}={quoteattr(XMP_NAMESPACE)}"
        f" {XMP_PREFIX}:original_sha256={quoteattr(original_sha256)}"
        f" {XMP_PREFIX}:tier={quoteattr(tier)}{extra}/>"
    ).encode()


def _new_packet(original_sha256: str, tier: str, dropped: str = "") -> bytes:
    body = _description("rdf", original_sha256, tier, dropped).decode()
    return (
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n"
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
        f"{body}\n"
        "</rdf:RDF>\n"
        "</x:xmpmeta>\n"
        "<?xpacket end='w'?>"
    ).encode()


def with_lineage(
    xmp: bytes | None, original_sha256: str, tier: str, dropped: str = ""
) -> bytes | None:
    """The XMP packet ``xmp`` with lineage added (a new packet when there was none).

    ``dropped``, when given, is recorded beside the lineage: what of the
    original the encoded file does not carry.

    Returns None when the existing packet has no ``rdf:RDF`` element to add
    to: the caller then keeps the packet untouched rather than lose what it
    says, and the lineage lives in the state database only.
    """
    check_lineage(original_sha256, tier)
    if not xmp or not xmp.strip(b"\x00 \t\r\n"):
        return _new_packet(original_sha256, tier, dropped)
    cleaned = _without_own_description(xmp)
    match = _RDF_OPEN.search(cleaned)
    if match is None:
        return None
    description = _description(match["prefix"].decode(), original_sha256, tier, dropped)
    return cleaned[: match.end()] + b"\n" + description + cleaned[match.end() :]


def within(xmp: bytes, limit: int) -> bytes | None:
    """``xmp`` in at most ``limit`` bytes, by giving up whitespace of its
    padding (before ``<?xpacket end``, which XMP keeps for edits in place);
    None when the padding is too short."""
    excess = len(xmp) - limit
    if excess <= 0:
        return xmp
    end = xmp.rfind(b"<?xpacket end")
    if end < 0:
        return None
    padding = end - len(xmp[:end].rstrip(b" \t\r\n"))
    # A newline stays before the trailer, as packets are written.
    if padding - 1 < excess:
        return None
    return xmp[: end - excess - 1] + b"\n" + xmp[end:]


def _without_own_description(xmp: bytes) -> bytes:
    parts: list[bytes] = []
    pos = 0
    for match in _OWN_DESCRIPTION.finditer(xmp):
        start = match.start()
        if start > pos and xmp[start - 1 : start] == b"\n":
            start -= 1  # the newline with_lineage put before it
        parts.append(xmp[pos:start])
        pos = match.end()
    parts.append(xmp[pos:])
    return b"".join(parts)


def parse_xmp_dropped(xmp: bytes | None) -> str:
    """What the encoder recorded as not carried (``reconcile:dropped``), or ""."""
    match = _DROPPED.search(xmp or b"")
    return match[1].decode("utf-8", "replace") if match else ""


def parse_xmp_lineage(xmp: bytes | None) -> tuple[str, str] | None:
    """(original_sha256, tier) from an XMP packet, or None when it has none.

    Accepts both the attribute form this module writes and the element form
    that XMP tools may rewrite it into.
    """
    if not xmp:
        return None
    text = xmp.rstrip(b"\x00 \t\r\n")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        # A packet that is not well-formed XML (seen in the wild) may still
        # hold our attributes verbatim.
        match = _FALLBACK.search(text)
        return (match[1].decode(), match[2].decode()) if match else None
    sha_name = f"{{{XMP_NAMESPACE}}}original_sha256"
    tier_name = f"{{{XMP_NAMESPACE}}}tier"
    for element in root.iter():
        sha = element.get(sha_name) or _child_text(element, sha_name)
        tier = element.get(tier_name) or _child_text(element, tier_name)
        if sha and tier and _SHA256.fullmatch(sha) and TIER_NAME.fullmatch(tier):
            return sha, tier
    return None


def _child_text(element: ET.Element, name: str) -> str | None:
    child = element.find(name)
    return child.text.strip() if child is not None and child.text else None


def video_lineage_tags(original_sha256: str, tier: str) -> dict[str, str]:
    """The container metadata keys that carry lineage in a video."""
    check_lineage(original_sha256, tier)
    return {VIDEO_SHA256_KEY: original_sha256, VIDEO_TIER_KEY: tier}


def parse_video_lineage(tags: dict[str, str]) -> tuple[str, str] | None:
    """(original_sha256, tier) from a video's container tags, or None."""
    sha = tags.get(VIDEO_SHA256_KEY, "")
    tier = tags.get(VIDEO_TIER_KEY, "")
    if _SHA256.fullmatch(sha) and TIER_NAME.fullmatch(tier):
        return sha, tier
    return None
