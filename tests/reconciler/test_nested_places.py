"""No walk enters another configured place, whatever way leads there.

The configuration refuses sources, library, targets and state that contain
one another by path. A bind mount (or a share mounted twice) is invisible to
paths: a target mounted inside a source folder would be listed as source
items, archived, and then removed from the source, which deletes the
target's own files; a target mounted inside another would count one file
as two copies. So every walk knows the configured places' folders by
identity (device, inode) and stops at one met below its root; two places
that are one folder are refused before anything is walked.

The mounts are real: each run is a `reconcile` process in a mount namespace
of its own (`unshare`), so nothing is mounted outside the test.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.base import LocalTree
from providers.filesystem import NestedPlaceError, hashed_tree, scan_tree
from reconciler.errors import ProviderError
from reconciler.observe.hasher import CachedHasher
from reconciler.state import StateDB
from reconciler.walk_ahead import WalkAhead
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

ROOT = Path(__file__).resolve().parents[2]
OLD = datetime(2020, 1, 2, tzinfo=UTC)


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _tree(root: Path) -> None:
    for rel in ("a/one.jpg", "a/inner/two.jpg", "b/three.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())


def test_a_walk_stops_at_a_configured_place_below_its_root_only(tmp_path: Path) -> None:
    _tree(tmp_path)
    # the tree's own root among the places: walked as ever
    own = {_identity(tmp_path): "targets.nas.path"}
    assert len(list(scan_tree(tmp_path, fences=own))) == 3
    # a folder below it that is another place: the walk stops, naming both
    fences = {**own, _identity(tmp_path / "a/inner"): "targets.usb.path"}
    with pytest.raises(NestedPlaceError) as e:
        list(scan_tree(tmp_path, fences=fences))
    assert f"{tmp_path}/a/inner/ is the folder of targets.usb.path" in str(e.value)
    assert f"so {tmp_path} is not listed" in str(e.value)


def test_a_store_walked_ahead_meets_the_same_fence_and_is_not_listed(tmp_path: Path) -> None:
    """The helper walks with the same fences; its failure is walked again
    here, and the listing fails as it would have here."""
    root = tmp_path / "nas"
    _tree(root)
    fences = {_identity(root / "b"): "library.path"}
    db = StateDB(tmp_path / "state.db")
    try:
        hasher = CachedHasher(db)
        hasher.fences = fences
        hasher.ahead = WalkAhead([LocalTree(root)], fences)
        hasher.ahead._hear(until=0)  # walked there, meeting the fence there first
        try:
            with pytest.raises(ProviderError, match=r"is the folder of library\.path"):
                list(hashed_tree("nas", root, hasher))
        finally:
            hasher.ahead.close()
    finally:
        db.close()


def _run_mounted(mounts: list[tuple[Path, Path]], config: Path, *args: str) -> tuple[int, str]:
    """``reconcile -c config args`` in a mount namespace of its own, with
    each (folder, mount point) bind-mounted there first."""
    return _python_mounted(mounts, "-m", "reconciler.cli", "-c", str(config), *args)


def _python_mounted(mounts: list[tuple[Path, Path]], *args: str) -> tuple[int, str]:
    """``python args`` in a mount namespace of its own, with each (folder,
    mount point) bind-mounted there first."""
    binds = [f"mount --bind {shlex.quote(str(a))} {shlex.quote(str(b))}" for a, b in mounts]
    script = " && ".join([*binds, 'exec "$0" "$@"'])
    namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    done = subprocess.run(
        [*namespace, "sh", "-c", script, sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_target_mounted_inside_a_source_is_never_listed_nor_removed(tmp_path: Path) -> None:
    """Without the fence, the target's backup is listed as a source item,
    the gate finds a copy on the NAS (one copy is asked for), and removing
    the item from the source deletes the USB disk's file."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    ws.config.write_text(ws.config.read_text().replace("copies = 2", "copies = 1"))
    backup = make_jpeg(tmp_path / "usb/2020/01/IMG_0001.JPG", OLD, seed=3)
    kept = backup.read_bytes()
    make_jpeg(ws.incoming / "IMG_0002.JPG", OLD, seed=4)  # an ordinary photo beside it
    (ws.incoming / "usb-disk").mkdir()
    for _ in range(2):
        code, out = _run_mounted(
            [(tmp_path / "usb", ws.incoming / "usb-disk")], ws.config, "apply", "--yes"
        )
        assert f"{ws.incoming}/usb-disk/ is the folder of targets.usb.path" in out, out
        assert backup.read_bytes() == kept, out
    assert code != 0
    # the source was not listed: nothing of it archived, nothing removed
    assert (ws.incoming / "IMG_0002.JPG").exists()
    assert not list((tmp_path / "nas").rglob("*.JPG"))


