"""Benchmark of reconciler.media against the raw encoders, in one run, on the same cores.

Prints figures; asserts nothing (benchmarks are not timed tests):

- stills: images/s and CPU of ``encode_file`` vs a bare Pillow open+save at
  the same quality, on the same generated JPEGs (tiny, VGA and 12 MP), and
  the ratio;
- stills per tier (q85/75/65): bytes saved and SSIM of output vs original;
- HEIC: seconds per image of ``encode_file`` per x265 preset, and what each
  tier quality saves on phone-like HEICs (how many re-encodes pay at all);
- video: fps of ``encode_file`` vs the bare ffmpeg command on the same clip,
  with bytes saved and SSIM.

Usage: ``.venv/bin/python bench/media.py [--quick | --jpeg-only | --small-only] [--images DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import attrs
import pillow_heif
from PIL import ExifTags, Image, ImageChops, JpegImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.media import encode_file, jpeg, still
from reconciler.media.encode import human_size
from reconciler.media.lineage import with_lineage

SHA = "0" * 64
T = TypeVar("T")
FAST = {"preset": "fast"}
TIERS = (("light", 85), ("medium", 75), ("heavy", 65))


def photo_like(size: tuple[int, int], seed: int) -> Image.Image:
    """Smooth gradients, fractal detail and mild sensor noise: compresses like a photo,
    not like a flat test card or pure noise."""
    width, height = size
    shift = seed * 0.07
    detail = Image.effect_mandelbrot(size, (-2.0 + shift, -1.2, 1.0 + shift, 1.2), 48)
    gradient = Image.linear_gradient("L").resize(size)
    channels = []
    for sigma in (2, 3, 4):
        noise = Image.effect_noise(size, sigma)
        channels.append(ImageChops.add(ImageChops.blend(gradient, detail, 0.5), noise, 1.0, -128))
    im = Image.merge("RGB", channels)
    return im.rotate(seed * 13, resample=Image.Resampling.BILINEAR, expand=False).resize(
        (width, height)
    )


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 12"
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2021:06:01 14:34:56"
    return exif.tobytes()


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best_of(runs: int, fn: Callable[[], T]) -> tuple[Timing, T]:
    """The fastest of ``runs`` wall-clock timings, the CPU seconds of that run (this
    process and its ffmpeg children: steadier than wall time on a shared machine),
    and the last result."""
    best = Timing(wall=float("inf"), cpu=float("inf"))
    for _ in range(runs):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = fn()
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        if wall < best.wall:
            best = Timing(wall=wall, cpu=cpu)
    return best, result


def race(rounds: int, raw: Callable[[], object], ours: Callable[[], T]) -> tuple[Timing, Timing, T]:
    """Best timings of the raw encoder and ours, run alternately so that load from
    other work on the machine falls on both alike."""
    t_raw = t_ours = Timing(wall=float("inf"), cpu=float("inf"))
    for _ in range(rounds):
        t, _ = best_of(1, raw)
        t_raw = min(t_raw, t)
        t, result = best_of(1, ours)
        t_ours = min(t_ours, t)
    return t_raw, t_ours, result


def race_all(rounds: int, *runs: Callable[[], object]) -> list[Timing]:
    """Each run's least wall and least CPU time over ``rounds`` rounds, all
    runs in every round, in turn."""
    walls = [float("inf")] * len(runs)
    cpus = [float("inf")] * len(runs)
    for _ in range(rounds):
        for n, run in enumerate(runs):
            t, _ = best_of(1, run)
            walls[n], cpus[n] = min(walls[n], t.wall), min(cpus[n], t.cpu)
    return [Timing(wall=w, cpu=c) for w, c in zip(walls, cpus, strict=True)]


@attrs.frozen(order=True)
class Timing:
    wall: float
    cpu: float


def ssim(distorted: Path, reference: Path) -> float:
    """SSIM (All) from ffmpeg's ssim filter; 1.0 is identical."""
    done = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-i", str(distorted), "-i", str(reference)),
            *("-lavfi", "ssim", "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"All:([0-9.]+)", done.stderr)
    return float(match[1]) if match else float("nan")


def bench_jpeg(work: Path, count: int, size: tuple[int, int] = (4032, 3024)) -> None:
    mp = size[0] * size[1] / 1e6
    print(f"\n== JPEG: {count} generated {mp:.1f} MP ({size[0]}x{size[1]}) originals at q95")
    originals = []
    for i in range(count):
        path = work / f"IMG_{size[0]}_{i:04d}.JPG"
        photo_like(size, i).save(path, quality=95, exif=camera_exif())
        originals.append(path)
    total = sum(p.stat().st_size for p in originals)
    print(f"originals: {human_size(total)} total, {human_size(total // count)} each")

    # Small images take about a millisecond each: more rounds, as the
    # machine's other work moves single rounds by 10-20 %.
    race_pipeline(work, originals, rounds=3 if mp > 1 else 21)
    breakdown(work, originals)
    if size[0] * size[1] < 4_000_000:
        return
    print("tier    quality  output total   saved    SSIM (first image)")
    for tier, quality in TIERS:
        out_total = 0
        first_ssim = float("nan")
        for n, p in enumerate(originals):
            dst = work / f"{tier}-{n}.jpg"
            result = encode_file(
                p,
                dst,
                quality=quality,
                crf=None,
                original_sha256=SHA,
                tier=tier,
                replaces_size=p.stat().st_size,
            )
            out_total += result.size
            if n == 0 and result.status == "encoded":
                first_ssim = ssim(dst, p)
        saved = 1 - out_total / total
        print(
            f"{tier:7} q{quality:<7} {human_size(out_total):>12}  {saved:6.1%}   {first_ssim:.4f}"
        )


def _fresh(work: Path, stem: str) -> Iterator[Path]:
    """New output names, as the applier writes each encode to its own
    temporary file: overwriting one name would time a truncate too."""
    for n in itertools.count():
        path = work / f"{stem}-{n}.jpg"
        yield path
        path.unlink(missing_ok=True)


def race_pipeline(work: Path, originals: list[Path], quality: int = 75, rounds: int = 9) -> None:
    """encode_file vs plain Pillow open+save, and vs Pillow plus the fsync
    that encode_file owes the library (DESIGN: written, fsynced, renamed).
    Also encode_file with its fsync skipped (not something the library
    does): what its own work costs beside Pillow's."""
    count = len(originals)
    raw_out, synced_out, ours_out, unsynced_out = (
        _fresh(work, s) for s in ("raw", "synced", "ours", "unsynced")
    )

    def raw(sync: bool = False) -> None:
        for p in originals:
            dst = next(synced_out if sync else raw_out)
            with Image.open(p) as im:
                # The original's chroma subsampling, as the encoder keeps it
                im.save(dst, format="JPEG", quality=quality, subsampling="keep")
            if sync:
                fd = os.open(dst, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

    # The applier proves each original by its SHA-256 and the encoder checks
    # what it read against it (``source_sha256``): part of the pipeline.
    proven = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in originals}

    def ours(out: Iterator[Path] = ours_out) -> None:
        for p in originals:
            encode_file(
                p,
                next(out),
                quality=quality,
                crf=None,
                original_sha256=SHA,
                tier="t",
                replaces_size=p.stat().st_size,
                source_sha256=proven[p],
            )

    def unsynced() -> None:
        fsync = os.fsync
        os.fsync = lambda fd: None
        try:
            ours(unsynced_out)
        finally:
            os.fsync = fsync

    raw()  # warm the page cache and Pillow's imports before timing
    ours()
    # All four in every round, in turn: load from other work on the machine
    # (on two cores it moves single rounds by 10-30 %) falls on each alike,
    # and every ratio is of figures from the same rounds.
    t_raw, t_sync, t_ours, t_unsynced = race_all(rounds, raw, lambda: raw(True), ours, unsynced)
    for label, t in (
        ("raw Pillow open+save", t_raw),
        ("raw + fsync", t_sync),
        ("encode_file", t_ours),
        ("encode_file, no fsync", t_unsynced),
    ):
        print(
            f"{label + f' q{quality}:':26} {count / t.wall:7.2f} images/s wall, "
            f"{t.wall / count * 1000:7.2f} ms, {t.cpu / count * 1000:7.2f} CPU-ms each"
        )
    print(
        f"ratio ours/raw:            {t_ours.cpu / t_raw.cpu:.2f}x CPU, "
        f"{t_ours.wall / t_raw.wall:.2f}x wall; ours/(raw + fsync): "
        f"{t_ours.cpu / t_sync.cpu:.2f}x CPU, {t_ours.wall / t_sync.wall:.2f}x wall"
    )
    print(
        f"ratio ours, no fsync/raw:  {t_unsynced.cpu / t_raw.cpu:.2f}x CPU, "
        f"{t_unsynced.wall / t_raw.wall:.2f}x wall (the fsync alone: "
        f"{(t_sync.cpu - t_raw.cpu) / count * 1000:.2f} CPU-ms, "
        f"{(t_sync.wall - t_raw.wall) / count * 1000:.2f} ms each)"
    )


def breakdown(work: Path, originals: list[Path], quality: int = 75) -> None:
    """What each step of encode_file costs per image (best of 5, CPU-ms; fsync
    in wall ms, as it waits on the disk): the candidates for its overhead."""
    datas = [p.read_bytes() for p in originals]
    structures = [jpeg.read_structure(d, "bench") for d in datas]
    decoded: list[Image.Image] = []
    samplings: list[int] = []
    encoded: list[bytes] = []
    outputs: list[still.StillOutput] = []

    def parse() -> None:
        for p in originals:
            data = p.read_bytes()
            jpeg.read_structure(data, p).uncarried(data)

    def decode() -> None:
        decoded.clear()
        samplings.clear()
        for d, st in zip(datas, structures, strict=True):
            with Image.open(io.BytesIO(jpeg.pixels_only(d, st))) as im:
                im.load()
                decoded.append(im.copy())
                samplings.append(JpegImagePlugin.get_sampling(im))

    def encode() -> None:
        encoded.clear()
        for im, sampling in zip(decoded, samplings, strict=True):
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=quality, subsampling=sampling)
            encoded.append(buf.getvalue())

    def metadata() -> None:
        for d, st, px in zip(datas, structures, encoded, strict=True):
            xmp = with_lineage(st.xmp(d), SHA, "t")
            made = jpeg.read_written(px, "out")
            jpeg.carry_segments(d, st, px, made, xmp, components=3)
            jpeg.coded_image(px, made)

    def check() -> None:
        for out in outputs:
            still.check_jpeg(out.data, out)

    outputs.extend(
        still.encode_jpeg(p, quality=quality, original_sha256=SHA, tier="t") for p in originals
    )
    names = _fresh(work, "write")

    def write(sync: bool) -> None:
        # As encode_file writes: one os.write of the bytes, no Python buffer.
        for out in outputs:
            fd = os.open(next(names), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                os.write(fd, out.data)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("read + find segments", parse),
        ("decode (pixels only)", decode),
        ("encode (Pillow)", encode),
        ("lineage + carry segments", metadata),
        ("output check (no decode)", check),
        ("write", lambda: write(False)),
        ("write + fsync", lambda: write(True)),
    ]
    count = len(originals)
    cells = []
    for label, fn in steps:
        t, _ = best_of(5 if "fsync" not in label else 3, fn)
        cells.append(f"{label} {t.cpu / count * 1000:.2f} CPU-ms ({t.wall / count * 1000:.2f} ms)")
    print("per image: " + "; ".join(cells))


