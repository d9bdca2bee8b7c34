"""A corpus of the files real libraries hold and a naive re-encode gets wrong,
made here with Pillow, pillow-heif and ffmpeg (small, so the suite stays fast):
deep and HDR stills, HLG/PQ and variable-frame-rate clips, multi-image HEIFs,
MPO, JPEG and HEIC Motion Photos, a HEIC with a maker's trailer, JPEGs with
IPTC/Photoshop and Adobe segments, a PNG under a ``.jpg`` name, a HEIC cut in
half, a 200 MP JPEG header, a sound-only ``.mov`` and clips whose sound the
container by their name cannot hold.
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pillow_heif
from PIL import Image

from .conftest import XMP, camera_exif, icc_srgb, make_clip, make_jpeg, texture

FFMPEG = ("ffmpeg", "-nostdin", "-v", "error", "-y")
# An IPTC record inside a Photoshop "8BIM" resource, as Photoshop and photo
# agencies write them: keywords and a caption.
_IPTC = b"".join(
    b"\x1c\x02" + bytes([tag]) + len(value).to_bytes(2, "big") + value
    for tag, value in ((25, b"tower"), (25, b"paris"), (120, b"Evening light"))
)
PHOTOSHOP = (
    b"Photoshop 3.0\x00"
    + b"8BIM\x04\x04\x00\x00"
    + len(_IPTC).to_bytes(4, "big")
    + _IPTC
    + (b"\x00" if len(_IPTC) % 2 else b"")
)
# version 100, flags, transform (0: none, i.e. RGB-coded; 1: YCbCr).
ADOBE_RGB = b"Adobe\x00\x64\x00\x00\x00\x00\x00"
ADOBE_YCC = b"Adobe\x00\x64\x00\x00\x00\x00\x01"
MAKER = b"Ducky\x00\x01\x00\x04\x00\x00\x00\x50\x00\x00"  # APP12, as Photoshop's Save for Web


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def with_segments(path: Path, *segments: tuple[int, bytes]) -> Path:
    """Insert APPn segments right after the existing ones of a JPEG."""
    data = path.read_bytes()
    pos = 2
    while data[pos + 1] in range(0xE0, 0xF0) or data[pos + 1] == 0xFE:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    extra = b"".join(_segment(m, p) for m, p in segments)
    path.write_bytes(data[:pos] + extra + data[pos:])
    return path


def jpeg_with_iptc(path: Path) -> Path:
    make_jpeg(path)
    return with_segments(path, (0xED, PHOTOSHOP), (0xEE, ADOBE_YCC), (0xEC, MAKER))


def jpeg_rgb_coded(path: Path) -> Path:
    """An Adobe JPEG whose three components are RGB, not YCbCr (transform 0)."""
    make_jpeg(path, metadata=False)
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    buf = io.BytesIO()
    # keep_rgb: libjpeg codes the samples as RGB and writes Adobe transform 0.
    rgb.save(buf, format="JPEG", quality=95, keep_rgb=True)
    path.write_bytes(buf.getvalue())
    return path


def mpo(path: Path) -> Path:
    first, second = texture((320, 240)), texture((320, 240)).rotate(180)
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=90)
    return path


def motion_photo(path: Path, clip: Path) -> Path:
    """A Google Motion Photo: XMP marks it, the MP4 follows the JPEG's end."""
    video = clip.read_bytes()
    xmp = XMP.replace(
        b"<rdf:Description rdf:about='' xmlns:dc",
        b"<rdf:Description rdf:about='' xmlns:GCamera='http://ns.google.com/photos/1.0/camera/'"
        b" GCamera:MotionPhoto='1' GCamera:MotionPhotoVersion='1'"
        b" GCamera:MicroVideoOffset='" + str(len(video)).encode() + b"'/>\n"
        b"<rdf:Description rdf:about='' xmlns:dc",
    )
    make_jpeg(path, xmp=xmp)
    path.write_bytes(path.read_bytes() + video)
    return path


def png_named_jpg(path: Path) -> Path:
    texture((64, 48)).save(path, format="PNG")
    return path


