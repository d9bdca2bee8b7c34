"""Real media files generated for the tests: JPEG and HEIC with full metadata, MOV/MP4 clips.

Everything is made here at small sizes (a few hundred pixels, one second)
so the whole media suite stays fast on two cores.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageCms

TAKEN = "2021:06:01 14:34:56"
TAKEN_OFFSET = "+02:00"
LOCATION = "+48.8584+002.2945+035.000/"
CREATION_TIME = "2021-06-01T12:34:56.000000Z"
APPLE_CREATIONDATE = "2021-06-01T14:34:56+0200"
XMP_MARKER = "a photo of the tower"
XMP = (
    "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
    "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n"
    "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
    "<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
    f"<dc:description>{XMP_MARKER}</dc:description></rdf:Description>\n"
    "</rdf:RDF>\n"
    "</x:xmpmeta>\n"
    "<?xpacket end='w'?>"
).encode()
GPS_LATITUDE = (48.0, 51.0, 29.64)


@functools.cache
def icc_srgb() -> bytes:
    # Cached: the profile embeds its creation time, so each call differs.
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int = 6, *, offset: str | None = TAKEN_OFFSET) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 12"
    exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = TAKEN
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    return exif


def texture(size: tuple[int, int]) -> Image.Image:
    """A photo-like picture: smooth gradients, fine detail and sensor-like noise,
    with a red block in the stored top-left corner to tell orientations apart."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0, 1.2), 64)
    blue = Image.effect_noise(size, 48)
    im = Image.merge("RGB", (red, green, blue))
    im.paste((255, 0, 0), (0, 0, size[0] // 8, size[1] // 8))
    return im


def make_jpeg(
    path: Path,
    *,
    size: tuple[int, int] = (480, 320),
    quality: int = 95,
    exif: Image.Exif | None = None,
    metadata: bool = True,
    xmp: bytes = XMP,
) -> Path:
    options: dict[str, object] = {"quality": quality}
    if metadata:
        options |= {
            "exif": (exif or camera_exif()).tobytes(),
            "icc_profile": icc_srgb(),
            "xmp": xmp,
            "comment": b"shot on a phone",
            "dpi": (72, 72),
        }
    texture(size).save(path, format="JPEG", **options)
    return path


def make_heic(path: Path, *, size: tuple[int, int] = (256, 192), quality: int = 95) -> Path:
    """A HEIC whose stored pixels are landscape with EXIF orientation 6, as a phone writes."""
    im = texture(size)
    heif = pillow_heif.from_bytes(im.mode, im.size, im.tobytes())
    heif.save(
        path,
        quality=quality,
        enc_params={"preset": "ultrafast"},
        exif=camera_exif().tobytes(),
        xmp=XMP,
        icc_profile=icc_srgb(),
        icc_profile_type="prof",
    )
    return path


def make_clip(path: Path, *, rotate: int | None = 90, apple_date: bool = True) -> Path:
    """A one-second 320x240 clip with audio, creation_time, a location and a rotation."""
    raw = path.with_name("raw-" + path.name)
    meta = ["-metadata", f"creation_time={CREATION_TIME}"]
    meta += ["-metadata", f"com.apple.quicktime.location.ISO6709={LOCATION}"]
    if apple_date:
        meta += ["-metadata", f"com.apple.quicktime.creationdate={APPLE_CREATIONDATE}"]
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    subprocess.run(
        [
            *ffmpeg,
            *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "8"),
            *("-c:a", "aac", *meta, "-movflags", "use_metadata_tags", str(raw)),
        ],
        check=True,
    )
    # ffmpeg 5.1 writes a rotation (display matrix) only when stream-copying.
    rotation = ["-metadata:s:v:0", f"rotate={rotate}"] if rotate is not None else []
    subprocess.run(
        [
            *ffmpeg,
            *("-i", str(raw), "-map", "0", "-c", "copy", "-map_metadata", "0"),
            *rotation,
            *("-movflags", "use_metadata_tags", str(path)),
        ],
        check=True,
    )
    raw.unlink()
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def jpeg_original(media_dir: Path) -> Path:
    return make_jpeg(media_dir / "IMG_0001.JPG")


@pytest.fixture(scope="session")
def heic_original(media_dir: Path) -> Path:
    return make_heic(media_dir / "IMG_0002.HEIC")


@pytest.fixture(scope="session")
def mov_original(media_dir: Path) -> Path:
    return make_clip(media_dir / "IMG_0003.MOV")


@pytest.fixture(scope="session")
def mp4_original(media_dir: Path) -> Path:
    return make_clip(media_dir / "VID_0004.mp4", apple_date=False)
