"""Observation's hot loops make ``MediaFile``, ``SourceItem``,
``LibraryFile`` and ``FileCopy`` positionally (``tuple.__new__``: a tenth of
a keyword call, once per file of every store, every run). Nothing checks a
positional tuple against its fields' order, so these tests do: what a run
observes is exactly the value made by keyword, field by field, for a single
photo, a Live Photo pair and a file in a sub-folder, in the source, the
library and the targets (an unreadable file's ``problem``:
test_unreadable_source.py). A field added, removed or reordered
without the hot loops following fails here.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from reconciler.config import load
from reconciler.connect import connect
from reconciler.hashing import sha256_file
from reconciler.model import FileCopy, LibraryFile, MediaFile, SourceItem, World
from reconciler.observe import observe
from reconciler.state import StateDB
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

WHEN = datetime(2021, 6, 1, 12, 0, tzinfo=UTC)


def _observe(config: Path, state: Path) -> World:
    desired = load(config)
    db = StateDB.in_dir(state)
    try:
        return observe(desired, db, connect(desired), now=datetime(2026, 12, 1, tzinfo=UTC))
    finally:
        db.close()


def test_each_observed_value_is_the_one_made_by_keyword(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    still = make_jpeg(ws.incoming / "2021" / "IMG_0001.JPG", WHEN, seed=1)
    video = ws.incoming / "2021" / "IMG_0001.MOV"
    video.write_bytes(b"\0\0\0\x18ftypqt  " + os.urandom(64))
    os.utime(video, (WHEN.timestamp(), WHEN.timestamp()))
    single = make_jpeg(ws.incoming / "IMG_0002.JPG", WHEN, seed=2)
    assert ws.run("apply", "--yes").code == 0
    world = _observe(ws.config, tmp_path / "state")

    (source,) = world.sources
    items = {i.key: i for i in source.items}
    pair = items["2021/IMG_0001.JPG"]
    assert pair == SourceItem(
        source_id="incoming",
        key="2021/IMG_0001.JPG",
        files=(
            MediaFile(
                name="IMG_0001.JPG",
                size=still.stat().st_size,
                ref="2021/IMG_0001.JPG",
                sha256=sha256_file(still),
            ),
            MediaFile(
                name="IMG_0001.MOV",
                size=video.stat().st_size,
                ref="2021/IMG_0001.MOV",
                role="live_video",
                sha256=sha256_file(video),
            ),
        ),
        captured_at=pair.captured_at,
    )
    assert pair.captured_at is not None and pair.captured_at.tzinfo is not None
    assert pair.version == "" and pair.metadata is None
    assert items["IMG_0002.JPG"] == SourceItem(
        source_id="incoming",
        key="IMG_0002.JPG",
        files=(
            MediaFile(
                name="IMG_0002.JPG",
                size=single.stat().st_size,
                ref="IMG_0002.JPG",
                sha256=sha256_file(single),
            ),
        ),
        captured_at=WHEN,
    )
    lib = {f.path: f for f in world.library.files}
    assert len(lib) == 3
    for f in lib.values():
        on_disk = ws.library / f.path
        assert f == LibraryFile(
            path=f.path,
            sha256=sha256_file(on_disk),
            original_sha256=sha256_file(on_disk),
            tier="original",
            size=on_disk.stat().st_size,
            captured_at=f.captured_at,
            # recorded when the file was placed: what it is in its item
            role="live_video" if f.path.endswith(".MOV") else "original",
        )
        assert isinstance(f.captured_at, datetime) and f.captured_at.tzinfo is not None
    (single_lib,) = (f for f in lib.values() if f.path.endswith("IMG_0002.JPG"))
    assert single_lib.captured_at == WHEN

    for t in world.targets:
        assert len(t.copies) == 3
        for c in t.copies:
            on_disk = ws.target(t.target_id) / c.path
            assert c == FileCopy(
                store_id=t.target_id,
                path=c.path,
                size=on_disk.stat().st_size,
                mtime_ns=on_disk.stat().st_mtime_ns,
                sha256=sha256_file(on_disk),
            )
