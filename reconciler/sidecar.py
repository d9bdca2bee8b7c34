"""XMP sidecars: an item's metadata and identity, in a file beside its original.

A sidecar (``IMG_0001.JPG.xmp``) keeps what the person set in Photos and
what the tool knows about the item, in a form digiKam, darktable, Lightroom
and exiftool read: capture date (on the person's clock, with the offset
of the zone it was taken in), GPS, title, description, keywords,
favourite (``xmp:Rating`` 5), albums as hierarchical keywords
(``Albums|Trip 2023``, ``Albums|Trips|Chile`` for an album in a folder; see
``album_path``), plus the source's record ids and every file of the
item with its size, the source's fingerprint and its SHA-256. That last part
(``ref|role|size|fingerprint|sha256|name``, each field %-quoted) lets a
later run match an iCloud asset to its archived files without
downloading them, even after the state DB is lost (``parse``).

Pure: ``render`` is a function of the item and its files' hashes, so the
planner can say whether the sidecar on a store is current by its digest, and
the same item always renders to the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import attrs

from reconciler.model import ORIGINAL_ROLE, SidecarOwner, SourceItem

SUFFIX = ".xmp"
#: Our own namespace, for what no standard schema has a field for.
RECONCILE_NS = "http://ns.reconcile.invalid/xmp/1.0/"
TOOLKIT = "reconcile"
ALBUMS_ROOT = "Albums"

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "reconcile": RECONCILE_NS,
}


@attrs.frozen(kw_only=True)
class SidecarFile:
    """One file of an item as a sidecar records it."""

    ref: str
    role: str
    name: str
    size: int
    fingerprint: str
    sha256: str


@attrs.frozen(kw_only=True)
class SidecarIdentity:
    """What a sidecar says about the item it describes."""

    source_id: str
    item_key: str
    files: tuple[SidecarFile, ...]


def name_for(item: SourceItem, *, unique: bool = False) -> str:
    """``<original file name>.xmp``; ``unique``: ``<name>.<item tag>.xmp``, for
    a second item beside the same original (a duplicate asset, or the same
    file imported twice), or beside another program's ``.xmp``. The tag is a
    function of the item's identity alone, so an item's own name never
    changes, and no two items' sidecars ever take turns at one name."""
    return _name(item.files[0].name, item.source_id, item.key, unique=unique)


def names_for(item: SourceItem, planned: str) -> tuple[str, str]:
    """The item's two sidecar names, the ``planned`` one first."""
    return owner_names(SidecarOwner(item.source_id, item.key, "", item.files[0].name), planned)


def owner_names(owner: SidecarOwner, planned: str) -> tuple[str, str]:
    """The two sidecar names of the item ``owner`` names, ``planned`` first."""
    plain = _name(owner.original_name, owner.source_id, owner.item_key, unique=False)
    tagged = _name(owner.original_name, owner.source_id, owner.item_key, unique=True)
    return (tagged, plain) if planned == tagged else (plain, tagged)


def _name(original: str, source_id: str, item_key: str, *, unique: bool) -> str:
    if not unique:
        return original + SUFFIX
    tag = hashlib.sha256(f"{source_id}:{item_key}".encode()).hexdigest()[:8]
    return f"{original}.{tag}{SUFFIX}"


def owner_of(found: SidecarIdentity) -> SidecarOwner | None:
    """The item a parsed sidecar describes, with its original (the first
    file ``render`` lists); None: it lists no file."""
    if not found.files:
        return None
    first = found.files[0]
    return SidecarOwner(found.source_id, found.item_key, first.sha256, first.name)


def roles(found: SidecarIdentity) -> dict[str, str]:
    """What each file of the item is, by its SHA-256, as the sidecar
    records it: the fact that outlives the item's presence in its source
    (a rendered edit, a RAW alternative, a Live Photo video is never
    encoded; only its original is). Originals are left out."""
    return {f.sha256: f.role for f in found.files if f.role != ORIGINAL_ROLE and f.sha256}


def owner(data: bytes) -> tuple[str, str] | None:
    """The item (source id, item key) a sidecar of ours describes; None: not
    one of ours, or not readable as one."""
    found = parse(data)
    return None if found is None else (found.source_id, found.item_key)


#: More than any sidecar of ours holds (a few kB): what is read of a file
#: by that name to parse it (another program's may be any size).
MAX_BYTES = 1 << 24


def is_sidecar(path: str) -> bool:
    return path.lower().endswith(SUFFIX)


