"""Seeding the emulator: a generated library, or any folder of media files.

``generate_library`` writes a small but awkward library: JPEGs with EXIF
DateTimeOriginal spread over several years, HEICs, Live Photo pairs
(``IMG_n.HEIC`` + ``IMG_n.MOV``), short videos made by ffmpeg, photos that
share a filename but not their bytes, and one photo without any date; tiny
and flat for tests, or camera-like (``camera``) for the demo.
``add_folder`` loads a folder into an account, pairing Live Photos by stem;
``add_touches`` then does what a person does in Photos (edits, favourites,
albums, captions, a RAW+JPEG pair, a hidden photo).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from providers.icloud.emulator import camera
from providers.icloud.emulator.store import Account, Blob, EmulatedAsset
from reconciler.media.kinds import is_archivable

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".heic", ".heif", ".png", ".gif", ".mpo", ".dng", ".tif", ".tiff"}
)
VIDEO_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v"})
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132


def _image(rng: random.Random, size: tuple[int, int] = (48, 32)) -> Image.Image:
    # Random pixels make every file's bytes unique (distinct SHA-256).
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def _exif(when: datetime | None) -> Image.Exif:
    exif = Image.Exif()
    if when is not None:
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        exif[_DATETIME] = stamp
        exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = stamp
    return exif


def _write_jpeg(
    path: Path, rng: random.Random, when: datetime | None, photo_size: tuple[int, int] | None
) -> None:
    if photo_size is None:
        _image(rng).save(path, "JPEG", quality=80, exif=_exif(when))
        return
    quality = rng.choice(camera.JPEG_QUALITIES)
    camera.photo(rng, photo_size).save(path, "JPEG", quality=quality, exif=_exif(when))


def _write_heic(
    path: Path, rng: random.Random, when: datetime | None, photo_size: tuple[int, int] | None
) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    exif = _exif(when).tobytes()
    if photo_size is None:
        _image(rng, (64, 48)).save(path, "HEIF", quality=60, exif=exif)
        return
    # A HEIC costs seconds to re-encode where a JPEG costs milliseconds
    # (shared/reference/media.md): the demo's are smaller, to stay quick.
    size = (photo_size[0] * 3 // 5, photo_size[1] * 3 // 5)
    camera.photo(rng, size).save(
        path,
        "HEIF",
        quality=camera.HEIC_QUALITY,
        exif=exif,
        enc_params={"preset": camera.HEIC_PRESET},
    )


def _write_video(
    path: Path, when: datetime, seconds: float, seed: int, photo_size: tuple[int, int] | None
) -> None:
    if photo_size is None:
        camera.write_video(path, when, seconds, seed, size=(64, 48), rate=10)
    else:
        camera.write_video(path, when, seconds, seed)


def generate_library(
    dest_dir: Path | str,
    count: int = 50,
    years: int = 5,
    seed: int = 0,
    *,
    photo_size: tuple[int, int] | None = None,
) -> list[Path]:
    """Write about ``count`` media files under ``dest_dir``; returns them.

    Capture dates go round the ``years`` up to now, so every age tier has
    items. ``photo_size`` (e.g. ``(1600, 1200)``) makes the media camera-like
    (``camera``: JPEGs at quality 92-95 with detail at every scale, HEICs
    at 3/5 of that size, phone-like clips) so that re-encoding saves bytes;
    None writes tiny flat ones, quick for tests that only need files.
    Deterministic for a given ``seed`` (except ffmpeg's container bytes).
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    year = timedelta(days=365)
    start = datetime.now(UTC).replace(microsecond=0) - year * max(1, years)
    clip = 2.0 if photo_size else 1.0
    dated = 0

    def when() -> datetime:
        # Round the years in turn, a random moment in each: every year, and
        # so every age tier, gets its share, whatever the seed.
        nonlocal dated
        dated += 1
        offset = rng.randrange(int(year.total_seconds()))
        return start + year * (dated % max(1, years)) + timedelta(seconds=offset)

    written: list[Path] = []
    n = 0

    def name(ext: str) -> Path:
        nonlocal n
        n += 1
        return dest / f"IMG_{n:04d}{ext}"

    specials = min(10, max(0, count - 1))
    if specials >= 10:
        for _ in range(2):
            path = name(".HEIC")
            _write_heic(path, rng, when(), photo_size)
            written.append(path)
        for _ in range(2):
            date = when()
            still = name(".HEIC")
            _write_heic(still, rng, date, photo_size)
            movie = still.with_suffix(".MOV")
            _write_video(movie, date, clip / 2, rng.randrange(1000), photo_size)
            written += [still, movie]
        for ext in (".MOV", ".MP4"):
            path = dest / f"VID_{n:04d}{ext}"
            n += 1
            _write_video(path, when(), clip, rng.randrange(1000), photo_size)
            written.append(path)
        # Same name and (nearly) same size, different content: two cameras,
        # or a phone that restarted its counter.
        for folder in ("dupes-a", "dupes-b"):
            (dest / folder).mkdir(exist_ok=True)
            for dup in ("IMG_0001.JPG", "IMG_0002.JPG"):
                path = dest / folder / dup
                _write_jpeg(path, rng, when(), photo_size)
                written.append(path)
    else:
        specials = 0
    undated = name(".JPG")
    _write_jpeg(undated, rng, None, photo_size)
    written.append(undated)
    for _ in range(max(0, count - specials - 1)):
        path = name(".JPG")
        _write_jpeg(path, rng, when(), photo_size)
        written.append(path)
    return written


def image_date(path: Path) -> datetime | None:
    """EXIF DateTimeOriginal (naive, taken as UTC), or None."""
    if path.suffix.lower() in (".heic", ".heif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    except OSError:
        return None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def video_date(path: Path) -> datetime | None:
    """The container's creation_time (ffprobe), or None."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    result = subprocess.run(
        [ffprobe, "-v", "quiet", "-print_format", "json", "-show_format", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        stamp = json.loads(result.stdout)["format"]["tags"]["creation_time"]
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, KeyError, TypeError):
        return None


def add_folder(account: Account, folder: Path) -> int:
    """Add every file under ``folder`` (junk such as ``.DS_Store`` aside, and
    whatever its type: an MPO or a file of unknown type is an asset too);
    Live Photos (an image and a .MOV with the same stem, side by side) become
    one asset. Returns the number of assets added."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_archivable(p.relative_to(folder).as_posix())
    )
    by_stem = {(p.parent, p.stem.lower(), p.suffix.lower()): p for p in files}
    paired: set[Path] = set()
    added = 0
    for path in files:
        ext = path.suffix.lower()
        if ext in IMAGE_EXTENSIONS:
            movie = by_stem.get((path.parent, path.stem.lower(), ".mov"))
            if movie is not None:
                paired.add(movie)
            account.add_asset(path, path.name, asset_date=image_date(path), live_video=movie)
            added += 1
    for path in files:
        if path.suffix.lower() in VIDEO_EXTENSIONS and path not in paired:
            account.add_asset(path, path.name, asset_date=video_date(path))
            added += 1
        elif path.suffix.lower() not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            account.add_asset(path, path.name, asset_date=image_date(path))
            added += 1
    return added


def add_touches(
    account: Account, seed: int = 0, *, photo_size: tuple[int, int] | None = None
) -> dict[str, list[str]]:
    """What a person does in Photos, on a seeded library: edits (a photo and
    a video), a RAW+JPEG pair, favourites, a hidden photo, two albums,
    captions, descriptions, keywords and locations. Returns the file names
    touched, by what was done to them (for the demo's summary).
    ``photo_size``: as for ``generate_library`` (the edited renditions)."""
    rng = random.Random(seed)
    assets = sorted(account.live_assets(), key=lambda a: a.asset_id)
    stills = [a for a in assets if a.master.uti == "public.jpeg" and a.asset_date_ms]
    videos = [a for a in assets if a.is_video and not a.is_live]
    done: dict[str, list[str]] = {}

    def note(what: str, asset: EmulatedAsset) -> None:
        done.setdefault(what, []).append(asset.master.filename)

    with tempfile.TemporaryDirectory(prefix="touches-") as tmp:
        for asset in stills[:2]:
            edited = Path(tmp) / f"{asset.asset_id}.jpg"
            _write_jpeg(edited, rng, None, photo_size)
            account.edit_asset(asset, edited.read_bytes(), adjustments=rng.randbytes(64))
            note("edited", asset)
        for asset in videos[:1]:
            trimmed = Path(tmp) / f"{asset.asset_id}.mov"
            when = datetime.fromtimestamp(asset.asset_date_ms / 1000, UTC)
            clip = 1.0 if photo_size else 0.5
            _write_video(trimmed, when, clip, rng.randrange(1000), photo_size)
            account.edit_asset(
                asset, trimmed.read_bytes(), adjustments=rng.randbytes(64), adjustment_type="trim"
            )
            note("edited", asset)
    for asset in stills[2:3]:
        # The RAW half of a RAW+JPEG pair: a DNG's bytes are opaque here.
        asset.master.alternative = Blob.of(b"II*\x00" + rng.randbytes(4096))
        asset.master.change_tag = account.next_change_tag()
        note("RAW+JPEG", asset)
    trip, family = stills[3:6], stills[5:7]
    for asset in stills[3:5]:
        account.update_asset(asset, {"isFavorite": 1})
        note("favourite", asset)
    for asset in stills[7:8]:
        account.update_asset(asset, {"isHidden": 1})
        note("hidden", asset)
    for asset in trip:
        account.describe(
            asset,
            caption=f"Trip day {trip.index(asset) + 1}",
            description="Somewhere by the sea",
            keywords=("trip", "sea"),
            location=(43.2965, 5.3698, 12.0),
        )
        note("captioned", asset)
    if trip:
        account.add_album("Trip 2023", trip)
    if family:
        account.add_album("Family", family)
    return done
