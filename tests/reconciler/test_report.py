"""``reconcile report FILE`` and ``status --html FILE``: the page made from
real runs (a folder source archived to two targets over several runs, then
compressed for an older tier), read as HTML and rendered by headless Chromium.

Chromium is the outside reader: it must be installed (make test does), and
a missing one fails the test. It runs behind a proxy on loopback that only
records what it is asked, so neither the page nor Chromium's own background
services reach beyond this machine, and a request the page made is seen.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import Workspace, make_jpeg, make_workspace

T0 = datetime(2026, 1, 1, 3, tzinfo=UTC)
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Six runs that move four photos through every state, then three more
    photos, then a year later an older tier: each run leaves a census."""
    ws = make_workspace(tmp_path_factory.mktemp("report") / "ws")
    for i in range(4):
        make_jpeg(ws.incoming / f"IMG_{i:04d}.JPG", datetime(2025, 6, 1 + i, 12), seed=i, size=200)
    steps = [
        (("plan",), T0, 0),  # in a source only
        (("apply", "--yes", "--only", "library"), T0, 0),  # in the library
        (("apply", "--yes", "--target", "nope"), T0, 1),  # a failed run, with its why
        (("apply", "--yes", "--target", "nas"), T0 + timedelta(days=1), 0),  # on 1 target
    ]
    for args, now, code in steps:
        r = ws.run(*args, now=now)
        assert r.code == code, r.out + r.err
    for i in range(4, 7):  # recent: archived twice but kept in the source
        make_jpeg(ws.incoming / f"IMG_{i:04d}.JPG", T0, seed=i, size=200)
    for now in (T0 + timedelta(days=2), T0 + timedelta(days=400)):
        r = ws.run("apply", "--yes", now=now)
        assert r.code == 0, r.out + r.err
    return ws


@pytest.fixture(scope="module")
def report(history: Workspace) -> Path:
    """``reconcile report`` of those runs, made once (matplotlib takes its
    second or two)."""
    out = history.root / "site" / "report.html"
    r = history.run("report", str(out), now=NOW)
    assert (r.code, r.err) == (0, "")
    assert r.out == f"report written to {out} (6 run(s) with figures, 6 listed)\n"
    return out


class _Page(HTMLParser):
    """The tags and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "action", "data", "background"):
                self.urls.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_the_report_of_real_runs_plots_them_and_lists_the_runs(report: Path) -> None:
    out = report
    # no temporary left; the lock beside it (as the metrics textfile's)
    assert sorted(p.name for p in out.parent.iterdir()) == [".report.html.lock", "report.html"]
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    # Self-contained: four inline PNG plots, no script, no stylesheet or frame
    # to fetch, and no address anywhere.
    assert len(page.urls) == 4
    assert all(u.startswith("data:image/png;base64,") for u in page.urls)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(page.tags)
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", out.read_text())
    assert not re.search(r"https?:|ftp:|//[a-z]", outside_images, re.IGNORECASE)
    for title in (
        "Items by state",
        "Bytes saved by compression (by tier) and by off-loading",
        "Library size and iCloud usage",
        "Library files by tier",
    ):
        assert f"<figcaption>{title}</figcaption>" in out.read_text()
    # The last runs, newest first: when, command, exit, why.
    rows = re.findall(r"<tr class=\"(\w+)\"><td>(\d+)</td><td>(\w+)</td>", out.read_text())
    assert rows == [
        ("ok", "6", "apply"),
        ("ok", "5", "apply"),
        ("ok", "4", "apply"),
        ("bad", "3", "apply"),
        ("ok", "2", "apply"),
        ("ok", "1", "plan"),
    ]
    assert "--target nope: no such source or target" in text
    # Now, as the last run left it: all seven off-loaded, all in the older tier.
    assert "off-loaded from its source 7" in text
    assert "archived on 2+ targets 0" in text
    assert "older 7" in text
    saved = re.search(r"saved by compression (\d+\.\d kB) … in tier older (\d+\.\d kB)", text)
    assert saved and saved[1] == saved[2]  # every file is in tier older now
    assert "Every item the tool knows is archived." in text


def test_status_html_writes_the_same_page(history: Workspace, report: Path) -> None:
    out = history.root / "status.html"
    out.write_text("an older report")  # replaced whole
    r = history.run("status", "--html", str(out), now=NOW)
    assert (r.code, r.err) == (0, "")
    assert out.read_bytes() == report.read_bytes()


def test_status_takes_json_or_html_not_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_workspace(tmp_path / "ws")
    r = ws.run("status", "--json", "--html", str(tmp_path / "r.html"))
    assert r.code == 1
    usage = capsys.readouterr().err  # argparse's own message
    assert usage.splitlines()[-1].endswith("argument --html: not allowed with argument --json")
    assert not (tmp_path / "r.html").exists()


def test_with_no_run_or_one_the_page_says_so_instead_of_plotting(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    out = tmp_path / "report.html"
    assert ws.run("report", str(out), now=NOW).code == 0
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    assert page.urls == []
    assert "No runs yet: nothing has been recorded here." in text
    assert "there are 0" in text and "No figures yet" in text

    make_jpeg(ws.incoming / "IMG_0001.JPG", datetime(2025, 6, 1, 12))
    assert ws.run("plan", now=NOW).code == 0
    assert ws.run("report", str(out), now=NOW).code == 0
    page = _parse(out)
    text = " ".join(" ".join(page.text).split())
    assert page.urls == []
    assert "Not enough runs yet to plot: the plots need at least 2 runs with figures, " in text
    assert "there is 1." in text
    assert "in a source only 1" in text  # the census of that one run is shown
    assert "Last run: plan #1" in text


# ------------------------------------------------------------ in Chromium


class _Recorder:
    """A proxy on loopback that answers nothing and keeps the first line of
    each request: where it was going."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    head = conn.recv(4096).decode("latin-1")
                except OSError:
                    continue
                self.requests.append(head.split("\r\n", 1)[0])

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self.sock.close()
        self.thread.join(5)


