"""desired_state.toml -> DesiredState, with every problem reported at once.

Parsing is tomllib + one cattrs converter that forbids unknown keys; cattrs'
detailed validation gives each error its key path, and the semantic checks
that follow (tier order, enough targets for ``copies``…) add theirs. The
result is one ``ConfigError`` listing every problem, one line each:
``desired_state.toml: targets.nas.path: required``.

Secrets never live in the file: they come from ICLOUD_USERNAME,
ICLOUD_PASSWORD and SYNCTHING_API_KEY in the environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception as default_format_exception

from reconciler.errors import ConfigError
from reconciler.hashing import read_named
from reconciler.layout import name_key
from reconciler.media.kinds import is_housekeeping, is_trash
from reconciler.media.lineage import TIER_NAME
from reconciler.media.presets import HEIC_PRESETS

DEFAULT_CONFIG = "desired_state.toml"
ENV_CONFIG = "RECONCILE_CONFIG"

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ByteSize(int):
    """A size in bytes; the TOML may say 20000000000 or "20 GB"."""


def _parse_size(value: object, _: type) -> ByteSize:
    if isinstance(value, bool):
        raise ValueError('expected a size such as 5000000 or "5 GB"')
    if isinstance(value, int) and value >= 0:
        return ByteSize(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            # Exact decimal arithmetic: a float turns "4.35 KB" into 4349 bytes,
            # and 400 digits into infinity, which no int can hold.
            whole, _dot, fraction = m.group(1).partition(".")
            unit = _SIZE_UNITS[m.group(2).lower()]
            size = (int(whole + fraction) * unit) // 10 ** len(fraction)
            largest = (1 << 63) - 1  # what SQLite stores; more than any disk holds
            if size <= largest:
                return ByteSize(size)
            shown = value if len(value) <= 40 else f"{value[:20]}…{value[-10:]}"
            raise ValueError(f"expected a size of at most {largest} bytes, got {shown!r}")
    raise ValueError(f'expected a size such as 5000000 or "5 GB", got {value!r}')


# ------------------------------------------------------------------ values


@attrs.frozen(kw_only=True)
class FolderSource:
    """An import folder (camera card, "incoming" directory)."""

    kind: Literal["folder"]
    path: str
    remove_after_archive: bool = True
    #: Only items captured in the last N days (0: all).
    max_age_days: int = 0


@attrs.frozen(kw_only=True)
class ICloudSource:
    """iCloud Photos through pyicloud; credentials from the environment."""

    kind: Literal["icloud"]
    #: Emulator base URL (tests, the demo); empty means Apple's real service.
    endpoint: str = ""
    include_shared: bool = False
    #: Add each asset to this album before removing it (empty: don't).
    staging_album: str = ""
    #: Read timeout of each request to iCloud (the connect timeout is 10 s).
    timeout_s: float = 60.0
    #: Only items captured in the last N days (0: all), like icloudpd's --recent by date.
    max_age_days: int = 0
    #: Between full listings, a run reads only what changed (CloudKit's change
    #: feed) and applies it to the last listing; 0: a full listing every run.
    full_listing_every_days: float = 7.0


@attrs.frozen(kw_only=True)
class FilesystemTarget:
    """A mounted path (NAS, USB disk) carrying a marker file at its root."""

    kind: Literal["filesystem"]
    path: str
    #: Count its copies as a backup of their own even on a disk shared with
    #: the library or another target (tests, the demo, special setups).
    same_disk_ok: bool = False


@attrs.frozen(kw_only=True)
class SyncthingTarget:
    """The phone: a folder Syncthing shares with it; API key from the environment."""

    kind: Literal["syncthing"]
    path: str
    folder_id: str
    device_id: str
    url: str = "http://127.0.0.1:8384"
    #: Free this machine's staging copy once confirmed and removed from its
    #: source. The path is made ignored here first, so the phone keeps its copy.
    delete_local_copy: bool = False
    #: How long each run's canary may take to reach the phone (seconds)
    #: before the phone counts as not alive for that run.
    liveness_timeout_s: float = 30.0
    #: ``archive``: the phone keeps every file (a backup). ``conduit``: the
    #: phone only passes files on to Google Photos; each leaves the phone
    #: ``settle_days`` after it arrived, and is never delivered again.
    role: Literal["archive", "conduit"] = "archive"
    settle_days: float = 7.0
    #: conduit: deliver no more while the phone holds this much unsettled data.
    max_bytes_on_phone: ByteSize | None = None
    #: conduit: count a confirmed delivery as a copy, trusting Google Photos
    #: without verification (it cannot be read back).
    count_as_copy: bool = False


SourceConfig = FolderSource | ICloudSource
TargetConfig = FilesystemTarget | SyncthingTarget
_SOURCE_KINDS: dict[str, type[Any]] = {"folder": FolderSource, "icloud": ICloudSource}
_TARGET_KINDS: dict[str, type[Any]] = {
    "filesystem": FilesystemTarget,
    "syncthing": SyncthingTarget,
}


@attrs.frozen(kw_only=True)
class Tier:
    """Compression for items younger than ``max_age_days`` days (None: any age).

    The bound is exclusive: an item exactly ``max_age_days`` old, to the
    second, belongs to the next tier (``plan.tier_for``)."""

    name: str
    max_age_days: int | None = None
    jpeg_quality: int = 85
    #: None (the default): HEICs stay as they are in this tier. A phone's
    #: HEIC is already efficient: re-encoded at q85 or q75 it comes out
    #: larger, at q65 often too (README, Compression), for seconds of CPU each.
    heic_quality: int | None = None
    video_crf: int = 26
    keep: Literal["encode", "original"] = "encode"


DEFAULT_TIERS = (
    Tier(name="recent", max_age_days=365, jpeg_quality=85, video_crf=26),
    Tier(name="older", max_age_days=3 * 365, jpeg_quality=75, video_crf=28),
    Tier(name="archive", max_age_days=None, jpeg_quality=65, heic_quality=50, video_crf=30),
)


@attrs.frozen(kw_only=True)
class Removal:
    enabled: bool = False
    keep_recent_days: int = 30
    max_items_per_run: int = 500
    max_bytes_per_run: ByteSize = ByteSize(50 * 10**9)
    #: Seconds between two removals, to stay under the service's throttling.
    pace_seconds: float = 0.2


@attrs.frozen(kw_only=True)
class Policy:
    copies: int = 2
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    removal: Removal = Removal()
    video_codec: Literal["libx264", "libx265"] = "libx264"
    heic_preset: str = "fast"


@attrs.frozen(kw_only=True)
class Guards:
    #: A listing that shrinks by more than this fraction since the last run
    #: is not trusted (no removals from that source, no writes to that target).
    max_shrink_fraction: float = 0.5
    #: Re-read every file of every store this often (spread over up to twice
    #: as long), so bit rot that keeps size and mtime is found; 0: never.
    reverify_after_days: int = 180


@attrs.frozen(kw_only=True)
class Library:
    path: str


@attrs.frozen(kw_only=True)
class State:
    dir: str
    #: Copies of the state database kept in state.dir/backups (0: none).
    backup_count: int = 7
    #: At most one copy per this many hours (0: after every apply).
    backup_interval_hours: float = 24.0


@attrs.frozen(kw_only=True)
class Apply:
    workers: int = 4
    #: Parallel iCloud downloads: each waits mostly on Apple's round trip,
    #: not on this machine, so many more than ``workers``.
    download_streams: int = 16
    retries: int = 4
    backoff_base_s: float = 0.5


@attrs.frozen(kw_only=True)
class Log:
    """The log file in the state directory, rotated by size."""

    max_file_size_mb: float = 10.0
    backup_count: int = 5
    #: Prometheus textfile rewritten after every run (empty: state.dir/reconcile.prom).
    metrics_file: str = ""


@attrs.frozen(kw_only=True)
class DesiredState:
    library: Library
    state: State
    sources: dict[str, SourceConfig] = attrs.field(factory=dict)
    targets: dict[str, TargetConfig] = attrs.field(factory=dict)
    policy: Policy = Policy()
    guards: Guards = Guards()
    apply: Apply = Apply()
    log: Log = Log()
    #: SHA-256 of the file, so a saved plan can tell the config moved.
    digest: str = ""
    #: The configuration file's own real path ("" when it has none: a pipe),
    #: which no file the tool writes may land on (``overwrites``).
    file: str = ""

    @property
    def library_path(self) -> Path:
        return Path(self.library.path)

    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir)


def same_disk_ok(desired: DesiredState) -> frozenset[str]:
    """Targets whose copies count as a backup of their own on any disk."""
    return frozenset(
        tid
        for tid, cfg in desired.targets.items()
        if isinstance(cfg, FilesystemTarget) and cfg.same_disk_ok
    )


# --------------------------------------------------------------- converter


_TYPE_WORDS = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}


def _strict(kind: type, reject: type | None = None) -> Any:
    def hook(value: Any, _: type) -> Any:
        if not isinstance(value, kind) or (reject and isinstance(value, reject)):
            raise ValueError(f"expected {_TYPE_WORDS[kind]}, got {value!r}")
        return value

    return hook


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _shape(value: object) -> str:
    """What a TOML value is, in a person's words (never a Python class)."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:20]!r}…"
    if isinstance(value, int | float | str):
        return repr(value)
    return "a date or time" if hasattr(value, "isoformat") else "another kind of value"


