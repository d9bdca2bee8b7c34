"""A download answer that does not show it is the file is never archived as
the file, nor joined to another answer's bytes (``providers.icloud.download``).

An error page sent with HTTP 200 (a proxy's, a captive portal's, a CDN's
"try later") is shorter than the file: taken for a download cut off and
resumed with ``Range``, the real server sends the file's tail, and page plus
tail are exactly the listed size. The source against the emulator, whose
faults answer in place of the download."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.icloud.download import answer_problem, content_problem
from providers.icloud.emulator.testing import RunningEmulator
from providers.icloud.source import ICloudSource
from reconciler.errors import ProviderError
from reconciler.model import SourceItem
from tests.providers.icloud.conftest import Library
from tests.providers.icloud.test_source import NoHasher, fetch_original

PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>We are having trouble. Try again later.</h1></body></html>\n"
)
OCTETS = {"Content-Type": "application/octet-stream"}


def _offsets(emulator: RunningEmulator) -> list[int]:
    """Where each resumed request asked to start."""
    return [int(r.removeprefix("bytes=").rstrip("-")) for r in emulator.server.range_requests]


def _photo(source: ICloudSource) -> SourceItem:
    (item,) = (i for i in source.list_items(NoHasher()) if i.files[0].name == "IMG_0001.JPG")
    return item


@pytest.mark.parametrize("content_type", ["text/plain", "text/html", "application/octet-stream"])
def test_an_error_page_in_a_200_is_discarded_never_resumed_from(
    source: ICloudSource,
    emulator: RunningEmulator,
    library: Library,
    tmp_path: Path,
    content_type: str,
) -> None:
    item = _photo(source)
    emulator.server.inject(
        "download", status=200, body=PAGE, headers={"Content-Type": content_type}, times=1
    )
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256
    # Read again whole: no range was asked after the page's length.
    assert emulator.server.range_requests == []


def test_a_200_shorter_than_the_file_is_read_again_from_byte_0(
    source: ICloudSource, emulator: RunningEmulator, library: Library, tmp_path: Path
) -> None:
    """A 200 announcing fewer bytes than the file is another resource (or a
    server that lies): nothing of it is kept to resume from."""
    item = _photo(source)
    emulator.server.inject_truncation(fraction=0.4, mode="lie", times=2)
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256
    assert emulator.server.range_requests == []


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream"])
def test_a_page_of_the_files_very_size_is_refused(
    source: ICloudSource,
    emulator: RunningEmulator,
    library: Library,
    tmp_path: Path,
    content_type: str,
) -> None:
    """Size alone proves nothing: a page padded to the file's size, said to be
    HTML or said to be bytes, is not a photo (its first bytes say so)."""
    item = _photo(source)
    size = library.jpeg.master.original.size
    page = PAGE + b" " * (size - len(PAGE))
    emulator.server.inject(
        "download", status=200, body=page, headers={"Content-Type": content_type}, times=1
    )
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256


@pytest.mark.parametrize(
    "content_range",
    ["bytes 0-99/240000", "bytes 96000-96099/250000", None],
    ids=["another-range", "another-size", "none"],
)
def test_a_206_of_another_range_is_never_joined(
    source: ICloudSource,
    emulator: RunningEmulator,
    library: Library,
    tmp_path: Path,
    content_range: str | None,
) -> None:
    """The resumed request is answered with bytes that do not say they are
    the range asked: discarded, and the download starts again from byte 0."""
    item = _photo(source)
    assert library.jpeg.master.original.size == 240000
    emulator.server.inject_truncation(fraction=0.4, mode="cut", times=1)
    headers = dict(OCTETS)
    if content_range is not None:
        headers["Content-Range"] = content_range
    emulator.server.inject("download", status=206, body=b"x" * 100, headers=headers, times=1)
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256
    # The cut, the 206 (the fault answers it), then the whole file again from
    # byte 0: no range asked of the file after the 206.
    assert emulator.server.hits["download"] == 3
    assert emulator.server.range_requests == []


def test_a_download_cut_off_is_still_resumed(
    source: ICloudSource, emulator: RunningEmulator, library: Library, tmp_path: Path
) -> None:
    """A 200 announcing the whole file, cut off by the connection, and a 206
    of the very range asked, cut off too: each is the file's, and resumed."""
    item = _photo(source)
    emulator.server.inject_truncation(fraction=0.4, mode="cut", times=2)
    assert fetch_original(source, item, tmp_path / "out") == library.jpeg.master.original.sha256
    first, second = _offsets(emulator)
    assert 0 < first < second < 240000


