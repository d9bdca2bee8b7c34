"""Shared test helpers: real media files and a real workspace on disk."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import attrs
import pytest
from PIL import Image

from providers.filesystem import write_marker
from providers.icloud.source import ICloudSource
from providers.syncthing.pair import SyncthingPair
from reconciler.cli import main
from reconciler.model import SourceItem


def make_jpeg(path: Path, captured: datetime | None, seed: int = 0, size: int = 64) -> Path:
    """A real JPEG with EXIF DateTimeOriginal (noisy pixels, so it compresses)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.effect_noise((size, size), 40 + seed % 50).convert("RGB")
    im.putpixel((0, 0), (seed % 256, (seed // 256) % 256, 7))
    exif = Image.Exif()
    if captured is not None:
        exif.get_ifd(0x8769)[0x9003] = captured.strftime("%Y:%m:%d %H:%M:%S")
    im.save(path, quality=95, exif=exif)
    return path


@attrs.define
class Run:
    code: int
    out: str
    err: str


@attrs.define
class Workspace:
    root: Path
    config: Path

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def library(self) -> Path:
        return self.root / "library"

    def target(self, name: str) -> Path:
        return self.root / name

    def removal(self, on: bool) -> None:
        """Turn ``policy.removal.enabled`` on or off in the configuration."""
        text = self.config.read_text()
        old, new = ("false", "true") if on else ("true", "false")
        self.config.write_text(text.replace(f"enabled = {old}", f"enabled = {new}"))

    def sidecars(self, name: str, stores: tuple[str, ...]) -> dict[str, str]:
        """The text of ``name``'s one XMP sidecar on each store."""
        out = {}
        for store in stores:
            (xmp,) = self.target(store).rglob(f"{name}.xmp")
            out[store] = xmp.read_text()
        return out

    def run(self, *args: str, now: datetime | None = None, stdin: str = "") -> Run:
        return run_cli(["-c", str(self.config), *args], now=now, stdin=stdin)


def run_cli(args: list[str], *, now: datetime | None = None, stdin: str = "") -> Run:
    """``reconcile ARGS`` in this process (no configuration given unless
    ``args`` has one: the current folder's, or none)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdout=out, stderr=err, stdin=io.StringIO(stdin), now=now)
    return Run(code=code, out=out.getvalue(), err=err.getvalue())


FOLDER_SOURCE = """
[sources.incoming]
kind = "folder"
path = "incoming"
"""

#: Tests keep every store under one tmp_path, on one disk: these targets
#: count as backups of their own there (tests/reconciler/test_same_disk.py
#: shows what happens without it).
FILESYSTEM_TARGETS = """
[targets.nas]
kind = "filesystem"
path = "nas"
same_disk_ok = true
[targets.usb]
kind = "filesystem"
path = "usb"
same_disk_ok = true
"""

#: Tests that are not about compression keep originals: no encoder runs.
KEEP_ORIGINALS = """
[[policy.tiers]]
name = "all"
keep = "original"
"""


def make_workspace(
    root: Path,
    *,
    removal: bool = True,
    extra: str = "",
    sources: str = FOLDER_SOURCE,
    targets: str = FILESYSTEM_TARGETS,
    stores: tuple[str, ...] = ("library", "nas", "usb"),
) -> Workspace:
    """A desired_state.toml under ``root`` with its stores marked; the
    sources and targets are TOML fragments, ``extra`` is appended."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "desired_state.toml"
    head = textwrap.dedent(
        f"""
        [library]
        path = "library"
        [state]
        dir = "state"
        [policy]
        copies = 2
        [policy.removal]
        enabled = {str(removal).lower()}
        keep_recent_days = 30
        pace_seconds = 0
        """
    )
    config.write_text(head + sources + targets + extra)
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    for store in stores:
        write_marker(root / store, store)
    return Workspace(root=root, config=config)


def phone_workspace(
    root: Path,
    pair: SyncthingPair,
    *,
    removal: bool,
    phone_options: str = "",
    sources: str = FOLDER_SOURCE,
) -> Workspace:
    """A workspace archiving ``sources`` (a folder) to a NAS folder and the
    pair's phone; ``phone_options`` are more lines of the phone's target table."""
    targets = textwrap.dedent(
        f"""
        [targets.nas]
        kind = "filesystem"
        path = "nas"
        same_disk_ok = true
        [targets.phone]
        kind = "syncthing"
        path = "{pair.local_folder}"
        folder_id = "{pair.folder_id}"
        device_id = "{pair.phone.device_id}"
        url = "{pair.local.url}"
        """
    )
    return make_workspace(
        root,
        removal=removal,
        sources=sources,
        targets=targets + phone_options,
        extra=KEEP_ORIGINALS,
        stores=("library", "nas"),
    )


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (markers and temporaries excluded)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".reconcile")
    }


def phone_files(pair: SyncthingPair) -> dict[str, bytes]:
    """The files the pair's phone holds (as ``files_under``), Syncthing's
    own temporaries (``.syncthing.*.tmp``, renamed away as a file arrives)
    left out, and a file that arrives or leaves while they are read skipped."""
    found = {}
    for p in sorted(pair.phone_folder.rglob("*")):
        if p.name.startswith((".syncthing.", ".reconcile")) or not p.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            found[str(p.relative_to(pair.phone_folder))] = p.read_bytes()
    return found


def media_under(root: Path) -> dict[str, bytes]:
    """``files_under`` without the XMP sidecars written beside the media."""
    return {k: v for k, v in files_under(root).items() if not k.endswith(".xmp")}


def rot_unseen(path: Path, data: bytes, state: Path) -> None:
    """``path`` comes to hold ``data`` (its size) as bit rot leaves a file:
    same inode, size and mtime, and no ctime moved. A write moves the
    kernel's ctime, which the hash cache compares: the cache is told the
    new one, so the rot is found only by reading the bytes (the gate,
    re-verification), as on a real disk."""
    from reconciler.state import StateDB

    st = path.stat()
    assert len(data) == st.st_size, "rot keeps the size"
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    db = StateDB.in_dir(state)
    try:
        db.db.execute(
            "update hash_cache set ctime_ns = ? where path = ?",
            [path.stat().st_ctime_ns, str(path)],
        )
        db.db.conn.commit()
    finally:
        db.close()


def write_raw_name(folder: Path, raw_name: bytes, data: bytes) -> bytes:
    """Write ``data`` under ``folder`` at a name given as bytes (one that is
    not valid UTF-8: an old camera's card, a disk from another OS); returns
    the path as bytes."""
    path = os.fsencode(folder) + b"/" + raw_name
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


T = TypeVar("T")


def fifo_at(path: Path) -> Path:
    """``path`` (a regular file, or nothing) is now a FIFO nobody writes to:
    another program's, put where the tool expects a file."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def unblock_fifos(folder: Path) -> None:
    """Let every open(2) waiting on a FIFO under ``folder`` go (the hang a
    test found), from either end."""
    for each in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if not each.is_fifo():
                continue
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            with contextlib.suppress(OSError):
                os.close(os.open(each, flags))


def promptly(fn: Callable[[], T], folder: Path, seconds: float = 10.0) -> T:
    """``fn()``'s result or its exception, run on a thread; the test fails if
    it is still running after ``seconds`` (an open of a FIFO under ``folder``
    waiting for ever, a read that never ends) instead of hanging the suite."""
    got: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            got.append(fn())
        except BaseException as e:  # handed to the test's thread
            raised.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        for _ in range(20):  # let it go if it can; if not, it is abandoned
            unblock_fifos(folder)
            worker.join(0.1)
        import pytest

        pytest.fail(f"still running after {seconds:.0f} s (waiting on something under {folder})")
    if raised:
        raise raised[0]
    return got[0]


@contextmanager
def mounted(at: Path, *how: str) -> Iterator[Path]:
    """``mount HOW AT`` for the block: a bind mount (``"--bind", SOURCE``)
    or a disk of its own (``"-t", "tmpfs", "tmpfs"``), invisible to paths.
    Tests run as root (CI does); unmounted on the way out unless the test
    unplugged it itself."""
    assert os.geteuid() == 0, "these tests make mounts: run them as root (CI does)"
    at.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *how, str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=False, capture_output=True)


@contextmanager
def exfat_disk(at: Path, *, mib: int = 32) -> Iterator[Path]:
    """An exFAT disk (as USB disks and phones' SD cards come) mounted at
    ``at`` for the block, through FUSE: names compared without case, no
    ``: * ? " < > |`` in a name, no hard or symbolic links, whole seconds.
    Its image file lies on a disk of its own (a tmpfs beside ``at``), so it
    is no part of the library's disk. Root needed (CI runs as root)."""
    with mounted(at.with_name(f"{at.name}.image"), "-t", "tmpfs", "tmpfs") as holder:
        image = holder / "exfat.img"
        with open(image, "wb") as f:
            f.truncate(mib << 20)
        subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
        loop = subprocess.run(
            ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            at.mkdir(parents=True, exist_ok=True)
            fuse = ["mount.exfat-fuse", "-o", "nonempty", loop, str(at)]
            subprocess.run(fuse, check=True, capture_output=True)
            try:
                yield at
            finally:
                # lazily: FUSE may still be answering a last request
                subprocess.run(["umount", "--lazy", str(at)], check=False, capture_output=True)
        finally:
            subprocess.run(["losetup", "--detach", loop], check=False, capture_output=True)


@contextmanager
def ext4_image(image: Path, at: Path, *, mib: int = 16) -> Iterator[Path]:
    """An ext4 disk image at ``image`` (a file: where it lies is the disk
    its copies count on), attached to a loop device and mounted at ``at``
    for the block. Root needed (CI runs as root)."""
    assert os.geteuid() == 0, "these tests make mounts: run them as root (CI does)"
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(mib << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
    with image_mounted(image, at):
        yield at


@contextmanager
def image_mounted(image: Path, at: Path) -> Iterator[Path]:
    """The disk image ``image`` (its files kept: a card put back) attached to
    a loop device and mounted at ``at`` for the block."""
    loop = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        at.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", loop, str(at)], check=True)
        try:
            yield at
        finally:
            subprocess.run(["umount", str(at)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "--detach", loop], check=False, capture_output=True)


#: ``reconcile ARGS`` as ``python -c`` runs it, its clock at ARGV[1] (ISO).
_AT = (
    "import sys; from datetime import datetime; from reconciler.cli import main; "
    "sys.exit(main(sys.argv[2:], now=datetime.fromisoformat(sys.argv[1])))"
)


def apply_killed_at(
    ws: Workspace, point: str, *, now: datetime | None = None
) -> subprocess.CompletedProcess[str]:
    """``reconcile apply --yes`` in a process of its own, SIGKILLed at the
    crash point ``point`` (``reconciler.crashpoint``: ``RECONCILE_TEST_KILL_AT``),
    its clock at ``now`` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    cli = ["-m", "reconciler.cli"] if now is None else ["-c", _AT, now.isoformat()]
    killed = subprocess.run(
        [sys.executable, *cli, "-c", str(ws.config), "apply", "--yes"],
        cwd=Path(__file__).resolve().parents[1],
        env={**env, "RECONCILE_TEST_KILL_AT": point},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    return killed


#: Two filesystem targets, ``nas`` and ``usb``, at those folders of a workspace.
NAS_AND_USB = """
[targets.nas]
kind = "filesystem"
path = "nas"
[targets.usb]
kind = "filesystem"
path = "usb"
"""


@contextmanager
def on_two_disks(root: Path, *, removal: bool = False) -> Iterator[Workspace]:
    """A workspace at ``root`` (originals kept) whose targets ``nas`` and
    ``usb`` are two disks of their own (tmpfs, mounted and marked; root
    needed), apart from the library's: the set-up of the tests of mounts."""
    with (
        mounted(root / "nas", "-t", "tmpfs", "tmpfs"),
        mounted(root / "usb", "-t", "tmpfs", "tmpfs"),
    ):
        write_marker(root / "nas", "nas")
        write_marker(root / "usb", "usb")
        yield make_workspace(
            root, removal=removal, targets=NAS_AND_USB, extra=KEEP_ORIGINALS, stores=("library",)
        )


def during_icloud_removal(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[], object]
) -> list[Callable[[], object]]:
    """``change`` is made in iCloud once, after the listing, just before the
    first removal (a person on a phone, mid-run); the list it returns is
    empty once it was made."""
    real = ICloudSource.remove
    pending = [change]

    def remove(self: ICloudSource, item: SourceItem, proven: Callable[[], object]) -> None:
        while pending:
            pending.pop()()
        real(self, item, proven)

    monkeypatch.setattr(ICloudSource, "remove", remove)
    return pending


def exiftool_tags(path: Path) -> dict[str, object]:
    """Every tag exiftool (an outside reader) reads in ``path``, by group
    and name (``XMP-dc:Title``)."""
    out = subprocess.run(
        ["exiftool", "-j", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    found: dict[str, object] = json.loads(out.stdout)[0]
    return found


@contextmanager
def paused_apply(ws: Workspace, release: Path) -> Iterator[subprocess.Popen[str]]:
    """``reconcile apply --yes`` in a process of its own, paused after its
    first copy into the library (``RECONCILE_TEST_PAUSE_AT``) for the
    block, so another command can run beside it; let go (``release``
    touched) and waited for on the way out: it must end 0."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    p = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"],
        cwd=Path(__file__).resolve().parents[1],
        env={
            **clean,
            "RECONCILE_TEST_PAUSE_AT": "finish-after:copy-to-library:1",
            "RECONCILE_TEST_PAUSE_FILE": str(release),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{release}.paused").exists():
            assert p.poll() is None, p.communicate()[1]
            assert time.monotonic() < deadline, "the apply never paused"
            time.sleep(0.02)
        yield p
    finally:
        release.touch()
        _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