def _format_exception(exc: BaseException, type_: type | None) -> str:
    # Our own hooks raise ValueError with a message meant for a person.
    if isinstance(exc, ValueError) and str(exc).startswith(("expected", "kind:")):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    # cattrs' own words for a value of the wrong shape name Python types
    # ("expected a mapping", "'list' object has no attribute 'keys'"): the
    # shapes a TOML file has instead. (Tables and tier lists are checked by
    # their hooks first; these are what is left.)
    if get_origin(type_) is dict or attrs.has(type_ or object):
        return "expected a table"
    if get_origin(type_) is tuple:
        return "expected a list"
    if get_origin(type_) is Literal:
        # cattrs says "x not in literal typing.Literal[...]": the choices, plainly
        choices = ", ".join(str(c) for c in get_args(type_))
        got = str(exc).split(" not in literal", 1)[0]
        return f"expected one of {choices}, got {got!r}"
    return default_format_exception(exc, type_)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    # Every section is a table: anything else is said so, with what it is
    # (``guards = []``, ``policy.removal = true``), before cattrs would
    # answer with its own internals.
    def table(cl: type[Any]) -> Any:
        structure = make_dict_structure_fn(cl, conv)

        def hook(value: Any, _: type) -> Any:
            if not isinstance(value, dict):
                raise ValueError(f"expected a table, got {_shape(value)}")
            return structure(value, cl)

        return hook

    conv.register_structure_hook_factory(attrs.has, table)
    # ``[policy.tiers]`` (one pair of brackets, the commonest slip) is one
    # table, which cattrs would walk as a list of its keys.
    tiers = conv.get_structure_hook(tuple[Tier, ...])

    def tier_list(value: Any, type_: type) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"expected a list of tables, got {_shape(value)}{_TIERS_HINT}")
        return tiers(value, type_)

    conv.register_structure_hook_func(lambda t: t == tuple[Tier, ...], tier_list)
    conv.register_structure_hook(ByteSize, _parse_size)
    # TOML already has types: take them as they are instead of coercing
    # (cattrs would turn 3 into "3" and "no" into True).
    for scalar in (str, bool):
        conv.register_structure_hook(scalar, _strict(scalar))
    conv.register_structure_hook(int, _strict(int, reject=bool))
    conv.register_structure_hook(float, _strict_float)

    def tagged(kinds: dict[str, type[Any]], what: str) -> Any:
        def hook(value: Any, _: type) -> Any:
            if not isinstance(value, dict):
                raise ValueError(f"expected a table for the {what}")
            kind = value.get("kind")
            # (a list or a table is no key: looked up, it would raise TypeError)
            if not isinstance(kind, str) or kind not in kinds:
                choices = ", ".join(sorted(kinds))
                got = "nothing" if kind is None else _shape(kind)
                raise ValueError(f"kind: expected one of {choices}, got {got}")
            return conv.structure(value, kinds[kind])

        return hook

    conv.register_structure_hook(SourceConfig, tagged(_SOURCE_KINDS, "source"))
    conv.register_structure_hook(TargetConfig, tagged(_TARGET_KINDS, "target"))
    return conv


