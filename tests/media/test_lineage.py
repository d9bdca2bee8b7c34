"""Lineage in XMP packets and video tags: built, merged into existing packets, read back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.media.lineage import (
    parse_video_lineage,
    parse_xmp_dropped,
    parse_xmp_lineage,
    video_lineage_tags,
    with_lineage,
)

from .conftest import XMP, XMP_MARKER

SHA = "0123456789abcdef" * 4


def test_new_packet_when_there_was_none() -> None:
    for empty in (None, b"", b"\x00"):
        packet = with_lineage(empty, SHA, "light")
        assert packet is not None
        assert packet.startswith(b"<?xpacket begin=")
        assert parse_xmp_lineage(packet) == (SHA, "light")


def test_existing_packet_is_kept_and_extended() -> None:
    packet = with_lineage(XMP, SHA, "medium")
    assert packet is not None
    assert XMP_MARKER.encode() in packet
    # Byte for byte, the packet is the original plus one element.
    assert re.sub(rb"\n<rdf:Description [^>]*xmlns:reconcile=[^>]*/>", b"", packet) == XMP
    assert parse_xmp_lineage(packet) == (SHA, "medium")
    assert parse_xmp_lineage(XMP) is None


def test_lineage_is_replaced_not_stacked() -> None:
    first = with_lineage(XMP, SHA, "light")
    second = with_lineage(first, "f" * 64, "heavy")
    assert second is not None
    assert second.count(b"reconcile:original_sha256") == 1
    assert parse_xmp_lineage(second) == ("f" * 64, "heavy")


def test_packet_without_rdf_is_left_alone() -> None:
    assert with_lineage(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", SHA, "light") is None


def test_element_form_and_broken_xml_are_read() -> None:
    ns = "http://ns.reconcile.invalid/lineage/1.0/"
    element_form = (
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF "
        "xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        f"<rdf:Description rdf:about='' xmlns:reconcile='{ns}'>"
        f"<reconcile:original_sha256>{SHA}</reconcile:original_sha256>"
        "<reconcile:tier>heavy</reconcile:tier></rdf:Description></rdf:RDF></x:xmpmeta>\x00"
    ).encode()
    assert parse_xmp_lineage(element_form) == (SHA, "heavy")
    broken = f'<unclosed reconcile:original_sha256="{SHA}" reconcile:tier="light"'.encode()
    assert parse_xmp_lineage(broken) == (SHA, "light")
    assert parse_xmp_lineage(b"<not-xmp/>") is None


@pytest.mark.parametrize(
    ("sha", "tier"),
    [("ABCD" * 16, "light"), ("ab" * 31, "light"), (SHA, ""), (SHA, "a b"), (SHA, "<x>")],
)
def test_bad_lineage_values_are_programming_errors(sha: str, tier: str) -> None:
    with pytest.raises(ValueError):
        with_lineage(None, sha, tier)
    with pytest.raises(ValueError):
        video_lineage_tags(sha, tier)


@given(
    sha=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    tier=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
def test_round_trip(sha: str, tier: str) -> None:
    assert parse_xmp_lineage(with_lineage(XMP, sha, tier)) == (sha, tier)
    assert parse_video_lineage(video_lineage_tags(sha, tier)) == (sha, tier)


def test_a_megabyte_of_padding_is_handled_whole() -> None:
    # Adobe pads XMP with whitespace so it can be edited in place; a regex
    # that was quadratic in it took minutes here. Correctness is asserted,
    # not time: a quadratic version would not finish within the suite.
    padding = (b" " * 99 + b"\n") * 10_000
    padded = XMP.replace(b"</x:xmpmeta>", b"</x:xmpmeta>\n" + padding)
    assert len(padded) > 1_000_000
    first = with_lineage(padded, SHA, "light", dropped="APP11")
    assert first is not None
    assert first.endswith(padding + b"\n<?xpacket end='w'?>")
    assert parse_xmp_lineage(first) == (SHA, "light")
    assert parse_xmp_dropped(first) == "APP11"
    second = with_lineage(first, "f" * 64, "heavy")
    assert second is not None
    assert second.count(b"reconcile:original_sha256") == 1
    # Byte for byte, the packet is the original plus one element.
    assert re.sub(rb"\n<rdf:Description [^>]*xmlns:reconcile=[^>]*/>", b"", second) == padded
    assert parse_xmp_lineage(second) == ("f" * 64, "heavy")
    assert parse_xmp_dropped(second) == ""
