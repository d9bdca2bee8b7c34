"""A library file made by encoding, brought back into a source (a person
re-importing from the library, a phone that synced it): it is the library's
own content, never a new original. Through the whole tool, on real files."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import encode_file, read_lineage
from tests.helpers import Workspace, files_under, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the sample was taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # 1.6 years later: tier older
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def imported(tmp_path: Path) -> tuple[Workspace, bytes, Path]:
    """A photo imported, encoded for tier recent and off-loaded; then its
    library file copied back into the import folder."""
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (sha(original), "recent")
    assert files_under(ws.incoming) == {}
    (ws.incoming / "again").mkdir()
    shutil.copy2(lib, ws.incoming / "again" / "IMG_1.JPG")
    return ws, original, lib


def test_brought_back_file_is_archived_as_it_is_and_its_original_encoded_once(
    tmp_path: Path,
) -> None:
    ws, original, lib = imported(tmp_path)
    compressed = lib.read_bytes()

    p = ws.run("plan", now=T2)
    assert p.out.splitlines() == [
        "reconcile will perform these actions:",
        "  + copy-to-target[nas] incoming:again/IMG_1.JPG: no verified copy on nas",
        "  + copy-to-target[usb] incoming:again/IMG_1.JPG: no verified copy on usb",
        "  ~ encode library:2021/06/01/IMG_1.JPG (captured 2021-06-01, 1.6 years ago): "
        "tier older (quality 75), library has recent",
        "  - remove-from-source incoming:again/IMG_1.JPG (578 days old): archived (2 verified "
        "copies), "
        "older than keep_recent_days (30)",
        "",
        "Not done this run:",
        "  · skipped incoming:again/IMG_1.JPG: the library's own 2021/06/01/IMG_1.JPG "
        f"(tier recent, made from original {sha(original)[:10]}): archived as it is, "
        "never compressed twice",
        "",
        "Plan: 2 to copy to targets, 1 to encode, 1 to remove from sources. (1 skipped)",
    ]
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err

    # One library file: the photo, encoded for tier older from its original
    # (fetched from a target), never from the compressed copy.
    assert [q.name for q in ws.library.rglob("IMG_1*.JPG")] == ["IMG_1.JPG"]
    assert read_lineage(lib) == (sha(original), "older")
    src, expected = tmp_path / "original.jpg", tmp_path / "expected.jpg"
    src.write_bytes(original)
    encode_file(
        src,
        expected,
        quality=75,
        crf=None,
        original_sha256=sha(original),
        tier="older",
        replaces_size=len(compressed),
    )
    assert lib.read_bytes() == expected.read_bytes()
    # The brought-back file was archived as it was, then left the source.
    for target in ("nas", "usb"):
        held = files_under(ws.target(target))
        assert held["2021/06/01/IMG_1.JPG"] == original
        assert compressed in held.values()
    assert files_under(ws.incoming) == {}
    again = ws.run("plan", "--detailed-exitcode", now=T2)
    assert (again.code, again.out) == (0, NO_CHANGES)


def test_brought_back_file_leaves_the_library_file_its_originals(tmp_path: Path) -> None:
    """In the same tier nothing is encoded, and the library file still
    belongs to its original: when it ages, it is encoded from that."""
    ws, original, lib = imported(tmp_path)
    compressed = lib.read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert "encode" not in r.out
    assert lib.read_bytes() == compressed
    assert files_under(ws.incoming) == {}
    assert ws.run("plan", now=T1).out == NO_CHANGES

    p = ws.run("plan", now=T2)
    assert p.out.splitlines()[1:2] == [
        "  ~ encode library:2021/06/01/IMG_1.JPG (captured 2021-06-01, 1.6 years ago): "
        "tier older (quality 75), library has recent",
    ]
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert [q.name for q in ws.library.rglob("IMG_1*.JPG")] == ["IMG_1.JPG"]
    assert read_lineage(lib) == (sha(original), "older")
    assert ws.run("plan", "--detailed-exitcode", now=T2).code == 0


def test_a_library_file_downloaded_back_from_a_remote_source_stays_the_librarys(
    tmp_path: Path,
) -> None:
    """The compressed file AirDropped to the phone and uploaded to iCloud:
    its hash is known only once downloaded, so the planner cannot tell.
    Downloaded, it was adopted onto the very library file it is (same bytes,
    same dated name) and recorded there as an original, to be encoded again.
    Now the download is the library's own content, and the file keeps its
    lineage."""
    from providers.fake import FakeSource
    from reconciler import config
    from reconciler.apply import Applier
    from reconciler.connect import connect
    from reconciler.observe import observe
    from reconciler.plan import plan
    from reconciler.state import StateDB

    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    compressed = lib.read_bytes()
    assert read_lineage(lib) == (sha(original), "recent")
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    try:
        cloud = FakeSource("incoming")  # remote: hashes unknown until fetched
        cloud.add("asset-1", {"IMG_1.JPG": compressed}, datetime(2021, 6, 1, tzinfo=UTC))
        conn.sources = {"incoming": cloud}
        world = observe(desired, db, conn, now=T1)
        done = Applier(desired, db, conn, world, run_id=db.start_run("test"), sleep=lambda _: None)
        result = done.apply(plan(desired, world, T1))
        (download,) = [o for o in result.outcomes if o.kind == "download"]
        assert "the library's own 2021/06/01/IMG_1.JPG" in download.detail, download
        world = observe(desired, db, conn, now=T1)  # as the next run sees it
        assert world.library.index()[sha(original)].sha256 == sha(compressed)
    finally:
        conn.close()
        db.close()
    assert lib.read_bytes() == compressed
    assert read_lineage(lib) == (sha(original), "recent")
    assert [p.name for p in ws.library.rglob("IMG_1*.JPG")] == ["IMG_1.JPG"]
