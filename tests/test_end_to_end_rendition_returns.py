"""A file the library made by encoding for an earlier tier, brought back into a
source after the library moved the photo on to a heavier tier (a phone that
synced its old copy back, a backup of the library folder copied in): it is
still the library's own content, never a new original. The state DB
remembers every file ever made by encoding, not only the library's current
ones. Through the whole tool, on real files."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import Workspace, files_under, make_workspace
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # the sample was taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older
T3 = datetime(2025, 1, 1, tzinfo=UTC)  # tier archive
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encoded_twice(tmp_path: Path) -> tuple[Workspace, bytes, bytes, Path]:
    """A photo imported and encoded for tier recent (off-loaded), then
    encoded again for tier older: (workspace, original, recent copy, library file)."""
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    recent = lib.read_bytes()
    assert read_lineage(lib) == (sha(original), "recent")
    assert files_under(ws.incoming) == {}
    assert ws.run("apply", "--yes", now=T2).code == 0
    assert read_lineage(lib) == (sha(original), "older")
    return ws, original, recent, lib


def test_an_earlier_tiers_copy_brought_back_is_archived_as_it_is_and_never_encoded(
    tmp_path: Path,
) -> None:
    ws, original, recent, lib = encoded_twice(tmp_path)
    older = lib.read_bytes()
    (ws.incoming / "IMG_1.JPG").write_bytes(recent)  # the phone syncs its old copy back

    p = ws.run("plan", now=T2)
    assert p.out.splitlines() == [
        "reconcile will perform these actions:",
        "  + copy-to-target[nas] incoming:IMG_1.JPG: no verified copy on nas",
        "  + copy-to-target[usb] incoming:IMG_1.JPG: no verified copy on usb",
        "  - remove-from-source incoming:IMG_1.JPG (578 days old): archived (2 verified copies), "
        "older than keep_recent_days (30)",
        "",
        "Not done this run:",
        "  · skipped incoming:IMG_1.JPG: an earlier encoding of the library's own "
        f"2021/06/01/IMG_1.JPG (now tier older, made from original {sha(original)[:10]}): "
        "archived as it is, never compressed twice",
        "",
        "Plan: 2 to copy to targets, 1 to remove from sources. (1 skipped)",
    ]
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    assert "encode" not in r.out, r.out

    # The library still holds one file of the photo, untouched, its lineage
    # naming the true original.
    assert [q.name for q in ws.library.rglob("*.JPG")] == ["IMG_1.JPG"]
    assert lib.read_bytes() == older
    assert read_lineage(lib) == (sha(original), "older")
    # The copy was archived byte for byte, then (its copies proven) left the source.
    for target in ("nas", "usb"):
        held = files_under(ws.target(target))
        assert held["2021/06/01/IMG_1.JPG"] == original
        assert recent in held.values()
    assert files_under(ws.incoming) == {}
    again = ws.run("plan", "--detailed-exitcode", now=T2)
    assert (again.code, again.out) == (0, NO_CHANGES)


def test_every_earlier_encoding_is_remembered(tmp_path: Path) -> None:
    """Three tiers on: the copies made for recent and for older both come
    back; neither is taken for an original."""
    ws, original, recent, lib = encoded_twice(tmp_path)
    older = lib.read_bytes()
    assert ws.run("apply", "--yes", now=T3).code == 0
    assert read_lineage(lib) == (sha(original), "archive")
    archive = lib.read_bytes()
    (ws.incoming / "phone").mkdir()
    (ws.incoming / "phone" / "IMG_1.JPG").write_bytes(recent)
    (ws.incoming / "backup").mkdir()
    (ws.incoming / "backup" / "IMG_1.JPG").write_bytes(older)

    r = ws.run("apply", "--yes", now=T3)
    assert r.code == 0, r.out + r.err
    assert "encode" not in r.out, r.out
    assert (
        "  · skipped (2): an earlier encoding of the library's own 2021/06/01/IMG_1.JPG "
        f"(now tier archive, made from original {sha(original)[:10]}): archived as it is, "
        "never compressed twice\n"
        "      incoming:backup/IMG_1.JPG\n"
        "      incoming:phone/IMG_1.JPG\n"
    ) in r.out, r.out
    assert [q.name for q in ws.library.rglob("*.JPG")] == ["IMG_1.JPG"]
    assert lib.read_bytes() == archive
    held = set(files_under(ws.target("nas")).values())
    assert {original, recent, older} <= held
    assert files_under(ws.incoming) == {}
    assert ws.run("plan", "--detailed-exitcode", now=T3).code == 0


def test_a_state_db_from_before_knows_the_encodings_its_library_held(tmp_path: Path) -> None:
    """A state DB written before renditions were remembered: the migration
    fills them from the library's rows, so the copy made for recent is known
    once the library moves on to older."""
    ws = make_workspace(tmp_path / "ws")
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    recent = lib.read_bytes()
    state = ws.root / "state" / "state.db"
    conn = sqlite3.connect(state)
    conn.execute("drop table if exists renditions")
    conn.execute("update meta set value = '12' where key = 'schema_version'")
    conn.commit()
    conn.close()

    assert ws.run("apply", "--yes", now=T2).code == 0  # migrates, then encodes for older
    assert read_lineage(lib) == (sha(original), "older")
    (ws.incoming / "IMG_1.JPG").write_bytes(recent)
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    assert "an earlier encoding of the library's own 2021/06/01/IMG_1.JPG" in r.out, r.out
    assert "encode" not in r.out, r.out
    assert [q.name for q in ws.library.rglob("*.JPG")] == ["IMG_1.JPG"]
    assert read_lineage(lib) == (sha(original), "older")


def test_an_earlier_encoding_downloaded_from_a_remote_source_is_not_adopted(
    tmp_path: Path,
) -> None:
    """The copy made for recent, uploaded to iCloud from the phone: its hash
    is known only once downloaded. The download is then that photo's earlier
    encoding, not adopted into the library beside the photo as a new one."""
    from providers.fake import FakeSource
    from reconciler import config
    from reconciler.apply import Applier
    from reconciler.connect import connect
    from reconciler.observe import observe
    from reconciler.plan import plan
    from reconciler.state import StateDB

    ws, original, recent, lib = encoded_twice(tmp_path)
    older = lib.read_bytes()
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    try:
        cloud = FakeSource("incoming")  # remote: hashes unknown until fetched
        cloud.add("asset-1", {"IMG_1.JPG": recent}, datetime(2021, 6, 1, tzinfo=UTC))
        conn.sources = {"incoming": cloud}
        world = observe(desired, db, conn, now=T2)
        done = Applier(desired, db, conn, world, run_id=db.start_run("test"), sleep=lambda _: None)
        result = done.apply(plan(desired, world, T2))
        (download,) = [o for o in result.outcomes if o.kind == "download"]
        assert download.detail == (
            "downloaded; an earlier encoding of 2021/06/01/IMG_1.JPG, kept as it is"
        ), download
        encodes = [o for o in result.outcomes if o.kind == "encode"]
        assert [o.status for o in encodes] == ["skipped"], encodes  # nothing to encode
        world = observe(desired, db, conn, now=T2)  # as the next run sees it
        assert [f.path for f in world.library.files] == ["2021/06/01/IMG_1.JPG"]
        assert world.library.index()[sha(original)].sha256 == sha(older)
        # Archived as it was downloaded, then removed from the source as
        # any item is (its copies proven): nothing is left to do.
        assert plan(desired, world, T2).actions == ()
        assert cloud.removed == ["asset-1"]
    finally:
        conn.close()
        db.close()
    assert lib.read_bytes() == older
    assert read_lineage(lib) == (sha(original), "older")
    assert recent in files_under(ws.target("nas")).values()
