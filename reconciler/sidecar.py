"""XMP sidecars: an item's metadata and identity, in a file beside its original.

A sidecar (``IMG_0001.JPG.xmp``) keeps what the person set in Photos and
what the tool knows about the item, in a form digiKam, darktable, Lightroom
and exiftool read: capture date, GPS, title, description, keywords,
favourite (``xmp:Rating`` 5), albums as hierarchical keywords
(``Albums|Trip 2023``), plus the source's record ids and every file of the
item with its size, the source's fingerprint and its SHA-256. That last part
lets a later run match an iCloud asset to its archived files without
downloading them, even after the state DB is lost (``parse``).

Pure: ``render`` is a function of the item and its files' hashes, so the
planner can say whether the sidecar on a store is current by its digest, and
the same item always renders to the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC
from xml.etree import ElementTree

import attrs

from reconciler.model import SourceItem

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
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


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


def name_for(item: SourceItem) -> str:
    """``<original file name>.xmp``."""
    return item.files[0].name + SUFFIX


def is_sidecar(path: str) -> bool:
    return path.lower().endswith(SUFFIX)


def render(item: SourceItem, shas: Mapping[str, str]) -> bytes:
    """The sidecar of ``item``; ``shas`` maps each file's ref to its SHA-256."""
    meta = item.metadata
    if meta is None:
        raise ValueError(f"{item.source_id}:{item.key} has no metadata to write a sidecar of")
    for prefix, uri in _NS.items():
        ElementTree.register_namespace(prefix, uri)
    root = ElementTree.Element(_q("x", "xmpmeta"), {_q("x", "xmptk"): TOOLKIT})
    rdf = ElementTree.SubElement(root, _q("rdf", "RDF"))
    d = ElementTree.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    if item.captured_at is not None:
        stamp = item.captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        _text(d, "xmp", "CreateDate", stamp)
        _text(d, "photoshop", "DateCreated", stamp)
        _text(d, "exif", "DateTimeOriginal", stamp)
    if meta.latitude is not None and meta.longitude is not None:
        _text(d, "exif", "GPSLatitude", _coordinate(meta.latitude, "NS"))
        _text(d, "exif", "GPSLongitude", _coordinate(meta.longitude, "EW"))
        if meta.altitude is not None:
            _text(d, "exif", "GPSAltitudeRef", "0" if meta.altitude >= 0 else "1")
            _text(d, "exif", "GPSAltitude", f"{round(abs(meta.altitude) * 100)}/100")
    if meta.title:
        _alt(d, "dc", "title", meta.title)
    if meta.description:
        _alt(d, "dc", "description", meta.description)
    if meta.keywords:
        _bag(d, "dc", "subject", meta.keywords)
    hierarchy = [f"{ALBUMS_ROOT}|{a.replace('/', '|')}" for a in meta.albums]
    if hierarchy or meta.keywords:
        _bag(d, "lr", "hierarchicalSubject", [*hierarchy, *meta.keywords])
    _text(d, "xmp", "Rating", "5" if meta.favorite else "0")
    _text(d, "reconcile", "Hidden", "True" if meta.hidden else "False")
    if meta.albums:
        _bag(d, "reconcile", "Albums", meta.albums)
    _text(d, "reconcile", "Source", item.source_id)
    _text(d, "reconcile", "ItemKey", item.key)
    for name, value in meta.record_ids:
        _text(d, "reconcile", name, value)
    original = item.files[0]
    _text(d, "reconcile", "OriginalSHA256", shas[original.ref])
    if original.fingerprint:
        _text(d, "reconcile", "OriginalFingerprint", original.fingerprint)
    files = [
        "|".join((f.ref, f.role, str(f.size), f.fingerprint, shas[f.ref], f.name))
        for f in item.files
    ]
    _seq(d, "reconcile", "Files", files)
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    head = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    return f'{head}\n{body}\n<?xpacket end="w"?>\n'.encode()


def digest(item: SourceItem, shas: Mapping[str, str]) -> str:
    return hashlib.sha256(render(item, shas)).hexdigest()


def parse(data: bytes) -> SidecarIdentity | None:
    """The identity a sidecar written by ``render`` records (None: not one of ours)."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    d = root.find(f"{_q('rdf', 'RDF')}/{_q('rdf', 'Description')}")
    if d is None:
        return None
    source = d.findtext(_q("reconcile", "Source"))
    key = d.findtext(_q("reconcile", "ItemKey"))
    if not source or not key:
        return None
    files: list[SidecarFile] = []
    for li in d.iterfind(f"{_q('reconcile', 'Files')}/{_q('rdf', 'Seq')}/{_q('rdf', 'li')}"):
        parts = (li.text or "").split("|", 5)
        if len(parts) != 6 or not parts[2].isdigit():
            return None
        ref, role, size, fingerprint, sha, name = parts
        files.append(
            SidecarFile(
                ref=ref, role=role, name=name, size=int(size), fingerprint=fingerprint, sha256=sha
            )
        )
    return SidecarIdentity(source_id=source, item_key=key, files=tuple(files))


def _q(prefix: str, local: str) -> str:
    return f"{{{_NS[prefix]}}}{local}"


def _text(parent: ElementTree.Element, prefix: str, local: str, value: str) -> None:
    ElementTree.SubElement(parent, _q(prefix, local)).text = value


def _alt(parent: ElementTree.Element, prefix: str, local: str, value: str) -> None:
    alt = ElementTree.SubElement(
        ElementTree.SubElement(parent, _q(prefix, local)), _q("rdf", "Alt")
    )
    ElementTree.SubElement(alt, _q("rdf", "li"), {_XML_LANG: "x-default"}).text = value


def _bag(parent: ElementTree.Element, prefix: str, local: str, values: object) -> None:
    _list(parent, prefix, local, "Bag", values)


def _seq(parent: ElementTree.Element, prefix: str, local: str, values: object) -> None:
    _list(parent, prefix, local, "Seq", values)


def _list(parent: ElementTree.Element, prefix: str, local: str, kind: str, values: object) -> None:
    assert isinstance(values, list | tuple)
    container = ElementTree.SubElement(
        ElementTree.SubElement(parent, _q(prefix, local)), _q("rdf", kind)
    )
    for value in values:
        ElementTree.SubElement(container, _q("rdf", "li")).text = str(value)


def _coordinate(value: float, hemispheres: str) -> str:
    """XMP's GPSCoordinate: ``DDD,MM.mmmmmmK``."""
    ref = hemispheres[0] if value >= 0 else hemispheres[1]
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees},{minutes:.6f}{ref}"
