"""Hypothesis on real folders: reused names and nested paths never cost a photo.

Worlds are a folder source (a camera card) whose files reuse names across
subfolders, whose emptied paths receive new photos between runs (a counter
reset), and whose targets or library may have been put *inside* the card —
a mistake the configuration refuses, injected here behind its back to prove
the removal gate's own defence. After every removal, and after every run:
each removed file's bytes are on ``copies`` stores outside the card, and no
file ever disappears from a target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.filesystem import FilesystemStore, write_marker
from providers.folder import FolderSource
from reconciler import config
from reconciler.apply import Applier
from reconciler.connect import Connected
from reconciler.model import SourceItem
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.state import StateDB
from tests.helpers import files_under

NOW = datetime(2026, 11, 25, tzinfo=UTC)
OLD_NS = int((NOW - timedelta(days=400)).timestamp() * 1e9)
COPIES = 2
SUBDIRS = ("", "DCIM", "DCIM/100CANON")


def _photo(content: int) -> bytes:
    return f"photo {content} ".encode() * 40


class WatchedFolder(FolderSource):
    """Checks the invariant itself, on the real disk, before every removal."""

    def __init__(self, root: Path, outside: list[Path]) -> None:
        super().__init__("card", root)
        self.outside = outside  # store roots that are not inside the card
        self.violations: list[str] = []

    def remove(self, item: SourceItem, proven: Callable[[], object]) -> None:
        # read before the source moves them aside
        contents = {f.ref: (self.root / f.ref).read_bytes() for f in item.files}

        def at_the_deletion() -> None:
            proven()  # the gate passed: the copies must be there now
            for ref, data in contents.items():
                holders = [r for r in self.outside if data in files_under(r).values()]
                if len(holders) < COPIES:
                    self.violations.append(f"{ref} removed with copies on {holders}")

        super().remove(item, at_the_deletion)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(
        st.tuples(st.sampled_from(SUBDIRS), st.integers(0, 2), st.integers(0, 4)),
        min_size=1,
        max_size=6,
        unique_by=lambda t: (t[0], t[1]),
    ),
    reused=st.lists(st.tuples(st.integers(0, 5), st.integers(5, 8)), max_size=3),
    nested=st.sampled_from(["none", "target", "library"]),
)
def test_reused_names_and_nested_paths_never_cost_a_photo(
    files: list[tuple[str, int, int]], reused: list[tuple[int, int]], nested: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        card = root / "card"
        places = {
            "t1": card / "backup" if nested == "target" else root / "t1",
            "t2": root / "t2",
            "library": card / "Library" if nested == "library" else root / "library",
        }
        for store_id, path in places.items():
            write_marker(path, store_id)
        desired = config.parse(
            {
                "library": {"path": "library"},
                "state": {"dir": "state"},
                "sources": {"card": {"kind": "folder", "path": "card"}},
                "targets": {
                    k: {"kind": "filesystem", "path": k, "same_disk_ok": True} for k in ("t1", "t2")
                },
                "policy": {
                    "copies": COPIES,
                    "tiers": [{"name": "all", "keep": "original"}],
                    "removal": {"enabled": True, "keep_recent_days": 30, "pace_seconds": 0},
                },
                "apply": {"retries": 1, "backoff_base_s": 0},
            },
            name="d",
            base=root,
        )
        # The mistake the configuration refuses, made behind its back.
        desired = attrs.evolve(
            desired,
            library=config.Library(path=str(places["library"])),
            targets={
                k: config.FilesystemTarget(
                    kind="filesystem", path=str(places[k]), same_disk_ok=True
                )
                for k in ("t1", "t2")
            },
        )
        outside = [p for k, p in places.items() if k != "library" and not p.is_relative_to(card)]
        source = WatchedFolder(card, outside)
        written: list[Path] = []
        for subdir, name, content in files:
            path = card / subdir / f"IMG_{name}.JPG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_photo(content))
            os.utime(path, ns=(OLD_NS, OLD_NS))
            written.append(path)
        conn = Connected(
            sources={"card": source},
            targets={k: FilesystemStore(k, places[k]) for k in ("t1", "t2")},
            library=FilesystemStore("library", places["library"]),
        )
        db = StateDB.in_dir(root / "state")
        seen: dict[str, dict[str, bytes]] = {k: {} for k in ("t1", "t2")}
        contents = {c for _, _, c in files}
        try:
            for run in range(1, 6):
                if run == 2:  # a camera counter reset: new photos at emptied paths
                    for index, content in reused:
                        path = written[index % len(written)]
                        if not path.exists():
                            path.write_bytes(_photo(content))
                            contents.add(content)
                            os.utime(path, ns=(OLD_NS, OLD_NS))
                world = observe(desired, db, conn, now=NOW)
                the_plan = plan(desired, world, NOW)
                Applier(desired, db, conn, world, run_id=run, sleep=lambda _: None).apply(the_plan)
                assert source.violations == []
                for k in ("t1", "t2"):  # nothing ever leaves a target
                    now_held = files_under(places[k])
                    assert seen[k].items() <= now_held.items(), k
                    seen[k] = now_held
            # Every photo ever written is somewhere safe: still on the card,
            # or on two stores outside it.
            for content in contents:
                data = _photo(content)
                on_card = data in files_under(card).values()
                safe = [r for r in outside if data in files_under(r).values()]
                if not on_card:
                    assert len(safe) >= COPIES, (content, safe)
            if nested == "none":  # a sane layout converges
                world = observe(desired, db, conn, now=NOW)
                assert plan(desired, world, NOW).actions == ()
                assert files_under(card) == {}
        finally:
            conn.close()
            db.close()