def pool_start() -> None:
    """Starting the applier's encoder pool (forkserver, one process per
    core) and its first task: paid once per run that encodes."""
    ctx = multiprocessing.get_context("forkserver")
    t = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=ctx) as pool:
        list(pool.map(abs, range(os.cpu_count() or 1)))
        started = time.perf_counter() - t
    print(
        f"\n== Encoder pool start (forkserver, {os.cpu_count()} processes): "
        f"{started * 1000:.0f} ms, once per run that encodes"
    )


def bench_real(work: Path, folder: Path) -> None:
    """The pipeline race on real-world JPEGs (those encode_file re-encodes:
    colour or greyscale, no MPF, nothing after the image)."""
    found = []
    warnings.simplefilter("ignore")  # Pillow's own test images include odd ones on purpose
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg") or not p.is_file():
            continue
        try:
            data = p.read_bytes()
            st = jpeg.read_structure(data, p)
            with Image.open(io.BytesIO(data)) as im:
                usable = im.mode in ("L", "RGB") and st.uncarried(data) is None
            if usable:
                still.encode_jpeg(p, quality=75, original_sha256=SHA, tier="t")
                found.append(p)
        except Exception:  # a test image meant to be broken is not raced
            continue
    total = sum(p.stat().st_size for p in found)
    print(f"\n== JPEG: {len(found)} real-world images under {folder} ({human_size(total)})")
    race_pipeline(work, found)
    breakdown(work, found)