#: Chromium's own services, which no flag of this version turns off (its
#: update check, account look-up, network time): Google's hosts, which the
#: page never names (the test above finds no address in it). They reach the
#: recorder, not the network.
CHROMIUM_OWN = re.compile(
    r"^(CONNECT |(GET|POST) http://)"
    r"([a-z0-9-]+\.)*(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)[:/]"
)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    r = _Recorder()
    yield r
    r.close()


def _screenshot(page: Path, png: Path, proxy_port: int) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: `make test` installs it (APT_NEEDS)"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--no-pings",
            "--disable-breakpad",
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            "--proxy-bypass-list=<-loopback>",  # loopback too goes to the recorder
            f"--user-data-dir={png.parent / 'chromium-profile'}",
            f"--screenshot={png}",
            "--window-size=1200,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def _near(pixels: np.ndarray, colour: str, alpha: float, tolerance: int = 12) -> int:
    """How many pixels show ``colour`` drawn at ``alpha`` over white."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    want = alpha * rgb + (1 - alpha) * 255
    return int((np.abs(pixels - want) <= tolerance).all(axis=2).sum())


def test_the_page_renders_in_headless_chromium_and_asks_for_nothing(
    report: Path, tmp_path: Path, recorder: _Recorder
) -> None:
    png = tmp_path / "shot.png"
    _screenshot(report, png, recorder.port)
    # The page itself asked for nothing (Chromium's own services aside).
    assert [r for r in recorder.requests if not CHROMIUM_OWN.match(r)] == []

    im = Image.open(png).convert("RGB")
    assert im.size == (1200, 2000)
    pixels = np.asarray(im).astype(int)
    packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    assert len(np.unique(packed)) > 1000  # not a blank page
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 40  # text is grey
    assert colourful.mean() > 0.05
    # Each plot drew its data where the browser shows it: the stacked
    # states and tiers as areas, the byte curves as lines.
    assert _near(pixels, "#3f51b5", 0.9) > 20_000  # items off-loaded
    assert _near(pixels, "#2e7d32", 0.9) > 5_000  # items archived on 2+ targets
    assert _near(pixels, "#6a1b9a", 0.85) > 5_000  # library files, tier recent
    assert _near(pixels, "#1565c0", 1.0) > 300  # library size
    assert _near(pixels, "#00897b", 1.0) > 300  # saved by compression


def test_the_recorder_does_see_a_page_that_asks(tmp_path: Path, recorder: _Recorder) -> None:
    """The check above is not vacuous: an outside image is seen asked for."""
    page = tmp_path / "asks.html"
    page.write_text('<html><body><img src="http://report.invalid/x.png"></body></html>')
    _screenshot(page, tmp_path / "shot.png", recorder.port)
    assert "GET http://report.invalid/x.png HTTP/1.1" in recorder.requests


def test_the_temporary_a_killed_report_left_is_removed_by_the_next(tmp_path: Path) -> None:
    """A report killed between its temporary and the rename (cron's
    timeout) leaves a hidden copy beside the page; the next removes it,
    under the page's lock, as the metrics textfile's writer does."""
    ws = make_workspace(tmp_path / "ws")
    out = tmp_path / "site" / "report.html"
    out.parent.mkdir()
    left = out.parent / f".report.html.{'ab' * 16}.tmp"
    left.write_text("<html>half a page")
    mine = out.parent / "notes.tmp"  # the person's own: left alone
    mine.write_text("mine")
    assert ws.run("report", str(out), now=NOW).code == 0
    assert not left.exists()
    assert mine.read_text() == "mine"
    assert "No runs yet" in out.read_text()
