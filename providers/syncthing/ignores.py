"""This machine's ``.stignore`` for the shared folder: the lines reconcile keeps.

Two kinds of line are ours. ``/.reconcile-tmp`` hides half-written files.
``/<path>`` for every *freed* staging copy: Syncthing marks an ignored file's
record here as invalid instead of announcing a deletion when the file goes,
so the phone keeps its copy whatever its own folder settings say (seen with
a phone folder that does not ignore deletes), and its record stays the
global version, which is how a later run still sees that the phone holds it.

Every other line is the user's and is kept as it is. Writes are atomic
(temporary file, fsync, rename): a half-written ``.stignore`` could un-ignore
a freed path, and Syncthing would then announce its deletion.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from providers.syncthing.client import PROVIDER
from reconciler.errors import ProviderError
from reconciler.hashing import fsync_dir, read_file

STIGNORE = ".stignore"
TMP_DIR = ".reconcile-tmp"
TMP_LINE = f"/{TMP_DIR}"
TMP_COMMENT = "// reconcile writes temporary files here; never sync them"
FREED_COMMENT = "// reconcile: freed here, kept on the phone; never remove these lines"
# The largest ``.stignore`` read: a line per freed photo is some 60 bytes, so
# this holds a million of them. Never cut short: a rewrite of part of the
# file would un-ignore freed paths, whose deletion Syncthing then announces.
MAX_STIGNORE = 64 << 20
# Characters with a meaning in Syncthing's patterns: a path holding one
# cannot be named exactly by a plain line, so it is never freed.
_SPECIAL = frozenset("*?[]{}\\!#")


def lines(folder: Path) -> list[str]:
    """The file's lines as Syncthing reads them: split at "\n" only (a CR
    before it dropped). ``str.splitlines`` also splits at U+2028, U+0085
    and more, which a file name may hold: a freed name's own line was then
    never found again, added anew every run, and its pieces ignored other
    photos (a bare ``A.JPG`` line ignores every A.JPG).

    ProviderError when it cannot be read whole: not a regular file (a FIFO
    would hold the run for ever), too large, or not UTF-8."""
    path = folder / STIGNORE
    try:
        data = read_file(path, MAX_STIGNORE + 1)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ProviderError(
            f"cannot read {path}: {e.strerror or e}; it must be a text file (or absent)",
            provider=PROVIDER,
        ) from e
    if len(data) > MAX_STIGNORE:
        raise ProviderError(
            f"{path} is larger than {MAX_STIGNORE >> 20} MiB; it is not read", provider=PROVIDER
        )
    try:
        text = data.decode("utf-8")  # no newline translation
    except UnicodeDecodeError as e:
        raise ProviderError(f"{path} is not UTF-8 text: {e}", provider=PROVIDER) from e
    found = [line.removesuffix("\r") for line in text.split("\n")]
    return found[:-1] if found and found[-1] == "" else found


def exact_line(rel: str) -> str | None:
    """The one ``.stignore`` line that ignores exactly ``rel``; None if the
    path cannot be written as a plain pattern."""
    if any(c in _SPECIAL for c in rel) or any(p != p.strip() for p in rel.split("/")):
        return None
    return f"/{rel}"


def ignored_paths(folder: Path) -> frozenset[str]:
    """Paths named exactly by a ``/path`` line (ours or the user's)."""
    return frozenset(
        line.strip()[1:]
        for line in lines(folder)
        if line.strip().startswith("/") and not line.strip().startswith("//")  # a comment
    )


def ensure(folder: Path, line: str, comment: str) -> None:
    """Add ``line`` (after ``comment``) unless it is there already."""
    current = lines(folder)
    if line in (x.strip() for x in current):
        return
    if comment not in current:
        current.append(comment)
    current.append(line)
    _write(folder, current)


def remove(folder: Path, line: str) -> None:
    current = lines(folder)
    kept = [x for x in current if x.strip() != line]
    if kept != current:
        _write(folder, kept)


def staging(folder: Path) -> Path:
    """The folder's ``.reconcile-tmp``, made if missing: where every file is
    written before it is moved into place. Never a symbolic link: what is
    written there would land elsewhere, and the sweep after a killed run
    would delete elsewhere's files (ProviderError then)."""
    path = folder / TMP_DIR
    if path.is_symlink():
        raise ProviderError(
            f"{path} is a symbolic link: nothing is written through one; remove it",
            provider=PROVIDER,
        )
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        raise ProviderError(f"making {path} failed: {e}", provider=PROVIDER) from e
    return path


def _write(folder: Path, content: list[str]) -> None:
    path = folder / STIGNORE
    if TMP_LINE not in (x.strip() for x in content):
        content = [TMP_COMMENT, TMP_LINE, *content]  # so the temporary file stays hidden
    try:
        fd, name = tempfile.mkstemp(dir=staging(folder), prefix="stignore-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("\n".join(content) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        fsync_dir(folder)
    except OSError as e:
        raise ProviderError(f"writing {path} failed: {e}", provider=PROVIDER) from e