_TIERS_HINT = "; write each tier as [[policy.tiers]] (two pairs of brackets) with its keys below"

converter = _make_converter()


def _dotted(path: str) -> str:
    path = re.sub(r"\['([^']*)'\]", r".\1", path)
    path = re.sub(r"\[(\d+)\]", r"[\1]", path)
    return path.removeprefix("$").removeprefix(".")


def _friendly(message: str) -> tuple[str, str]:
    """Split cattrs' 'msg @ $.path' into (path, our wording)."""
    msg, _, path = message.rpartition(" @ ")
    dotted = _dotted(path)
    if msg == "required field missing":
        return dotted, "required"
    m = re.match(r"invalid value for type, expected (\w+)", msg)
    if m:
        return dotted, f"expected {m.group(1)}"
    return dotted, msg


def _structure_errors(exc: BaseException) -> list[str]:
    out: list[str] = []
    for message in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        path, msg = _friendly(message)
        extra = re.fullmatch(r"extra fields found \((.*)\)", msg)
        if extra:
            for key in extra.group(1).split(", "):
                out.append(f"{path + '.' if path else ''}{key}: unknown key")
        elif msg.startswith("expected a table") and path and not path.endswith("]"):
            # how to write one, for a key given a value where a section goes
            out.append(f"{path}: {msg}; write [{path}] on a line of its own, its keys below")
        elif msg.startswith("kind: "):
            out.append(f"{path}.kind: {msg.removeprefix('kind: ')}")
        else:
            out.append(f"{path}: {msg}" if path else msg)
    return out


