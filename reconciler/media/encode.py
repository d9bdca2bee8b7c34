"""The single entry point for re-encoding one original for a library tier.

``encode_file`` is a plain module-level function of plain arguments so that
the applier can run it in a ProcessPoolExecutor (encoding is CPU-bound). It
reads the original, never writes to it, and writes the result to ``dst`` (a
temporary path the caller owns and renames) only when the result is worth
keeping: it decodes, has the original's dimensions, and is smaller than the
file it would replace. It reads the original through one descriptor, and
checks what it read against the SHA-256 the caller proved (``files``).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from reconciler.errors import MediaError
from reconciler.hashing import discard
from reconciler.media.files import HeldOriginal, held, synced, write_synced
from reconciler.media.kinds import (
    HEAD_BYTES,
    HEIC,
    JPEG,
    OTHER,
    VIDEO,
    KeepOriginal,
    content_name,
    media_kind,
    sniff_kind,
)
from reconciler.media.lineage import check_lineage
from reconciler.media.presets import HEIC_PRESETS
from reconciler.media.still import StillOutput, check_heic, check_jpeg, encode_heic, encode_jpeg
from reconciler.media.video import EncodeTimeout, check_video, encode_video

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
    source_sha256: str | None = None,
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
    bad arguments; OSError naming ``dst`` when it cannot be written.

    ``source_sha256``: the SHA-256 the caller proved ``src`` to hold. What
    the encoder read is checked against it before any result or MediaError
    is returned, and bytes of another file (a new photo that took the name
    since) raise OriginalChanged instead: nothing is said of the original.
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
    settings = _Settings(
        quality=quality,
        crf=crf,
        video_codec=video_codec,
        heic_preset=heic_preset,
        original_sha256=original_sha256,
        tier=tier,
        replaces_size=replaces_size,
        threads=threads,
    )
    try:
        with held(src, source_sha256) as original:
            try:
                result = _encode_held(original, dst, settings)
            except EncodeTimeout:
                raise  # the machine's fault: nothing is said of the original
            except MediaError:
                original.prove()  # "cannot decode" is said of its bytes only
                raise
            original.prove()  # as is any result
            return result
    except BaseException:
        # Whatever went wrong (bad input, interrupt, another file read), a
        # half-written dst must not be mistaken for a result by the caller.
        discard(dst)
        raise


@attrs.frozen(kw_only=True)
class _Settings:
    """``encode_file``'s arguments, for the encoder of the content's kind."""

    quality: int | None
    crf: int | None
    video_codec: str
    heic_preset: str
    original_sha256: str
    tier: str
    replaces_size: int
    threads: int


def _encode_held(original: HeldOriginal, dst: Path, s: _Settings) -> EncodeResult:
    """The encode of the open ``original``, by the kind its content is."""
    head = original.head(HEAD_BYTES)
    if not head:
        raise MediaError(f"{original.name}: empty file")
    kind = sniff_kind(head)
    # The planner chose the setting by the name's kind (a HEIC named
    # .jpg was given the tier's JPEG quality, which is not the HEIC's):
    # content of another kind than its name says is kept as it is.
    named = _named_kind(original.name, dst)
    try:
        if kind in (JPEG, HEIC, VIDEO) and named not in (OTHER, kind):
            return _kept(
                f"its content is {_KIND_NAMES[kind]}, but its name says {_KIND_NAMES[named]} "
                "(the tier's setting was chosen for that); rename it to encode it"
            )
        if kind in (JPEG, HEIC):
            if s.quality is None:
                return _kept(f"its content is {kind.upper()}, but it was planned as a video")
            # Read whole, and proven before the encode: the encoder reads
            # these bytes only, so nothing of another file can slip in.
            data = original.whole()
            original.prove(data)
            return _encode_still(original.name, dst, kind, s.quality, s, data)
        if kind == VIDEO:
            if s.crf is None:
                return _kept("its content is a video, but it was planned as a still")
            return _encode_video(original, dst, s.crf, s)
    except KeepOriginal as keep:
        discard(dst)
        return _kept(keep.reason)
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
    name: Path, dst: Path, kind: str, quality: int, s: _Settings, data: bytes
) -> EncodeResult:
    """The still ``data`` (the file ``name``, read) encoded into ``dst``."""
    label = f"q{quality}"
    out: StillOutput
    if kind == JPEG:
        out = encode_jpeg(
            name, quality=quality, original_sha256=s.original_sha256, tier=s.tier, data=data
        )
    else:
        out = encode_heic(
            name,
            quality=quality,
            preset=s.heic_preset,
            original_sha256=s.original_sha256,
            tier=s.tier,
            threads=s.threads,
            data=data,
        )
        label = f"q{quality}, {s.heic_preset}" + (
            f", {out.bit_depth}-bit" if out.bit_depth > 8 else ""
        )
    size = len(out.data)
    if size >= s.replaces_size:
        discard(dst)
        return _not_worth(size, s.replaces_size, label)
    check = check_jpeg if kind == JPEG else check_heic
    problem = check(out.data, out)
    if problem is not None:
        discard(dst)
        return EncodeResult(status=NOT_WORTH, size=0, reason=f"{problem} ({label})")
    write_synced(dst, out.data)
    return _encoded(size, s.replaces_size, label)


def _encode_video(original: HeldOriginal, dst: Path, crf: int, s: _Settings) -> EncodeResult:
    """The clip ``original`` encoded into ``dst``: ffmpeg and ffprobe read
    it through its descriptor, and what they say names the file."""
    try:
        result = _encode_clip(original.path, dst, crf, s, original.name)
    except KeepOriginal as e:
        raise KeepOriginal(original.named(e.reason)) from e
    except MediaError as e:
        e.args = (original.named(str(e)),)
        raise
    return attrs.evolve(result, reason=original.named(result.reason))


def _encode_clip(src: Path, dst: Path, crf: int, s: _Settings, name: Path) -> EncodeResult:
    made = encode_video(
        src,
        dst,
        crf=crf,
        codec=s.video_codec,
        original_sha256=s.original_sha256,
        tier=s.tier,
        threads=s.threads,
        name=name,
    )
    original = made.original
    label = f"crf {crf}, {made.codec}"
    size = dst.stat().st_size
    if size >= s.replaces_size:
        dst.unlink()
        return _not_worth(size, s.replaces_size, label)
    problem = check_video(dst, original, src)
    if problem is not None:
        dst.unlink()
        return EncodeResult(status=NOT_WORTH, size=0, reason=f"{problem} ({label})")
    synced(dst)
    result = _encoded(size, s.replaces_size, label)
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