def _deep_pixels(mode: str, size: tuple[int, int], bits: int) -> bytes:
    """A photo-like picture at ``bits`` per sample (in 16-bit words)."""
    base = texture(size)
    if mode == "L":
        bands = [base.convert("L")]
    else:
        bands = list(base.split())
        if mode == "RGBA":
            bands.append(Image.linear_gradient("L").resize(size))
    shift = bits - 8
    planes = [b.tobytes() for b in bands]
    out = bytearray()
    for i in range(size[0] * size[1]):
        for plane in planes:
            # the low bits carry detail 8-bit output cannot hold
            out += struct.pack("<H", (plane[i] << shift) | (i * 7 % (1 << shift)))
    return bytes(out)


def deep_heif(path: Path, mode: str, bits: int, size: tuple[int, int] = (96, 64)) -> Path:
    """A 10 or 12-bit HEIF (``mode`` ``RGB``, ``RGBA`` or ``L``), with EXIF, XMP and ICC."""
    heif_mode = ("I" if mode == "L" else mode) + f";{bits}"
    heif = pillow_heif.from_bytes(heif_mode, size, _deep_pixels(mode, size, bits))
    heif.save(
        path,
        quality=95,
        enc_params={"preset": "ultrafast"},
        exif=camera_exif().tobytes(),
        xmp=XMP,
        icc_profile=icc_srgb(),
        icc_profile_type="prof",
    )
    return path


def multi_image_heif(path: Path, count: int = 3) -> Path:
    """A burst-like HEIF: several top-level images in one file."""
    images = [texture((96, 64)).rotate(90 * i) for i in range(count)]
    heif = pillow_heif.from_pillow(images[0])
    for im in images[1:]:
        heif.add_from_pillow(im)
    heif.save(path, quality=90, enc_params={"preset": "ultrafast"})
    return path


def truncated_heic(path: Path) -> Path:
    """A HEIC stored as a grid of tiles, as an iPhone writes it, cut in half:
    libheif decodes it without error, the missing tiles filled in."""
    pillow_heif.from_pillow(texture((512, 384))).save(
        path, quality=90, enc_params={"preset": "ultrafast"}, tile_size=128
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def hdr_clip(path: Path, transfer: str) -> Path:
    """A one-second 10-bit HEVC clip in BT.2020 with ``transfer`` (HLG or PQ); PQ
    carries HDR10 mastering display and content light levels."""
    params = "log-level=error"
    if transfer == "smpte2084":
        params += (
            ":hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
            "WP(15635,16450)L(10000000,50):max-cll=1000,400"
        )
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=192x128:rate=25"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", "1", "-c:v", "libx265", "-preset", "ultrafast", "-crf", "12"),
            *("-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020"),
            *("-color_trc", transfer, "-colorspace", "bt2020nc", "-color_range", "tv"),
            *("-x265-params", params, "-tag:v", "hvc1", "-c:a", "aac", str(path)),
        ],
        check=True,
    )
    return path


def vfr_clip(path: Path) -> Path:
    """Variable frame rate as phones record in low light: frame gaps off any
    constant grid (1/600 s time base), 40 frames over ~1.7 s, with audio."""
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=192x128:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-frames:v", "40", "-t", "1.7"),
            *("-vf", "settb=1/600,setpts='(N*0.0371+if(gt(N,20),0.2,0))/TB'"),
            *("-fps_mode", "passthrough", "-enc_time_base", "1:600"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "10"),
            *("-video_track_timescale", "600", "-c:a", "aac", str(path)),
        ],
        check=True,
    )
    return path


def rotated_clip(path: Path) -> Path:
    return make_clip(path, rotate=90)


def header_only_jpeg(path: Path, size: tuple[int, int] = (16320, 12240)) -> Path:
    """A JPEG whose frame header says ``size`` (Samsung's 200 MP mode by
    default) over a tiny image: what matters before any pixel is decoded is
    its header and its EXIF."""
    buf = io.BytesIO()
    texture((64, 48)).save(buf, format="JPEG", quality=90, exif=camera_exif().tobytes())
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = size[1].to_bytes(2, "big")
    data[sof + 7 : sof + 9] = size[0].to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


