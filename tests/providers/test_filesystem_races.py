"""Two writers of one name in one run (parallel downloads of two photos the
camera named alike): neither loses its file, neither replaces the other's,
on a filesystem with hard links and on one without (some NAS mounts)."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from providers import filesystem
from providers.base import ScanEntry
from providers.filesystem import FilesystemStore, write_marker
from reconciler.errors import ProviderError


def _store(tmp_path: Path) -> FilesystemStore:
    root = tmp_path / "library"
    write_marker(root, "library")
    store = FilesystemStore("library", root)
    assert store.availability().available
    return store


def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a FAT card or some shares: the rename fallback is taken."""

    def no_link(src: object, dst: object, **_: object) -> None:
        raise OSError(errno.EPERM, "no hard links on this filesystem")

    monkeypatch.setattr(os, "link", no_link)


def _temp(store: FilesystemStore, rel: str, data: bytes) -> tuple[Path, str]:
    tmp = store.temp_path(rel)
    tmp.write_bytes(data)
    return tmp, hashlib.sha256(data).hexdigest()


def test_adopt_keeps_its_temporary_file_when_another_writer_takes_the_name_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    rel = "2024/05/01/IMG_1234.PNG"
    mine, my_sha = _temp(store, rel, b"mine" * 1000)
    theirs = b"theirs" * 1000
    looked = store._existing

    def race(dest: Path) -> str | None:
        # The other stream places its photo between our look and our link.
        found = looked(dest)
        if dest.name == "IMG_1234.PNG" and not dest.exists():
            dest.write_bytes(theirs)
        return found

    monkeypatch.setattr(store, "_existing", race)
    copy = store.adopt(mine, rel, my_sha)
    assert copy.path != rel
    assert (store.root / copy.path).read_bytes() == b"mine" * 1000
    assert (store.root / rel).read_bytes() == theirs
    assert not mine.exists()


@pytest.mark.parametrize("hard_links", [True, False], ids=["links", "no-links"])
def test_parallel_adopts_of_one_name_keep_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    store = _store(tmp_path)
    if not hard_links:
        _no_hard_links(monkeypatch)
    rel = "2024/05/01/IMG_1234.PNG"
    bodies = [bytes([n]) * (5000 + n) for n in range(16)]
    temps = [_temp(store, rel, b) for b in bodies]
    with ThreadPoolExecutor(16) as pool:
        copies = list(pool.map(lambda t: store.adopt(t[0], rel, t[1]), temps))
    placed = {(store.root / c.path).read_bytes() for c in copies}
    assert placed == set(bodies)
    on_disk = {p.read_bytes() for p in (store.root / "2024/05/01").iterdir()}
    assert on_disk == set(bodies)
    assert not any(
        n.startswith(filesystem.TMP_PREFIX) for n in os.listdir(store.root / "2024/05/01")
    )


@pytest.mark.parametrize("hard_links", [True, False], ids=["links", "no-links"])
def test_parallel_puts_of_one_name_leave_no_temporary_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    """Photos of one name and day copied by parallel workers: each that
    finds the name taken between its look and its link writes anew under
    the next name. The temporary it had written stayed on the disk, a whole
    copy per clash, until a killed run's sweep (and no run was killed)."""
    store = _store(tmp_path)
    if not hard_links:
        _no_hard_links(monkeypatch)
    rel = "2024/05/01/IMG_1234.PNG"
    bodies = [bytes([n]) * (5000 + n) for n in range(16)]
    sources = []
    for n, body in enumerate(bodies):
        src = tmp_path / "src" / f"{n}.png"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(body)
        sources.append((src, hashlib.sha256(body).hexdigest()))
    with ThreadPoolExecutor(16) as pool:
        copies = list(pool.map(lambda s: store.put(s[0], rel, s[1]), sources))
    assert {(store.root / c.path).read_bytes() for c in copies} == set(bodies)
    left = os.listdir(store.root / "2024/05/01")
    assert not [n for n in left if n.startswith(filesystem.TMP_PREFIX)], left


def test_a_failed_write_names_the_store_root_not_the_pinned_descriptor(
    tmp_path: Path,
) -> None:
    """Files are reached through the root's pinned descriptor
    (/proc/PID/fd/N/...); what a person reads names the real folder."""
    store = _store(tmp_path)
    folder = "x" * 300  # longer than a folder's name may be: the mkdir fails
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"photo")
    with pytest.raises(ProviderError) as caught:
        store.put(src, f"2024/{folder}/IMG_1234.JPG", hashlib.sha256(b"photo").hexdigest())
    said = str(caught.value)
    assert "/proc/" not in said, said
    assert f"creating {store.root}/2024/{folder} failed" in said, said


def test_a_store_swapped_after_its_marker_was_read_is_not_listed_as_empty(
    tmp_path: Path,
) -> None:
    """The NAS's marker was read (the root pinned), then another folder took
    its path (unmounted: the bare mount point; or another disk mounted). A
    walk of that folder is not this store's listing: it fails, and the hash
    cache keeps every row of the store (or the next run would read it all)."""
    from reconciler.observe.hasher import CachedHasher
    from reconciler.state import StateDB

    store = _store(tmp_path)
    for i in range(3):
        (store.root / f"2024/IMG_{i}.JPG").parent.mkdir(parents=True, exist_ok=True)
        (store.root / f"2024/IMG_{i}.JPG").write_bytes(b"photo %d" % i)
    db = StateDB.in_dir(tmp_path / "state")
    try:
        assert len(list(store.list_copies(CachedHasher(db)))) == 3
        cached = db.hash_rows(str(store.root), str(store.root) + "0")
        before = [row[0] for row in cached]
        assert len(before) == 3
        assert store.availability().available  # the marker read, the root pinned

        class Unmounting(CachedHasher):
            def walk(self, root: Path, **how: Any) -> list[ScanEntry]:
                os.rename(store.root, tmp_path / "unmounted")  # the disk goes away...
                store.root.mkdir()  # ...leaving the bare mount point
                return super().walk(root, **how)

        with pytest.raises(ProviderError, match="another folder is there now"):
            list(store.list_copies(Unmounting(db)))
        after = [row[0] for row in db.hash_rows(str(store.root), str(store.root) + "0")]
        assert after == before
    finally:
        db.close()
        store.close()
