"""A person's own file in the library that carries the tool's lineage (a
version saved from a library photo by an editor that keeps its XMP, a tag
edited with exiftool) is the person's, not the tool's: it was never
archived ("No changes") and the next tier's encode replaced it, so the
person's photo was lost everywhere. Lineage is believed only of content the
tool recorded making (``observe.library._made_here``), and a library file is
replaced only while it holds the bytes the tool recorded there
(``FilesystemStore.replace``). Real exiftool and Pillow."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from reconciler.media import read_lineage
from tests.helpers import files_under, make_workspace, media_under
from tests.media.conftest import make_jpeg as make_camera_jpeg

T1 = datetime(2021, 12, 1, tzinfo=UTC)  # samples taken 2021-06-01: tier recent
T2 = datetime(2023, 1, 1, tzinfo=UTC)  # tier older


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def exif(path: Path, *args: str) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *args, str(path)], check=True)


def tag(path: Path, name: str) -> str:
    return subprocess.run(
        ["exiftool", "-s3", f"-{name}", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def _offloaded(ws) -> tuple[Path, bytes]:
    original = make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480)).read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    assert files_under(ws.incoming) == {}
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    assert read_lineage(lib) == (sha(original), "recent")
    return lib, original


def test_edit_of_a_compressed_library_file_is_archived_and_kept(tmp_path: Path) -> None:
    """The person tags the library's photo (exiftool) after it left the source."""
    ws = make_workspace(tmp_path / "ws")
    lib, _original = _offloaded(ws)
    exif(lib, "-Artist=Grandma", "-XMP-dc:Title=Birthday")
    edited = lib.read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    # the person's edit lives only in the library unless archived somewhere
    on_targets = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    assert edited in on_targets, (r.out, "the edited file is on no target")


def test_edit_of_a_compressed_library_file_survives_aging(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    lib, _original = _offloaded(ws)
    exif(lib, "-Artist=Grandma", "-XMP-dc:Title=Birthday")
    assert ws.run("apply", "--yes", now=T1).code == 0
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    names = {p: tag(p, "Artist") for p in ws.library.rglob("*.JPG")}
    names.update({p: tag(p, "Artist") for t in ("nas", "usb") for p in ws.target(t).rglob("*.JPG")})
    assert "Grandma" in names.values(), (r.out, names)


def test_a_rendition_edited_before_the_source_let_go_is_archived(tmp_path: Path) -> None:
    """Removal off: the source keeps the original; the person tags the
    library's compressed file. The tag is archived nowhere."""
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    assert ws.run("apply", "--yes", now=T1).code == 0
    (lib,) = list(ws.library.rglob("IMG_1.JPG"))
    exif(lib, "-Artist=Grandma")
    edited = lib.read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    on_targets = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    assert edited in on_targets, r.out


def test_a_new_photo_made_from_a_library_file_is_archived(tmp_path: Path) -> None:
    """The person crops the library's photo in an editor that keeps its
    metadata (GIMP, darktable keep the XMP packet) and saves the crop beside
    it: a new photo of theirs, only in the library."""
    ws = make_workspace(tmp_path / "ws")
    lib, original = _offloaded(ws)
    crop = lib.with_name("IMG_1-crop.JPG")
    from PIL import Image

    with Image.open(lib) as im:
        # the editor keeps the photo's EXIF and XMP packet, as GIMP does
        im.crop((0, 0, 320, 240)).save(
            crop, quality=90, exif=im.info.get("exif", b""), xmp=im.info["xmp"]
        )
    assert read_lineage(crop) == (sha(original), "recent")
    mine = crop.read_bytes()
    r = ws.run("apply", "--yes", now=T1)
    assert r.code == 0, r.out + r.err
    on_targets = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    assert mine in on_targets, r.out


def test_a_bw_version_saved_beside_the_library_photo_is_not_replaced_by_aging(
    tmp_path: Path,
) -> None:
    """The person saves a black-and-white version of the library's photo
    beside it as IMG_1_bw.JPG (after IMG_1.JPG in path order), from an
    editor that keeps the XMP packet. It is never archived; when the photo
    ages, the encode from the original lands on its path: the person's
    version is gone, and no target ever held it."""
    ws = make_workspace(tmp_path / "ws")
    lib, original = _offloaded(ws)
    bw = lib.with_name("IMG_1_bw.JPG")
    from PIL import Image

    with Image.open(lib) as im:
        im.convert("L").convert("RGB").save(
            bw, quality=98, exif=im.info.get("exif", b""), xmp=im.info["xmp"]
        )
    exif(bw, "-ImageDescription=my black and white version")
    assert read_lineage(bw) == (sha(original), "recent")
    assert ws.run("apply", "--yes", now=T1).code == 0
    r = ws.run("apply", "--yes", now=T2)
    assert r.code == 0, r.out + r.err
    found = {
        str(p.relative_to(ws.root)): tag(p, "ImageDescription")
        for root in (ws.library, ws.target("nas"), ws.target("usb"))
        for p in root.rglob("*.JPG")
    }
    assert "my black and white version" in found.values(), (r.out, found)


def test_an_encode_killed_after_its_replace_leaves_the_tool_s_rendition(tmp_path: Path) -> None:
    """SIGKILL after an encode replaced its library file and before the run
    recorded it: the file there is the tool's rendition, which the records
    do not know. Believed only of what was recorded, it was taken for a new
    photo of the person's and archived beside its original. An encode's
    bytes are recorded (``renditions``) before they replace the file."""
    ws = make_workspace(tmp_path / "ws")
    make_camera_jpeg(ws.incoming / "IMG_1.JPG", size=(640, 480))
    # a rendition on record, at the tier of today: the next run encodes IMG_2 alone
    assert ws.run("apply", "--yes").code == 0
    second = make_camera_jpeg(ws.incoming / "IMG_2.JPG", size=(480, 320)).read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["RECONCILE_TEST_KILL_AT"] = "finish-before:encode:1"
    cmd = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    (lib,) = list(ws.library.rglob("IMG_2.JPG"))
    rendition = lib.read_bytes()
    assert rendition != second and read_lineage(lib) is not None  # replaced, not recorded

    again = ws.run("apply", "--yes")
    assert again.code == 0, again.out + again.err
    held = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    assert held.count(second) == 2, again.out  # the original, twice
    assert rendition not in held, again.out  # never archived as a photo of its own
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_an_edit_made_after_a_run_killed_before_its_encode_is_the_person_s(
    tmp_path: Path,
) -> None:
    """The run is killed as its encodes start (their journal rows written,
    nothing encoded); the person then tags the library's photo. Nothing the
    killed run left may vouch for the edit as the tool's."""
    ws = make_workspace(tmp_path / "ws")
    lib, _original = _offloaded(ws)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    env["RECONCILE_TEST_KILL_AT"] = "started:encode:1"
    cmd = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "apply", "--yes"]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    exif(lib, "-Artist=Grandma")
    edited = lib.read_bytes()
    r = ws.run("apply", "--yes")
    assert r.code == 0, r.out + r.err
    on_targets = [v for t in ("nas", "usb") for v in media_under(ws.target(t)).values()]
    assert edited in on_targets, r.out
    names = [tag(p, "Artist") for p in ws.library.rglob("*.JPG")]
    assert "Grandma" in names, (r.out, names)