def bench_heic_tiers(work: Path, size: tuple[int, int], count: int) -> None:
    """What re-encoding a phone's HEIC saves per quality: originals written as a
    phone's hardware encoder does (fast, 512-pixel grid tiles, ~1.5-2.5 bits
    per pixel), re-encoded by encode_file with the default preset."""
    mp = size[0] * size[1] / 1e6
    print(f"\n== HEIC tiers: {count} phone-like {mp:.0f} MP originals (grid 512, ~2 bpp)")
    originals = []
    for i in range(count):
        src = work / f"PHONE_{i}.HEIC"
        pillow_heif.from_pillow(photo_like(size, 5 + 4 * i)).save(
            src, quality=75 + 5 * (i % 2), enc_params={"preset": "ultrafast"}, tile_size=512
        )
        originals.append(src)
        bpp = src.stat().st_size * 8 / (size[0] * size[1])
        print(f"original {i}: {human_size(src.stat().st_size)} ({bpp:.2f} bits/pixel)")
    print("quality  paid   output vs original (those encoded)   CPU-s each")
    for quality in (85, 75, 65, 50):
        paid, before, after, cpu = 0, 0, 0, 0.0
        for src in originals:
            n = src.stat().st_size
            t, result = best_of(
                1,
                lambda src=src, n=n, quality=quality: encode_file(
                    src,
                    work / "tier.heic",
                    quality=quality,
                    crf=None,
                    original_sha256=SHA,
                    tier="t",
                    replaces_size=n,
                    heic_preset="fast",
                ),
            )
            cpu += t.cpu
            if result.status == "encoded":
                paid += 1
                before += n
                after += result.size
        change = f"{after / before - 1:+.0%}" if before else "n/a"
        print(f"q{quality:<7} {paid}/{count}    {change:>8}{'':29}{cpu / count:6.1f}")