def test_a_target_mounted_inside_another_does_not_make_one_file_two_copies(tmp_path: Path) -> None:
    """Without the fence, the NAS lists the USB disk's file as its own copy:
    two copies counted, one file held, and the source's photo removed."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_0001.JPG", OLD, seed=5)
    (tmp_path / "usb/2020/01").mkdir(parents=True)
    (tmp_path / "usb/2020/01/IMG_0001.JPG").write_bytes(photo.read_bytes())
    (tmp_path / "nas/mirror").mkdir()
    code, out = _run_mounted(
        [(tmp_path / "usb", tmp_path / "nas/mirror")], ws.config, "apply", "--yes"
    )
    assert f"{tmp_path}/nas/mirror/ is the folder of targets.usb.path" in out, out
    assert photo.exists(), out
    assert code != 0
    # the NAS was not listed, so nothing was written there either
    assert not list((tmp_path / "nas").glob("2020"))


def test_two_places_that_are_one_folder_are_refused_before_any_walk(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_0001.JPG", OLD, seed=6)
    # the library's folder mounted where the USB disk's is configured (its
    # marker is the library's, so the check must come before the markers')
    code, out = _run_mounted([(tmp_path / "library", tmp_path / "usb")], ws.config, "plan")
    assert code == 1, out
    assert "library.path" in out and "targets.usb.path" in out and "are the same folder" in out
    assert photo.exists() and not list((tmp_path / "library").rglob("*.JPG"))
    # and `validate` says so beforehand
    code, out = _run_mounted([(tmp_path / "library", tmp_path / "usb")], ws.config, "validate")
    assert code == 1, out
    assert "library.path" in out and "targets.usb.path" in out and "are the same folder" in out


_SWEEPS = """
import sys
from pathlib import Path
from reconciler import config
from reconciler.connect import connect
from reconciler.sweep import restore_aside, sweep_debris
desired = config.load(Path(sys.argv[1]))
print("restored", restore_aside(desired))
print("removed", sweep_debris(desired, connect(desired), before=float("inf")))
"""


def test_the_sweeps_after_a_killed_run_never_enter_a_place_mounted_inside_another(
    tmp_path: Path,
) -> None:
    """After a killed run, the next puts back the files it left aside in a
    folder source, and removes its temporaries from the stores. Without the
    fences, the first renamed a file of a target's disk mounted in the
    source (one archived under a name that carries the aside mark), and
    the second deleted a source's file (of a temporary's name) where the
    source folder is mounted inside the library."""
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS)
    marked = tmp_path / "usb/2020/01/IMG_0001.JPG.reconcile-removing-0123456789ab"
    marked.parent.mkdir(parents=True)
    marked.write_bytes(b"a backup, archived under this very name")
    (ws.incoming / "usb-disk").mkdir()
    # the source's own: a file left aside by the killed run
    left = ws.incoming / "IMG_0002.JPG.reconcile-removing-ba9876543210"
    left.write_bytes(b"left aside by the killed run")
    photo = ws.incoming / "sub/.reconcile-tmp-IMG_0003.JPG"
    photo.parent.mkdir()
    photo.write_bytes(b"a source's photo, under a temporary's name")
    (tmp_path / "library/imports").mkdir()
    debris = tmp_path / "library/2020/.reconcile-tmp-abc"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"half a copy")
    mounts = [
        (tmp_path / "usb", ws.incoming / "usb-disk"),
        (ws.incoming, tmp_path / "library/imports"),
    ]
    code, out = _python_mounted(mounts, "-c", _SWEEPS, str(ws.config))
    assert code == 0, out
    assert marked.read_bytes() == b"a backup, archived under this very name", out
    assert photo.exists(), out
    # what is their own is still swept
    assert (ws.incoming / "IMG_0002.JPG").read_bytes() == b"left aside by the killed run"
    assert not left.exists() and not debris.exists(), out
