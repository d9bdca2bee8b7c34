"""A target that vanishes (unmounted, moved) after it was found available:
nothing is written into the bare mount point, and the run exits 1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.filesystem import FilesystemStore
from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def _unmount(nas: Path) -> Path:
    """What an unmount looks like: the folder's content is elsewhere and an
    empty directory (the bare mount point) stands at the configured path."""
    away = nas.with_name("nas-moved")
    nas.rename(away)
    nas.mkdir()
    return away


def test_a_target_moved_away_between_plan_and_apply(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photos = {make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i).read_bytes() for i in range(3)}
    saved = tmp_path / "plan.json"
    assert ws.run("plan", "--out", str(saved), now=NOW).code == 0
    away = _unmount(ws.target("nas"))

    r = ws.run("apply", str(saved), "--yes", now=NOW)
    assert r.code == 1
    assert "! unavailable target nas: " in r.out
    assert r.err == "error: target nas could not be read (see '!' above); the rest was done\n"
    assert list(ws.target("nas").iterdir()) == []  # nothing in the bare mount point
    assert list(files_under(away)) == []
    assert set(files_under(ws.target("usb")).values()) == photos
    assert set(files_under(ws.incoming).values()) == photos  # one copy is not two


def test_a_target_unmounted_during_the_copy_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photos = {make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i).read_bytes() for i in range(6)}
    moved: list[Path] = []
    real_write = FilesystemStore._write_new

    def unmount_mid_write(
        self: FilesystemStore, src: Path, rel: str, sha: str, mtime_ns: int | None
    ) -> Any:
        if self.id == "nas" and not moved:
            moved.append(_unmount(ws.target("nas")))  # this write is already in flight
        return real_write(self, src, rel, sha, mtime_ns)

    monkeypatch.setattr(FilesystemStore, "_write_new", unmount_mid_write)
    r = ws.run("apply", "--yes", now=NOW)

    assert r.code == 1, r.out
    assert "nas became unavailable during the run: " in r.out
    assert "was moved, replaced or unmounted during this run" in r.out
    assert list(ws.target("nas").iterdir()) == []  # nothing in the bare mount point
    # What was in flight landed whole in the real target, and nowhere else.
    (away,) = moved
    landed = files_under(away)
    assert landed
    for rel, data in landed.items():  # each one whole, under its own name
        assert data == (ws.incoming / Path(rel).name).read_bytes()
    assert not any(p.name.startswith(".reconcile-tmp") for p in away.rglob("*"))
    assert set(files_under(ws.incoming).values()) == photos  # nothing removed this run