def album_path(levels: Iterable[str]) -> str:
    """An album as ``ItemMetadata.albums`` holds it: the names of its
    folders and its own, joined by "/" ("Trips/Chile"). A "/" or "\\" in a
    name is escaped with a "\\" ("Ski 2019\\/20"): an album's own name is
    never taken for a folder level. A name with neither reads as before."""
    return "/".join(level.replace("\\", "\\\\").replace("/", "\\/") for level in levels)


def album_levels(path: str) -> tuple[str, ...]:
    """The folder and album names of an ``album_path``."""
    if "\\" not in path:
        return tuple(path.split("/"))  # the common case, and the planner renders every item
    levels: list[str] = []
    level: list[str] = []
    chars = iter(path)
    for char in chars:
        if char == "\\":
            level.append(next(chars, ""))
        elif char == "/":
            levels.append("".join(level))
            level = []
        else:
            level.append(char)
    levels.append("".join(level))
    return tuple(levels)


def _hierarchical(album: str) -> str:
    """An album as an ``lr:hierarchicalSubject`` under ``Albums``: a level
    per folder. That format has no escape for its "|", so one in a name is
    written "/" (the exact name is in ``reconcile:Albums``)."""
    if "\\" not in album and "|" not in album:
        return f"{ALBUMS_ROOT}|{album.replace('/', '|')}"
    return "|".join([ALBUMS_ROOT, *(level.replace("|", "/") for level in album_levels(album))])


def render(item: SourceItem, shas: Mapping[str, str]) -> bytes:
    """The sidecar of ``item``; ``shas`` maps each file's ref to its SHA-256.

    Built as text, not through ElementTree: the planner renders every
    iCloud item's sidecar on every run to compare digests, and this is
    several times faster. ``parse`` (and exiftool) read it as XML."""
    meta = item.metadata
    if meta is None:
        raise ValueError(f"{item.source_id}:{item.key} has no metadata to write a sidecar of")
    out = [_HEAD]
    if item.captured_at is not None:
        stamp = capture_stamp(item.captured_at, meta.utc_offset)
        out += [
            _text("xmp:CreateDate", stamp),
            _text("photoshop:DateCreated", stamp),
            _text("exif:DateTimeOriginal", stamp),
        ]
    if meta.latitude is not None and meta.longitude is not None:
        out += [
            _text("exif:GPSLatitude", _coordinate(meta.latitude, "NS")),
            _text("exif:GPSLongitude", _coordinate(meta.longitude, "EW")),
        ]
        if meta.altitude is not None:
            out += [
                _text("exif:GPSAltitudeRef", "0" if meta.altitude >= 0 else "1"),
                _text("exif:GPSAltitude", f"{round(abs(meta.altitude) * 100)}/100"),
            ]
    if meta.title:
        out.append(_alt("dc:title", meta.title))
    if meta.description:
        out.append(_alt("dc:description", meta.description))
    if meta.keywords:
        out.append(_list("dc:subject", "Bag", meta.keywords))
    # A keyword is one level: its "|" (that format's separator, with no
    # escape) is written "/" there; ``dc:subject`` keeps it exactly.
    hierarchy = [_hierarchical(a) for a in meta.albums]
    hierarchy += [k.replace("|", "/") for k in meta.keywords]
    if hierarchy:
        out.append(_list("lr:hierarchicalSubject", "Bag", hierarchy))
    out += [
        _text("xmp:Rating", "5" if meta.favorite else "0"),
        _text("reconcile:Hidden", "True" if meta.hidden else "False"),
    ]
    if meta.albums:
        out.append(_list("reconcile:Albums", "Bag", meta.albums))
    out += [_text("reconcile:Source", item.source_id), _text("reconcile:ItemKey", item.key)]
    for name, value in meta.record_ids:
        if _NAME.match(name):
            out.append(_text(f"reconcile:{name}", value))
    original = item.files[0]
    out.append(_text("reconcile:OriginalSHA256", shas[original.ref]))
    if original.fingerprint:
        out.append(_text("reconcile:OriginalFingerprint", original.fingerprint))
    files = [
        "|".join(
            _field(v) for v in (f.ref, f.role, str(f.size), f.fingerprint, shas[f.ref], f.name)
        )
        for f in item.files
    ]
    out += [_list("reconcile:Files", "Seq", files), _TAIL]
    return "".join(out).encode()