def test_pages_on_every_attempt_fail_transiently_saying_why(
    source: ICloudSource, emulator: RunningEmulator, tmp_path: Path
) -> None:
    item = _photo(source)
    emulator.server.inject(
        "download", status=200, body=PAGE, headers={"Content-Type": "text/html"}, times=None
    )
    with pytest.raises(ProviderError) as caught:
        source.fetch(item, item.files[0], tmp_path / "out")
    assert caught.value.transient
    assert "stopped at 0 of 240000 bytes after 4 attempts" in str(caught.value)
    assert "a page (text/html), not the file" in str(caught.value)
    assert (tmp_path / "out").read_bytes() == b""


@pytest.mark.parametrize(
    ("status", "headers", "name", "start", "taken"),
    [
        (200, {"Content-Length": "1000"}, "IMG.JPG", 0, ("", True)),
        (200, {}, "IMG.JPG", 0, ("", False)),  # no size said: kept only if all there
        (
            200,
            {"Content-Length": "136"},
            "IMG.JPG",
            0,
            ("an answer of 136 bytes, not the file's 1000", False),
        ),
        (
            200,
            {"Content-Length": "1000", "Content-Type": "text/html; charset=utf-8"},
            "IMG.JPG",
            0,
            ("a page (text/html), not the file", False),
        ),
        (
            200,
            {"Content-Length": "1000", "Content-Type": "application/json"},
            "IMG.MOV",
            0,
            ("a message (application/json), not the file", False),
        ),
        # An edit's adjustment data is a property list: XML is the file there.
        (
            200,
            {"Content-Length": "1000", "Content-Type": "application/xml"},
            "IMG.AAE",
            0,
            ("", True),
        ),
        (
            200,
            {"Content-Length": "1000", "Content-Type": "text/html"},
            "IMG.AAE",
            0,
            ("a page (text/html), not the file", False),
        ),
        (
            206,
            {"Content-Range": "bytes 400-999/1000", "Content-Length": "600"},
            "IMG.JPG",
            400,
            ("", True),
        ),
        (
            206,
            {"Content-Range": "bytes 0-999/1000"},
            "IMG.JPG",
            400,
            ("bytes 0-999 of 1000, not the bytes 400- of 1000 asked", False),
        ),
        (
            206,
            {"Content-Range": "bytes 400-999/1000", "Content-Length": "136"},
            "IMG.JPG",
            400,
            ("an answer of 136 bytes for a range of 600", False),
        ),
        (
            206,
            {},
            "IMG.JPG",
            400,
            ("a partial answer that does not say which bytes it holds", False),
        ),
        (
            206,
            {"Content-Range": "bytes 0-999/1000"},
            "IMG.JPG",
            0,
            ("HTTP 206, not the file", False),
        ),
        (204, {}, "IMG.JPG", 0, ("HTTP 204, not the file", False)),
    ],
)
def test_which_answers_are_the_file(
    status: int, headers: dict[str, str], name: str, start: int, taken: tuple[str, bool]
) -> None:
    assert answer_problem(status, headers, name=name, size=1000, start=start) == taken


@pytest.mark.parametrize(
    ("name", "head", "problem"),
    [
        ("IMG.JPG", b"\xff\xd8\xff\xe0", ""),
        (
            "IMG.HEIC",
            b"\r\n <!DOCTYPE html>",
            "its first bytes are a page or a message, not a photo or video",
        ),
        (
            "IMG.MOV",
            b'{"error": "try later"}',
            "its first bytes are a page or a message, not a photo or video",
        ),
        ("IMG.AAE", b"<?xml version='1.0'?><plist>", ""),  # adjustment data is XML
        # A QuickTime movie whose first atom is its media data: the atom's
        # size (0x093C0000, 0x207B0000 bytes) begins with a tab or a space
        # and then "<" or "{", yet its bytes say what they are.
        ("MVI_1.MOV", b"\x09<\x00\x00mdat" + bytes(8), ""),
        ("MVI_2.MOV", b" {\x00\x00mdat" + bytes(8), ""),
    ],
)
def test_which_bytes_are_no_photo(name: str, head: bytes, problem: str) -> None:
    assert content_problem(name, head) == problem