def bench_heic(
    work: Path,
    size: tuple[int, int],
    presets: tuple[str, ...],
    raw_presets: tuple[tuple[str, dict[str, str]], ...],
) -> None:
    mp = size[0] * size[1] / 1e6
    print(f"\n== HEIC: one {mp:.0f} MP original at q90, re-encoded at q75, one process")
    src = work / "IMG_H.HEIC"
    im = photo_like(size, 3)
    pillow_heif.from_bytes(im.mode, im.size, im.tobytes()).save(
        src, quality=90, enc_params={"preset": "ultrafast"}, exif=camera_exif()
    )
    decode, _ = best_of(1, lambda: pillow_heif.open_heif(src)[0].load())
    print(f"original {human_size(src.stat().st_size)}; decode alone {decode.wall:.2f} s")
    for label, params in raw_presets:
        raw, _ = best_of(
            1,
            lambda params=params: pillow_heif.open_heif(src).save(
                work / "raw.heic", quality=75, enc_params=params
            ),
        )
        print(f"raw pillow-heif {label:17} {raw.wall:6.2f} s/image ({raw.cpu:.2f} CPU-s)")
    for preset in presets:
        dst = work / f"heic-{preset}.tmp"
        seconds, result = best_of(
            1,
            lambda preset=preset, dst=dst: encode_file(
                src,
                dst,
                quality=75,
                crf=None,
                original_sha256=SHA,
                tier="t",
                replaces_size=src.stat().st_size,
                heic_preset=preset,
            ),
        )
        print(
            f"encode_file preset={preset:9}  {seconds.wall:6.2f} s/image "
            f"({seconds.cpu:.2f} CPU-s)  {result.reason}"
        )