def capture_stamp(captured_at: datetime, utc_offset: int) -> str:
    """The capture time as XMP dates hold it: on the person's clock, with
    its offset (``2021-06-01T23:30:00-04:00``), so a reader gets both the
    moment and the zone. Offset 0 (no zone known) is written ``+00:00``, as
    every sidecar was before the zone was kept: those stay current."""
    if not utc_offset:
        return captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    local = captured_at.astimezone(timezone(timedelta(seconds=utc_offset)))
    sign = "-" if utc_offset < 0 else "+"
    hours, minutes = divmod(abs(utc_offset) // 60, 60)
    return f"{local.strftime('%Y-%m-%dT%H:%M:%S')}{sign}{hours:02d}:{minutes:02d}"


def digest(item: SourceItem, shas: Mapping[str, str]) -> str:
    return hashlib.sha256(render(item, shas)).hexdigest()


def parse(data: bytes) -> SidecarIdentity | None:
    """The identity a sidecar written by ``render`` records (None: not one of ours)."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    # As XMP is, not as ``render`` lays it out: a program that edits the
    # sidecar (exiftool writes one rdf:Description per namespace; Exiv2,
    # digiKam's, writes simple properties as attributes) keeps it ours.
    descriptions = list(root.iter(_q("rdf", "Description")))
    source = _property(descriptions, "Source")
    key = _property(descriptions, "ItemKey")
    if not source or not key:
        return None
    files: list[SidecarFile] = []
    seq = f"{_q('reconcile', 'Files')}/{_q('rdf', 'Seq')}/{_q('rdf', 'li')}"
    for li in (li for d in descriptions for li in d.iterfind(seq)):
        parts = [unquote(p) for p in (li.text or "").split("|")]
        if len(parts) != 6 or not parts[2].isdigit():
            return None
        ref, role, size, fingerprint, sha, name = parts
        files.append(
            SidecarFile(
                ref=ref, role=role, name=name, size=int(size), fingerprint=fingerprint, sha256=sha
            )
        )
    return SidecarIdentity(source_id=source, item_key=key, files=tuple(files))


def is_rendering(data: bytes) -> bool:
    """Is ``data`` a sidecar exactly as ``render`` lays one out (of whatever
    metadata), byte for byte? A sidecar the tool wrote is; one a person
    edited since is not: every program that edits XMP (exiftool, digiKam's
    Exiv2, darktable, Lightroom) writes it anew in its own layout, under
    its own toolkit name, and a text editor's change that breaks the
    layout shows too. Only such a file of ours may be replaced by a newer
    rendering (``providers.filesystem.replace_sidecar``): the person's
    edit is theirs. Read only when a sidecar is replaced."""
    try:
        text = data.decode()
        root = ElementTree.fromstring(data)
    except (UnicodeDecodeError, ElementTree.ParseError):
        return False
    head, opened, rest = text.partition(_OPEN)
    if not opened or not _HEAD_SHAPE.fullmatch(head) or not rest.endswith(_TAIL):
        return False
    descriptions = list(root.iter(_q("rdf", "Description")))
    if len(descriptions) != 1 or set(descriptions[0].attrib) != {_q("rdf", "about")}:
        return False
    laid: list[str] = []
    for prop in descriptions[0]:
        part = _laid_out(prop)
        if part is None:
            return False
        laid.append(part)
    # (an XML reader reads a line break as "\n" however it was written)
    body = rest[: -len(_TAIL)].replace("\r\n", "\n").replace("\r", "\n")
    return body == "".join(laid) and _consistent(descriptions[0])


def _consistent(description: ElementTree.Element) -> bool:
    """Does the description hold only what ``render`` writes, its keyword
    hierarchy made from its albums and keywords as ``render`` makes it? (A
    keyword added by hand to one list only, a property of another schema.)"""
    lists: dict[str, list[str]] = {}
    for prop in description:
        tag = _prefixed(prop.tag) or ""
        if tag not in _RENDERED and not tag.startswith("reconcile:"):
            return False
        lists[tag] = [li.text or "" for li in prop.iter(_q("rdf", "li"))]
    albums, keywords = lists.get("reconcile:Albums", []), lists.get("dc:subject", [])
    written = lists.get("lr:hierarchicalSubject", [])
    hierarchy = [_hierarchical(a) for a in albums]
    hierarchy += [k.replace("|", "/") for k in keywords]
    # As releases before 2026-12-01 made it: a keyword's "|" kept, an
    # album's "/" taken for a folder level. Their sidecars are the tool's
    # too, replaced by a newer rendering like any.
    before = [f"{ALBUMS_ROOT}|{a.replace('/', '|')}" for a in albums] + keywords
    return written in (hierarchy, before)


#: The properties of standard schemas ``render`` writes.
_RENDERED = frozenset(
    {
        "xmp:CreateDate",
        "photoshop:DateCreated",
        "exif:DateTimeOriginal",
        "exif:GPSLatitude",
        "exif:GPSLongitude",
        "exif:GPSAltitudeRef",
        "exif:GPSAltitude",
        "dc:title",
        "dc:description",
        "dc:subject",
        "lr:hierarchicalSubject",
        "xmp:Rating",
    }
)


def _laid_out(prop: ElementTree.Element) -> str | None:
    """One property as ``render`` writes it (``_text``, ``_alt``, ``_list``);
    None: no property ``render`` writes looks like it."""
    tag = _prefixed(prop.tag)
    if tag is None or prop.attrib:
        return None
    children = list(prop)
    if not children:
        return _text(tag, prop.text or "")
    if len(children) != 1:
        return None
    kind = _prefixed(children[0].tag)
    items = list(children[0])
    if children[0].attrib or any(list(li) or li.tag != _q("rdf", "li") for li in items):
        return None
    if kind == "rdf:Alt":
        lang = {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"}
        if len(items) != 1 or items[0].attrib != lang:
            return None
        return _alt(tag, items[0].text or "")
    if kind in ("rdf:Bag", "rdf:Seq") and items and not any(li.attrib for li in items):
        return _list(tag, kind[4:], [li.text or "" for li in items])
    return None


def _prefixed(tag: str) -> str | None:
    """``{uri}local`` as ``prefix:local`` in ``render``'s prefixes."""
    uri, _, local = tag[1:].partition("}")
    prefix = _PREFIXES.get(uri)
    return None if prefix is None else f"{prefix}:{local}"


def _property(descriptions: list[ElementTree.Element], name: str) -> str | None:
    """A simple ``reconcile:`` property, as an element or an attribute of
    any rdf:Description."""
    tag = _q("reconcile", name)
    for d in descriptions:
        found = d.get(tag) or d.findtext(tag)
        if found:
            return found
    return None


def _q(prefix: str, local: str) -> str:
    return f"{{{_NS[prefix]}}}{local}"


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
#: Characters XML 1.0 cannot hold at all (a caption may carry them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: Text that needs no escaping at all (most of it: names, ids, hashes).
_PLAIN = re.compile(r"[^&<>\x00-\x1f\ufffe\uffff]*")
_INDENT = "      "
_OPEN = '    <rdf:Description rdf:about="">\n'
_HEAD = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta'
    + "".join(f' xmlns:{p}="{uri}"' for p, uri in _NS.items() if p != "x")
    + f' xmlns:x="{_NS["x"]}" x:xmptk="{TOOLKIT}">\n'
    + "  <rdf:RDF>\n"
    + _OPEN
)
_TAIL = '    </rdf:Description>\n  </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>\n'
#: ``_HEAD`` up to ``_OPEN`` as any version of ``render`` wrote it (the
#: namespaces it declares have grown): the toolkit is ours.
_HEAD_SHAPE = re.compile(
    r'<\?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"\?>\n<x:xmpmeta'
    r'(?: xmlns:[a-z]+="[^"]*")* x:xmptk="' + TOOLKIT + r'">\n  <rdf:RDF>\n'
)
_PREFIXES = {uri: prefix for prefix, uri in _NS.items()}