# ---------------------------------------------------------------- loading


def config_path(explicit: str | None) -> Path:
    """``-c FILE``, else $RECONCILE_CONFIG, else ./desired_state.toml. An empty
    ``-c ""`` (cron's ``-c "$CONFIG"`` with the variable unset) is refused, not
    taken for "not given": that would run some other library's configuration."""
    if explicit is not None and not explicit.strip():
        raise ConfigError(
            [f'-c "{explicit}": an empty configuration path; pass -c FILE (is a variable unset?)']
        )
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


#: Far more than any configuration holds: what is read of the file at most.
MAX_BYTES = 1 << 20


def load(path: Path) -> DesiredState:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    name = _shown(path)
    try:
        raw_bytes = read_named(path, MAX_BYTES)
    except FileNotFoundError:
        raise ConfigError([f"{name}: not found (pass -c FILE or set {ENV_CONFIG})"]) from None
    except OSError as e:
        raise ConfigError([f"{name}: cannot read: {e.strerror}"]) from e
    try:
        # "utf-8-sig": a file saved as "UTF-8 with BOM" (Notepad) starts
        # with an invisible mark tomllib refuses at line 1, column 1, where
        # the person's editor shows nothing wrong. It is no part of the text.
        raw = tomllib.loads(raw_bytes.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError([f"{name}: not valid TOML: {e}"]) from e
    # The file's own name goes into the log and the run's messages; it is
    # refused with whatever else is wrong (its relative paths too, below).
    located = [] if _is_utf8(path) else [f"{name}: the file's path is not valid UTF-8; {_RENAME}"]
    try:
        # Relative paths are taken from the file's folder; a pipe
        # (``-c <(...)``) has none to take them from.
        base = None if stat.S_ISFIFO(path.stat().st_mode) else path.resolve().parent
        # Its real path (symlinks followed) before any check: the checks of
        # what the tool writes compare each with it (``overwrites``).
        file = "" if base is None else str(path.resolve())
        desired = parse(raw, name=name, base=base, digest=_digest(raw_bytes), file=file)
    except ConfigError as e:
        raise ConfigError([*located, *e.problems]) from None
    if located:
        raise ConfigError(located)
    return desired


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse(
    raw: dict[str, Any], *, name: str, base: Path | None, digest: str = "", file: str = ""
) -> DesiredState:
    """Structure a TOML document; relative paths are taken from ``base``
    (None: refused, the document was read from a pipe). ``file``: the
    document's own real path, which nothing the tool reads from, removes
    from or writes may hold or replace."""
    try:
        desired = converter.structure(raw, DesiredState)
    except (ClassValidationError, IterableValidationError) as e:
        raise ConfigError([f"{name}: {line}" for line in _structure_errors(e)]) from e
    problems = [f"{name}: {p}" for p in _check(desired)]
    if problems:
        raise ConfigError(problems)
    resolved = attrs.evolve(_resolved(desired, base, digest, name), file=file)
    found = _check_utf8(resolved) + _check_overlaps(resolved) + _check_outputs(resolved)
    found += _check_own_file(resolved)
    problems = [f"{name}: {p}" for p in found]
    if problems:
        raise ConfigError(problems)
    return resolved


def _check(d: DesiredState) -> list[str]:
    problems: list[str] = []
    ident = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    for section, table in (("sources", d.sources), ("targets", d.targets)):
        for key in table:
            if not ident.match(key):
                problems.append(f"{section}.{key}: ids use letters, digits, '-' and '_'")
    clash = sorted(set(d.sources) & set(d.targets))
    for key in clash:
        problems.append(f"targets.{key}: the id is also used by a source")
    if "library" in d.targets:
        problems.append("targets.library: 'library' is reserved for the local library")
    for key, src in d.sources.items():
        if getattr(src, "max_age_days", 0) < 0:
            problems.append(f"sources.{key}.max_age_days: must not be negative (0: all)")
        if getattr(src, "full_listing_every_days", 0) < 0:
            problems.append(
                f"sources.{key}.full_listing_every_days: must not be negative "
                "(0: a full listing every run)"
            )
    if d.policy.copies < 1:
        problems.append("policy.copies: must be at least 1")
    for key, t in d.targets.items():
        if isinstance(t, FilesystemTarget):
            bin_ = next((p for p in Path(t.path).parts if is_trash(p) or is_housekeeping(p)), None)
            if bin_ is not None:
                problems.append(
                    f"targets.{key}.path: {t.path} lies inside {bin_!r}, where a disk or a NAS "
                    "throws files away (a recycle bin, a snapshot, lost+found): copies there are "
                    "no backup; name a folder outside it"
                )
    for key, t in d.targets.items():
        if not isinstance(t, SyncthingTarget):
            continue
        if t.role == "conduit" and t.delete_local_copy:
            problems.append(
                f'targets.{key}.delete_local_copy: not with role = "conduit" '
                "(a conduit's files leave the phone on their own after settle_days)"
            )
        if t.role == "archive":
            for name in ("count_as_copy", "max_bytes_on_phone"):
                if getattr(t, name) not in (False, None):
                    problems.append(f'targets.{key}.{name}: only with role = "conduit"')
        if t.settle_days < 0 or (t.role == "conduit" and t.settle_days == 0):
            problems.append(
                f"targets.{key}.settle_days: must be more than 0 (the phone keeps each file "
                "this long for Google Photos to take it before it is released)"
            )
    removes = d.policy.removal.enabled
    if removes and d.policy.copies > len(d.targets):
        problems.append(
            f"policy.copies: {d.policy.copies} copies are required before removal "
            f"but only {len(d.targets)} backup target(s) are configured"
        )
    if d.policy.removal.keep_recent_days < 0:
        problems.append("policy.removal.keep_recent_days: must not be negative")
    if d.policy.removal.max_items_per_run < 0:
        problems.append("policy.removal.max_items_per_run: must not be negative")
    if not 0 < d.guards.max_shrink_fraction <= 1:
        problems.append("guards.max_shrink_fraction: must be in (0, 1]")
    if d.guards.reverify_after_days < 0:
        problems.append("guards.reverify_after_days: must not be negative (0: never)")
    if d.apply.workers < 1:
        problems.append("apply.workers: must be at least 1")
    if not 1 <= d.apply.download_streams <= 64:
        problems.append("apply.download_streams: must be from 1 to 64")
    if d.log.max_file_size_mb <= 0:
        problems.append("log.max_file_size_mb: must be more than 0")
    if d.log.backup_count < 0:
        problems.append("log.backup_count: must not be negative")
    if d.state.backup_count < 0:
        problems.append("state.backup_count: must not be negative (0: no backups)")
    if d.state.backup_interval_hours < 0:
        problems.append("state.backup_interval_hours: must not be negative")
    problems.extend(_check_tiers(d.policy.tiers))
    problems.extend(_check_day_counts(d))
    if d.policy.heic_preset not in HEIC_PRESETS:
        problems.append(f"policy.heic_preset: expected one of {', '.join(HEIC_PRESETS)}")
    # Durations a run sleeps, waits or reckons dates with: past a hundred
    # years they overflow the sleep, the socket timeout or the timedelta.
    century_s, century = MAX_DAYS * 86_400, "a hundred years"
    bounds: list[tuple[str, float, float, str]] = [
        ("policy.removal.pace_seconds", d.policy.removal.pace_seconds, century_s, century),
        ("apply.backoff_base_s", d.apply.backoff_base_s, century_s, century),
        ("state.backup_interval_hours", d.state.backup_interval_hours, MAX_DAYS * 24, century),
        ("log.max_file_size_mb", d.log.max_file_size_mb, 10**9, "a petabyte"),
    ]
    for key, src in d.sources.items():
        if isinstance(src, ICloudSource):
            bounds.append((f"sources.{key}.timeout_s", src.timeout_s, century_s, century))
    for key, target in d.targets.items():
        if isinstance(target, SyncthingTarget):
            where = f"targets.{key}.liveness_timeout_s"
            bounds.append((where, target.liveness_timeout_s, century_s, century))
    for where, amount, most, said in bounds:
        if most < amount < float("inf"):  # inf and nan: refused as not finite, below
            problems.append(f"{where}: at most {most} ({said})")
    # ... and never below zero: a negative pause or backoff crashed the
    # run in the middle of its removals (a sleep of -1 s), a negative
    # timeout every request. A time to wait for an answer is more than 0.
    waits = (".timeout_s", ".liveness_timeout_s")
    if d.apply.retries < 0:
        problems.append("apply.retries: must not be negative (0: no retry)")
    for where, amount, _most, _said in bounds:
        wait = where.endswith(waits)
        if any(p.startswith(f"{where}:") for p in problems):
            continue  # said already
        if amount < 0 or (wait and amount == 0):
            least = "be more than 0" if wait else "not be negative"
            problems.append(f"{where}: must {least} (got {amount:g})")
    # Every number must be finite: nan passes every range check above (it
    # compares false), and nan or inf then crash the run that turns it into
    # an int, a timedelta or a sleep. Found wherever it is in the tree, so a
    # number added later is covered too; a key already refused is not twice.
    pending: list[tuple[str, Any]] = [("", d)]
    while pending:
        where, value = pending.pop()
        children: list[tuple[str, Any]] = []
        if isinstance(value, float):
            reported = any(p.startswith(f"{where}:") for p in problems)
            if not float("-inf") < value < float("inf") and not reported:
                problems.append(f"{where}: must be a finite number, not {value}")
        elif attrs.has(type(value)):
            fields = attrs.fields(type(value))
            children = [(f"{where}.{f.name}".lstrip("."), getattr(value, f.name)) for f in fields]
        elif isinstance(value, dict):
            children = [(f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, tuple):
            children = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        pending.extend(reversed(children))  # in the file's order
    return problems


#: The longest span a day count may give (a century): dates further off
#: than that fall out of what a date can hold when reckoned from now.
MAX_DAYS = 36_500


def _check_day_counts(d: DesiredState) -> list[str]:
    """Every count of days within ``MAX_DAYS`` (a "forever" of a million
    days would stop every run on a date past the year 9999)."""
    spans: list[tuple[str, float | None, str]] = []
    for key, src in d.sources.items():
        spans.append((f"sources.{key}.max_age_days", getattr(src, "max_age_days", 0), "0: all"))
        every = getattr(src, "full_listing_every_days", 0)
        spans.append((f"sources.{key}.full_listing_every_days", every, ""))
    for key, target in d.targets.items():
        if isinstance(target, SyncthingTarget):
            spans.append((f"targets.{key}.settle_days", target.settle_days, ""))
    spans.append(("policy.removal.keep_recent_days", d.policy.removal.keep_recent_days, ""))
    spans.append(("guards.reverify_after_days", d.guards.reverify_after_days, "0: never"))
    for i, tier in enumerate(d.policy.tiers):
        any_age = "leave it out: any age"
        spans.append((f"policy.tiers[{i}].max_age_days", tier.max_age_days, any_age))
    return [
        f"{where}: at most {MAX_DAYS} (a hundred years)" + (f"; {hint}" if hint else "")
        for where, days, hint in spans
        if days is not None and days > MAX_DAYS
    ]


def _check_tiers(tiers: tuple[Tier, ...]) -> list[str]:
    problems: list[str] = []
    last: int | None = -1
    names: set[str] = set()
    for i, t in enumerate(tiers):
        where = f"policy.tiers[{i}]"
        if t.name in names or t.name == "original":
            problems.append(f"{where}.name: {t.name!r} is used twice or reserved")
        names.add(t.name)
        if last is None:
            problems.append(f"{where}: comes after a tier with no max_age_days (unreachable)")
        elif t.max_age_days is not None and t.max_age_days <= last:
            problems.append(f"{where}.max_age_days: tiers must be in increasing age order")
        last = t.max_age_days
        for key in ("jpeg_quality", "heic_quality"):
            value = getattr(t, key)
            if value is not None and not 1 <= value <= 100:
                problems.append(f"{where}.{key}: must be between 1 and 100")
        if not 0 <= t.video_crf <= 51:
            problems.append(f"{where}.video_crf: must be between 0 and 51")
        if not TIER_NAME.fullmatch(t.name):
            problems.append(
                f"{where}.name: use up to 64 letters, digits, '.', '-' and '_' (it is written "
                "into encoded files)"
            )
    return problems


def places(d: DesiredState) -> list[tuple[str, Path]]:
    """Every folder the tool reads or writes, by its key in the file (the
    observer also tells them apart by identity: ``places.fences``)."""
    places = [
        (f"sources.{k}.path", Path(v.path))
        for k, v in d.sources.items()
        if isinstance(v, FolderSource)
    ]
    places.append(("library.path", d.library_path))
    places.extend((f"targets.{k}.path", Path(v.path)) for k, v in d.targets.items())
    places.append(("state.dir", d.state_dir))
    return places


_RENAME = "rename the folder (e.g. convmv -f latin1 -t utf8)"
_NOT_UTF8 = f"the path is not valid UTF-8; {_RENAME}"


def _shown(path: Path | str) -> str:
    """``path`` as text that can be printed, logged and stored anywhere:
    bytes that are not UTF-8 (kept by Python as lone surrogates) as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(path: Path | str) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_utf8(d: DesiredState) -> list[str]:
    """Every place's real path is UTF-8 (after ``~`` and symlinks).

    A folder named in Latin-1 (a home copied from an old system, a source
    linked to one) gives paths that SQLite, the log and the plan cannot
    store: each is refused by its key before anything runs, the folders
    below it included (the state database, the log, the metrics file)."""
    every = places(d)
    if d.log.metrics_file:
        every.append(("log.metrics_file", Path(d.log.metrics_file)))
    return [f"{key} ({_shown(path)}): {_NOT_UTF8}" for key, path in every if not _is_utf8(path)]


#: The state directory's own files and folders, by the start of their names:
#: the database, the run lock, the log, its backups, the iCloud session, a
#: run's downloads. No file a person names for the tool to write replaces one.
STATE_OWN = ("state.db", "lock", "reconcile.log", "backups", "icloud-session", "fetch-")


#: What ``overwrites`` calls the configuration file itself.
OWN_FILE = "the configuration file"


def overwrites(d: DesiredState, path: Path) -> str:
    """What a file written at ``path`` (a saved plan, a report, the metrics
    file: named by a person) would land in and may overwrite, by its key,
    or "": a source, the library or a target (photos and backups: a plan
    saved over a photo not yet archived loses it), or the state directory's
    own files, or the configuration file itself. ``path`` is compared
    after symlinks are resolved."""
    real = Path(os.path.realpath(path))
    if d.file and real == Path(d.file):
        return OWN_FILE
    for key, place in places(d):
        root = Path(os.path.realpath(place))
        if real != root and root not in real.parents:
            continue
        if key != "state.dir":
            return key
        if real == root or real.relative_to(root).parts[0].startswith(STATE_OWN):
            return "state.dir (its own files)"
    return ""


def not_a_file(path: Path | str) -> str:
    """What stands at ``path`` (symlinks followed) when it is neither a
    regular file nor a folder nor nothing: "a character device"…; else "".

    A file the tool writes is replaced whole (a temporary renamed over it):
    over ``/dev/null`` (a likely way to say "no metrics file") that
    replaces the device itself with a regular file, and as root breaks the
    system. A folder is left out: no rename replaces one (``validate``
    warns of it, and the run says it cannot write there)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""  # nothing there (or nothing to see): written, or said when written
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device (a disk)"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((what for test, what in kinds if test(mode)), "")


def _check_outputs(d: DesiredState) -> list[str]:
    """The metrics file, rewritten after every run, never lands in a place
    nor on the configuration file, nor replaces what is no file."""
    if not d.log.metrics_file:
        return _check_default_metrics(d)
    shown = _shown(d.log.metrics_file)
    kind = not_a_file(d.log.metrics_file)
    if kind:
        return [
            f"log.metrics_file ({shown}): that is {kind}, not a file; the metrics file is "
            f"replaced whole after every run, so name a regular file (empty: "
            f"state.dir/{DEFAULT_METRICS_NAME}; there is no setting that turns it off)"
        ]
    inside = overwrites(d, Path(d.log.metrics_file))
    if inside == OWN_FILE:
        return [
            f"log.metrics_file ({shown}): that is {OWN_FILE} itself, which it would replace "
            "after every run; name another file (in node_exporter's folder)"
        ]
    if not inside:
        return []
    return [
        f"log.metrics_file ({shown}): inside {inside}, whose files "
        "it would overwrite after every run; put it elsewhere (node_exporter's folder)"
    ]


#: The metrics file's name in the state directory when ``log.metrics_file``
#: is empty (``metrics.PROM_NAME``, a module config may not import).
DEFAULT_METRICS_NAME = "reconcile.prom"


def _check_default_metrics(d: DesiredState) -> list[str]:
    """The default metrics file (in state.dir) replaces no device or pipe."""
    path = d.state_dir / DEFAULT_METRICS_NAME
    kind = not_a_file(path)
    if not kind:
        return []
    return [
        f"state.dir ({_shown(d.state_dir)}): {_shown(path)}, the metrics file, is {kind}; "
        "move it away (the file is replaced whole after every run) or set log.metrics_file"
    ]


def _check_own_file(d: DesiredState) -> list[str]:
    """The configuration file lies in no folder the tool imports from (a
    folder source, the library), is no configured folder, and is none of
    the state directory's own files. In an import folder it would be
    imported as a photo, copied to every target and, once archived,
    removed from there: every later run then stops with "not found"; in
    the library it would be copied to every target as one of its photos.
    Refused rather than skipped by the walk: a walk that missed it
    (another spelling of its path, a hard link) would still take it, and
    the folder it is in gets emptied by the tool, or by a person who
    formats the card. (A target's walk only reads its files, and an
    unknown one there is left alone.)

    By path after symlinks; ``places.fences`` compares the identities of
    the folders above it, at every run (a bind mount)."""
    if not d.file:
        return []  # read from a pipe: no file to lose
    file = Path(d.file)
    problems: list[str] = []
    for key, place in places(d):
        root = Path(os.path.realpath(place))
        if root == file:
            problems.append(f"{key} ({_shown(place)}): that is {OWN_FILE}; name a folder")
        elif root not in file.parents:
            continue
        elif imports_from(key):
            problems.append(own_file_inside(file, key, root))
        elif key == "state.dir":
            name = file.relative_to(root).parts[0]
            default_metrics = name == DEFAULT_METRICS_NAME and not d.log.metrics_file
            if name.startswith(STATE_OWN) or default_metrics:
                problems.append(
                    f"state.dir ({_shown(place)}): {OWN_FILE} ({_shown(file)}) is one of its "
                    "own files, which the tool rewrites; rename the configuration file or move it"
                )
    return problems


def imports_from(key: str) -> bool:
    """The place ``key`` (``places``) is walked for photos to import and
    copy on: a folder source or the library, never a target or the state."""
    return key.startswith("sources.") or key == "library.path"


def own_file_inside(file: Path | str, key: str, root: Path | str, how: str = "") -> str:
    """The configuration file at ``file`` lies inside the place ``key``
    (``how``: how it was met, when its path does not show it)."""
    what = (
        "imported as a photo, copied to every target and removed from there once archived"
        if key.startswith("sources.")
        else "copied to every target as one of its photos"
    )
    return (
        f"{OWN_FILE} ({_shown(file)}) is inside {key} ({_shown(root)}){how}: it would be "
        f"{what}; keep it outside the folders the tool imports from (e.g. beside state.dir)"
    )


def _check_overlaps(d: DesiredState) -> list[str]:
    """Sources, library, targets and the state directory never overlap.

    A target inside a source is listed as source items and deleted as such;
    a library inside a source is re-imported every run. Paths are compared
    after ``~`` and symlinks are resolved (``_resolved``), and as a disk
    that ignores case and Unicode form compares names (exFAT, SMB: ``DCIM``
    and ``dcim/backup`` are a folder and one inside it there, and
    ``layout.name_key``); on a disk that tells them apart, two places named
    alike but for case are refused too, as the safe side."""
    problems: list[str] = []
    every = [(key, path, Path(name_key(str(path)))) for key, path in places(d)]
    for i, (key_a, a, folded_a) in enumerate(every):
        for key_b, b, folded_b in every[i + 1 :]:
            case = "" if (a == b or a.is_relative_to(b) or b.is_relative_to(a)) else _BY_CASE
            if folded_a == folded_b:
                problems.append(
                    f"{key_a} and {key_b} are the same folder ({_shown(a)}){case}; "
                    "give each its own"
                )
            elif folded_a.is_relative_to(folded_b) or folded_b.is_relative_to(folded_a):
                (inner_key, inner), (outer_key, outer) = (
                    ((key_a, a), (key_b, b))
                    if folded_a.is_relative_to(folded_b)
                    else ((key_b, b), (key_a, a))
                )
                problems.append(
                    f"{inner_key} ({_shown(inner)}) is inside {outer_key} ({_shown(outer)})"
                    f"{case}; sources, library, targets and state must not contain one another"
                )
    return problems


_BY_CASE = (
    " on a disk that does not tell names apart by case or Unicode form (exFAT, SMB, "
    "a phone), as this one may not"
)


def _resolved(d: DesiredState, base: Path | None, digest: str, name: str) -> DesiredState:
    relative: list[str] = []

    def fix(p: str) -> str:
        path = Path(p).expanduser()
        if base is None and not path.is_absolute():
            relative.append(p)
        return str(((base or Path("/")) / path).resolve())

    sources = {
        k: attrs.evolve(v, path=fix(v.path)) if isinstance(v, FolderSource) else v
        for k, v in d.sources.items()
    }
    targets = {k: attrs.evolve(v, path=fix(v.path)) for k, v in d.targets.items()}
    resolved = attrs.evolve(
        d,
        library=Library(path=fix(d.library.path)),
        state=attrs.evolve(d.state, dir=fix(d.state.dir)),
        sources=sources,
        targets=targets,
        log=attrs.evolve(d.log, metrics_file=fix(d.log.metrics_file) if d.log.metrics_file else ""),
        digest=digest,
    )
    if relative:
        raise ConfigError(
            [
                f"{name}: {p!r} is a relative path, and a configuration read from a pipe has no "
                "folder to take it from; make it absolute"
                for p in relative
            ]
        )
    return resolved
