"""The single entry point for re-encoding one original for a library tier.

``encode_file`` is a plain module-level function of plain arguments so that
the applier can run it in a ProcessPoolExecutor (encoding is CPU-bound). It
reads the original, never writes to it, and writes the result to ``dst`` (a
temporary path the caller owns and renames) only when the result is worth
keeping: it decodes, has the original's dimensions, and is smaller than the
file it would replace.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from reconciler.media.kinds import (
    HEIC,
    JPEG,
    OTHER,
    VIDEO,
    KeepOriginal,
    content_name,
    media_kind,
    read_start,
    sniff_kind,
)
from reconciler.media.lineage import check_lineage
from reconciler.media.presets import HEIC_PRESETS
from reconciler.media.still import StillOutput, check_heic, check_jpeg, encode_heic, encode_jpeg
from reconciler.media.video import check_video, encode_video

ENCODED = "encoded"
NOT_WORTH = "not_worth"
#: The file cannot be re-encoded whole (several images, a Motion Photo…).
KEPT = "kept"


@attrs.frozen(kw_only=True)
class EncodeResult:
    """What ``encode_file`` did: ``encoded`` (dst written, ``size`` bytes),
    ``not_worth`` (nothing written, ``size`` 0) or ``kept`` (the original
    cannot be carried whole by a re-encode; nothing written), with a line for
    people."""

    status: str
    size: int
    reason: str


def encode_file(
    src: Path,
    dst: Path,
    *,
    quality: int | None,
    crf: int | None,
    original_sha256: str,
    tier: str,
    replaces_size: int,
    video_codec: str = "libx264",
    heic_preset: str = "fast",
    threads: int = 0,
) -> EncodeResult:
    """Re-encode the original ``src`` into ``dst`` for ``tier``.

    Stills use ``quality`` (JPEG stays JPEG, HEIC stays HEIC); videos use
    ``crf`` with ``video_codec``. Content of another kind than its name
    says (a HEIC named ``.jpg``) is ``kept``: the setting was chosen by the
    name. Lineage (``original_sha256``,
    ``tier``) is embedded in the output's metadata. Returns ``not_worth``
    and leaves no ``dst`` when the result is not smaller than
    ``replaces_size`` or fails its checks, ``kept`` when the content is not
    one we encode or cannot be carried whole. An ``encoded`` video's
    reason names what of the original it left out (a subtitle track, a
    cover picture), as its ``dropped`` tag does. ``threads`` (0: the encoder's
    own choice) bounds the threads one encode uses, so that a pool of
    encoders does not ask for more than the machine's cores. Raises
    MediaError for an empty, corrupt or truncated original; ValueError for
    bad arguments.
    """
    check_lineage(original_sha256, tier)
    if os.path.abspath(src) == os.path.abspath(dst) or (
        dst.exists() and os.path.samefile(src, dst)
    ):
        raise ValueError(f"dst must differ from src: {src}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"{src}: a still needs quality 1..100, got {quality!r}")
    if crf is not None and not 0 <= crf <= 51:
        raise ValueError(f"{src}: a video needs crf 0..51, got {crf!r}")
    if heic_preset not in HEIC_PRESETS:
        raise ValueError(f"heic_preset must be one of {HEIC_PRESETS}, got {heic_preset!r}")
    try:
        head, whole = read_start(src, JPEG)  # a video or a HEIC is read by its encoder
        kind = sniff_kind(head)
        # The planner chose the setting by the name's kind (a HEIC named
        # .jpg was given the tier's JPEG quality, which is not the HEIC's):
        # content of another kind than its name says is kept as it is.
        named = _named_kind(src, dst)
        if kind in (JPEG, HEIC, VIDEO) and named not in (OTHER, kind):
            return _kept(
                f"its content is {_KIND_NAMES[kind]}, but its name says {_KIND_NAMES[named]} "
                "(the tier's setting was chosen for that); rename it to encode it"
            )
        if kind in (JPEG, HEIC):
            if quality is None:
                return _kept(f"its content is {kind.upper()}, but it was planned as a video")
            return _encode_still(
                src,
                dst,
                kind,
                quality,
                heic_preset,
                original_sha256,
                tier,
                replaces_size,
                threads,
                whole,
            )
        if kind == VIDEO:
            if crf is None:
                return _kept("its content is a video, but it was planned as a still")
            return _encode_video(
                src, dst, crf, video_codec, original_sha256, tier, replaces_size, threads
            )
    except KeepOriginal as keep:
        dst.unlink(missing_ok=True)
        return _kept(keep.reason)
    except BaseException:
        # Whatever went wrong (bad input, interrupt), a half-written dst must
        # not be mistaken for a result by the caller.
        dst.unlink(missing_ok=True)
        raise
    return _kept(f"its content is {content_name(head)}; only JPEG, HEIC and video are re-encoded")


_KIND_NAMES = {JPEG: "JPEG", HEIC: "HEIC", VIDEO: "a video"}


def _named_kind(src: Path, dst: Path) -> str:
    """The kind the original's name says, by which the planner chose the
    setting: the name of ``src``, or of ``dst`` (the caller's temporary
    name keeps the library file's extension) when ``src`` has none we know
    (an original fetched to a temporary file)."""
    kind = media_kind(src.name)
    return kind if kind != OTHER else media_kind(dst.name)


def _encode_still(
    src: Path,
    dst: Path,
    kind: str,
    quality: int,
    preset: str,
    original_sha256: str,
    tier: str,
    replaces_size: int,
    threads: int,
    whole: bytes | None,
) -> EncodeResult:
    label = f"q{quality}"
    out: StillOutput
    if kind == JPEG:
        out = encode_jpeg(
            src, quality=quality, original_sha256=original_sha256, tier=tier, data=whole
        )
    else:
        out = encode_heic(
            src,
            quality=quality,
            preset=preset,
            original_sha256=original_sha256,
            tier=tier,
            threads=threads,
        )
        label = f"q{quality}, {preset}" + (f", {out.bit_depth}-bit" if out.bit_depth > 8 else "")
    size = len(out.data)
    if size >= replaces_size:
        dst.unlink(missing_ok=True)
        return _not_worth(size, replaces_size, label)
    check = check_jpeg if kind == JPEG else check_heic
    problem = check(out.data, out)
    if problem is not None:
        dst.unlink(missing_ok=True)
        return EncodeResult(status=NOT_WORTH, size=0, reason=f"{problem} ({label})")
    _write_synced(dst, out.data)
    return _encoded(size, replaces_size, label)


def _write_synced(dst: Path, data: bytes) -> None:
    """``data`` in ``dst``, on the disk before this returns (DESIGN: written,
    fsynced, then renamed over the file it replaces)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_video(
    src: Path,
    dst: Path,
    crf: int,
    codec: str,
    original_sha256: str,
    tier: str,
    replaces_size: int,
    threads: int,
) -> EncodeResult:
    made = encode_video(
        src,
        dst,
        crf=crf,
        codec=codec,
        original_sha256=original_sha256,
        tier=tier,
        threads=threads,
    )
    original = made.original
    label = f"crf {crf}, {made.codec}"
    size = dst.stat().st_size
    if size >= replaces_size:
        dst.unlink()
        return _not_worth(size, replaces_size, label)
    problem = check_video(dst, original, src)
    if problem is not None:
        dst.unlink()
        return EncodeResult(status=NOT_WORTH, size=0, reason=f"{problem} ({label})")
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    result = _encoded(size, replaces_size, label)
    if made.dropped:
        # Said in the run's output too, not only inside the file: a drone's
        # flight log left out is the person's to know of now.
        result = attrs.evolve(result, reason=f"{result.reason}; left out: {made.dropped}")
    return result


def _kept(reason: str) -> EncodeResult:
    return EncodeResult(status=KEPT, size=0, reason=f"kept as it is: {reason}")


def _encoded(size: int, replaces_size: int, label: str) -> EncodeResult:
    return EncodeResult(
        status=ENCODED,
        size=size,
        reason=f"{human_size(replaces_size)} -> {human_size(size)} ({label})",
    )


def _not_worth(size: int, replaces_size: int, label: str) -> EncodeResult:
    return EncodeResult(
        status=NOT_WORTH,
        size=0,
        reason=(
            f"output not smaller than current file "
            f"({human_size(size)} >= {human_size(replaces_size)}, {label})"
        ),
    )


def human_size(n: int) -> str:
    """Bytes for people, in decimal units as file managers show them."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f} GB"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    if n >= 1_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n} B"