def _field(value: str) -> str:
    """One ``|``-separated field of ``reconcile:Files``, its ``|`` and ``%`` quoted."""
    if "|" not in value and "%" not in value:
        return value  # the common case, and the planner renders every item
    return quote(value, safe=" !#$&'()*+,-./:;<=>?@[]^_`{}~")


def _esc(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    # imported here: xml.sax.saxutils loads urllib.request and http.client,
    # which no run needs until it writes a sidecar
    from xml.sax.saxutils import escape

    return escape(_NOT_XML.sub("", value))


def _text(tag: str, value: str) -> str:
    return f"{_INDENT}<{tag}>{_esc(value)}</{tag}>\n"


def _alt(tag: str, value: str) -> str:
    return (
        f"{_INDENT}<{tag}>\n{_INDENT}  <rdf:Alt>\n"
        f'{_INDENT}    <rdf:li xml:lang="x-default">{_esc(value)}</rdf:li>\n'
        f"{_INDENT}  </rdf:Alt>\n{_INDENT}</{tag}>\n"
    )


def _list(tag: str, kind: str, values: Sequence[str]) -> str:
    items = "".join(f"{_INDENT}    <rdf:li>{_esc(v)}</rdf:li>\n" for v in values)
    return (
        f"{_INDENT}<{tag}>\n{_INDENT}  <rdf:{kind}>\n"
        f"{items}{_INDENT}  </rdf:{kind}>\n{_INDENT}</{tag}>\n"
    )


def _coordinate(value: float, hemispheres: str) -> str:
    """XMP's GPSCoordinate: ``DDD,MM.mmmmmmK``."""
    ref = hemispheres[0] if value >= 0 else hemispheres[1]
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees},{minutes:.6f}{ref}"
