"""This machine's ``.stignore`` for the shared folder: the lines reconcile keeps.

Two kinds of line are ours. ``/.reconcile-tmp`` hides half-written files.
``/<path>`` for every *freed* staging copy: Syncthing marks an ignored file's
record here as invalid instead of announcing a deletion when the file goes,
so the phone keeps its copy whatever its own folder settings say (seen with
a phone folder that does not ignore deletes), and its record stays the
global version, which is how a later run still sees that the phone holds it.

Every other line is the user's and is kept as it is, in its order; ours
come first. Syncthing decides a path by the *first* pattern that matches
it, so a line of ours below a negation of the person's (``!*.JPG``, "sync
every JPG") would not ignore its path: freeing could then never succeed,
and a freed copy's deletion would reach the phone. An exact line of ours
placed first changes nothing for any other path. Writes are atomic
(temporary file, fsync, rename): a half-written ``.stignore`` could un-ignore
a freed path, and Syncthing would then announce its deletion.

What Syncthing ignores is Syncthing's to say (its index marks an ignored
file, or never indexes it): the person's patterns are read here only to
name the one that does (``pattern_for``), never to decide.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
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


def decisive(folder: Path) -> frozenset[str]:
    """The paths our lines ignore whatever the person's say: those in our
    block at the top of the file (``ensure``), before any line of theirs."""
    ours, _ = _split(lines(folder))
    return frozenset(x[1:] for x in ours if _is_exact(x) and x != TMP_LINE)


def ensure(folder: Path, line: str, comment: str) -> None:
    """Have ``line`` (after ``comment``) in our block at the top of the file:
    added, or moved up from below a line of the person's (an older file,
    or a pattern they put first since), with every other line of ours."""
    current = lines(folder)
    ours, theirs = _split(current)
    if line in ours:
        return
    if comment not in ours:
        ours.append(comment)
    ours.append(line)
    _write(folder, _arranged(ours + theirs))


def remove(folder: Path, line: str) -> None:
    """Take ``line`` back (a freeing that did not go through), and its
    comment with it when no line of ours follows it any more."""
    current = lines(folder)
    kept = _arranged([x for x in current if x.strip() != line])
    if kept != current:
        _write(folder, kept)


def _split(current: list[str]) -> tuple[list[str], list[str]]:
    """(our block at the top, stripped; every line after it, as it is)."""
    ours: list[str] = []
    for i, x in enumerate(current):
        s = x.strip()
        if s in (TMP_COMMENT, TMP_LINE, FREED_COMMENT) or (FREED_COMMENT in ours and _is_exact(s)):
            ours.append(s)
            continue
        return ours, current[i:]
    return ours, []


def _arranged(current: list[str]) -> list[str]:
    """The same lines with ours first: the temporary folder's, then every
    freed path's (the exact lines under a freed comment, wherever they
    are); the person's after them in their order. Moving an exact line of
    ours up changes nothing for any other path; below a negation of the
    person's it would not take effect."""
    freed: list[str] = []
    theirs: list[str] = []
    under = False
    for x in current:
        s = x.strip()
        if s == FREED_COMMENT:
            under = True
        elif s in (TMP_COMMENT, TMP_LINE):
            under = False
        elif under and _is_exact(s):
            if s not in freed:
                freed.append(s)
        else:
            under = False
            theirs.append(x)
    block = [TMP_COMMENT, TMP_LINE] if TMP_LINE in (x.strip() for x in current) else []
    if freed:
        block += [FREED_COMMENT, *freed]
    return block + theirs


def _is_exact(line: str) -> bool:
    return line.startswith("/") and not line.startswith("//") and exact_line(line[1:]) == line


def pattern_for(patterns: Iterable[str], rel: str) -> str | None:
    """The first of ``patterns`` (the person's lines, as Syncthing parsed
    them: ``/rest/db/ignores``) that matches ``rel`` or a folder above it,
    as Syncthing reads them (the first match decides; a ``!`` line means
    "not ignored"); None when none seems to. Only to name the pattern in
    a message: whether a path is ignored is Syncthing's answer."""
    for line in patterns:
        s = line.strip()
        if not s or s.startswith(("//", "#")):
            continue  # a comment, or an #include (not followed here)
        if _matches(s, rel):
            return s
    return None


def _matches(pattern: str, rel: str) -> bool:
    body = pattern.removeprefix("!")
    flags = 0
    while body.startswith(("(?i)", "(?d)")):
        if body.startswith("(?i)"):
            flags = re.IGNORECASE
        body = body[4:]
    rooted = body.startswith("/")
    glob = _glob_re(body.lstrip("/").rstrip("/"))
    where = "" if rooted else "(?:.*/)?"
    try:
        # DOTALL: a name may hold a newline, which Syncthing's globs match
        return re.fullmatch(f"{where}{glob}(?:/.*)?", rel, flags | re.DOTALL) is not None
    except re.error:
        return False  # a pattern not understood here: it is not named


def _glob_re(glob: str) -> str:
    """Syncthing's glob as a regular expression: ``**`` crosses folders,
    ``*`` and ``?`` do not; ``[...]`` and ``{a,b}`` as in a shell; ``\\``
    escapes the next character."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        elif c == "[" and (end := glob.find("]", i + 1)) > i:
            inside = glob[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + inside[1:] if inside.startswith("!") else inside) + "]")
            i = end
        elif c == "{" and (end := glob.find("}", i + 1)) > i:
            out.append("(?:" + "|".join(_glob_re(a) for a in glob[i + 1 : end].split(",")) + ")")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


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