MOTION_XMP = XMP.replace(
    b"<rdf:Description rdf:about='' xmlns:dc",
    b"<rdf:Description rdf:about='' xmlns:GCamera='http://ns.google.com/photos/1.0/camera/'"
    b" xmlns:Container='http://ns.google.com/photos/1.0/container/'"
    b" xmlns:Item='http://ns.google.com/photos/1.0/container/item/'"
    b" GCamera:MotionPhoto='1' GCamera:MotionPhotoVersion='1'>"
    b"<Container:Directory><rdf:Seq>"
    b"<rdf:li rdf:parseType='Resource'>"
    b"<Container:Item Item:Mime='image/heic' Item:Semantic='Primary'/></rdf:li>"
    b"<rdf:li rdf:parseType='Resource'>"
    b"<Container:Item Item:Mime='video/mp4' Item:Semantic='MotionPhoto'/></rdf:li>"
    b"</rdf:Seq></Container:Directory></rdf:Description>\n"
    b"<rdf:Description rdf:about='' xmlns:dc",
)


def heic_with_xmp(path: Path, xmp: bytes) -> Path:
    """A small HEIC with EXIF and the XMP packet ``xmp``."""
    im = texture((128, 96))
    heif = pillow_heif.from_bytes(im.mode, im.size, im.tobytes())
    heif.save(
        path,
        quality=90,
        enc_params={"preset": "ultrafast"},
        exif=camera_exif().tobytes(),
        xmp=xmp,
    )
    return path


def heic_motion_photo(path: Path, clip: Path, *, xmp: bytes = MOTION_XMP) -> Path:
    """A HEIC Motion Photo as Pixel phones write it (Motion Photo 1.0 for
    HEIF): the MP4 in a top-level ``mpvd`` box after the image's boxes."""
    video = clip.read_bytes()
    image = heic_with_xmp(path, xmp).read_bytes()
    path.write_bytes(image + (8 + len(video)).to_bytes(4, "big") + b"mpvd" + video)
    return path


def heic_with_trailer(path: Path, clip: Path, *, xmp: bytes = XMP) -> Path:
    """A HEIC with bytes after its last box, as Samsung writes them: its
    Motion Photo's MP4 behind ``MotionPhoto_Data``, then an SEF trailer."""
    image = heic_with_xmp(path, xmp).read_bytes()
    sef = b"\x00\x00\x00\x00SEFH" + b"\x00" * 24 + b"SEFT"
    path.write_bytes(image + b"MotionPhoto_Data" + clip.read_bytes() + sef)
    return path


def audio_only_mov(path: Path) -> Path:
    """A QuickTime sound recording: one AAC track, no video."""
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1"),
            *("-c:a", "aac", "-metadata", "creation_time=2021-06-01T12:34:56Z", str(path)),
        ],
        check=True,
    )
    return path


def clip_with_audio(path: Path, audio: str, muxer: str) -> Path:
    """A one-second clip whose sound is ``audio``, muxed by ``muxer`` whatever
    the name says: PCM in a ``.MP4`` (Sony's XAVC S, other cameras; ffmpeg
    5.1 writes PCM only as QuickTime), Opus in a ``.mov``."""
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=192x128:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-c:a", audio),
            *("-metadata", "creation_time=2021-06-01T12:34:56Z", "-f", muxer, str(path)),
        ],
        check=True,
    )
    return path


def trimmed_clip(path: Path) -> Path:
    """A clip trimmed without re-encoding (QuickTime Player, LosslessCut,
    ``ffmpeg -c copy``): its track keeps the frames before the cut, from the
    last keyframe, and an edit list hides them (75 samples, 60 shown)."""
    long = path.with_name("long-" + path.name)
    subprocess.run(
        [
            *FFMPEG,
            *("-f", "lavfi", "-i", "testsrc2=size=192x128:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-g", "60"),
            *("-c:a", "aac", str(long)),
        ],
        check=True,
    )
    subprocess.run(
        [*FFMPEG, "-ss", "0.5", "-i", str(long), "-c", "copy", "-t", "2", str(path)], check=True
    )
    long.unlink()
    return path


def clip_with_cover(path: Path) -> Path:
    """An MP4 with an attached (cover) picture, as editing apps write."""
    clip = make_clip(path.with_name("plain-" + path.name), rotate=None)
    cover = path.with_name("cover.png")
    texture((64, 64)).save(cover)
    subprocess.run(
        [
            *FFMPEG,
            *("-i", str(clip), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy"),
            *("-disposition:v:1", "attached_pic", str(path)),
        ],
        check=True,
    )
    clip.unlink()
    cover.unlink()
    return path