def bench_video(work: Path, seconds: int, size: str) -> None:
    print(f"\n== Video: {seconds} s {size}@30 clip with audio, libx264 CRF 26 preset medium")
    clip = work / "CLIP.MOV"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y"),
            # Light temporal grain: a clean test card compresses unlike a camera's output.
            *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30,noise=alls=3:allf=t"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "16"),
            *("-c:a", "aac", "-metadata", "creation_time=2021-06-01T12:34:56Z", str(clip)),
        ],
        check=True,
    )
    frames = seconds * 30
    raw_out = work / "raw.mov"
    raw_cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip)]
    raw_cmd += ["-c:v", "libx264", "-crf", "26", "-preset", "medium", "-c:a", "copy"]
    dst = work / "ours.tmp"
    runs = 2
    t_raw, t_ours, result = race(
        runs,
        lambda: subprocess.run([*raw_cmd, str(raw_out)], check=True),
        lambda: encode_file(
            clip,
            dst,
            quality=None,
            crf=26,
            original_sha256=SHA,
            tier="t",
            replaces_size=clip.stat().st_size,
        ),
    )
    print(f"original {human_size(clip.stat().st_size)}")
    print(
        f"raw ffmpeg command:  {frames / t_raw.wall:6.1f} fps wall ({t_raw.wall:.1f} s, "
        f"{t_raw.cpu:.1f} CPU-s)"
    )
    print(
        f"encode_file:         {frames / t_ours.wall:6.1f} fps wall ({t_ours.wall:.1f} s, "
        f"{t_ours.cpu:.1f} CPU-s, {t_ours.cpu / t_raw.cpu:.2f}x the raw CPU: probe, "
        f"decode check, fsync)  {result.reason}"
    )
    print(f"SSIM vs original:    {ssim(dst, clip):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, a shorter clip")
    parser.add_argument("--jpeg-only", action="store_true", help="only the JPEG pipeline rows")
    parser.add_argument(
        "--small-only", action="store_true", help="only the JPEG rows of small images (seconds)"
    )
    parser.add_argument(
        "--images", type=Path, help="also race on the JPEGs under DIR (e.g. Pillow's Tests/images)"
    )
    args = parser.parse_args(argv)
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"cores: {os.cpu_count()}; load average before: {load}; quick: {args.quick}")
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        if args.images is not None:
            bench_real(work, args.images)
        if args.small_only:
            bench_jpeg(work, 60, (128, 128))
            return 0
        if args.jpeg_only:
            bench_jpeg(work, 60, (128, 128))
            bench_jpeg(work, 6)
            pool_start()
            return 0
        if args.quick:
            bench_jpeg(work, 30, (128, 128))
            bench_jpeg(work, 2)
            bench_heic(work, (2016, 1512), ("ultrafast", "fast"), (("preset=fast", FAST),))
            bench_heic_tiers(work, (2016, 1512), 2)
            bench_video(work, 3, "1280x720")
        else:
            bench_jpeg(work, 60, (128, 128))
            bench_jpeg(work, 20, (640, 480))
            bench_jpeg(work, 6)
            raw_presets = (("default settings", {}), ("preset=fast", FAST))
            bench_heic(work, (4032, 3024), ("ultrafast", "fast", "medium"), raw_presets)
            bench_heic_tiers(work, (4032, 3024), 4)
            bench_video(work, 10, "1920x1080")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
