"""A store's marker file (``MARKER``): written by ``reconcile init-target``,
read at every availability check, and told apart from what else may lie
at its name."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import ProviderError
from reconciler.hashing import fsync_dir, open_to_read

MARKER = ".reconcile-target.json"


TMP_PREFIX = ".reconcile-tmp-"


def write_marker(root: Path, store_id: str) -> Path:
    """Mark ``root`` as the store ``store_id`` (``reconcile init-target``)."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if os.path.lexists(marker):
        existing = read_marker(root)
        if existing is None:
            raise ProviderError(
                f"{not_a_marker(root)}; refusing to mark {root} over it: move it aside if it "
                "is nothing of yours, then run init-target again",
                provider=store_id,
            )
        if existing != store_id:
            raise ProviderError(
                f"{root} is already marked as {existing!r}; refusing to re-mark it",
                provider=store_id,
            )
        return marker
    body = {"id": store_id, "created_at": datetime.now(UTC).isoformat(), "tool": "reconcile"}
    tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, marker)
    fsync_dir(root)
    return marker


def read_marker(root: Path) -> str | None:
    """The store id in the marker at ``root``; None when there is no marker
    of ours there (``not_a_marker`` says what is there instead)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        return marker_at(fd)
    finally:
        os.close(fd)


#: A marker is a few hundred bytes: no more is ever read of one.
MARKER_LIMIT = 1 << 16


def marker_at(fd: int) -> str | None:
    """The store id in the marker of the directory ``fd``. Opened as a
    regular file only (``open_to_read``: a FIFO or a device put at its name
    would make the open or the read wait for ever), and read up to
    ``MARKER_LIMIT``."""
    try:
        with open(open_to_read(MARKER, dir_fd=fd), "rb") as f:
            data = json.loads(f.read(MARKER_LIMIT))
    except (OSError, ValueError):
        return None  # a longer file is cut short: no JSON, no marker of ours
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def not_a_marker(root: Path) -> str:
    """What is at the marker's name in ``root`` when ``read_marker`` finds
    no store id there, as a person should be told it; "" when nothing is."""
    marker = root / MARKER
    try:
        st = os.lstat(marker)
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"{marker} cannot be looked at ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        what = "a folder"
    elif stat.S_ISLNK(st.st_mode):
        what = "a symbolic link to no marker"
    elif not stat.S_ISREG(st.st_mode):
        what = "a pipe, device or socket"
    elif st.st_size > MARKER_LIMIT:
        what = f"a file of {st.st_size} bytes (a marker has a few hundred)"
    else:
        try:
            with open(open_to_read(marker), "rb"):
                what = "a file with no store id in it (damaged, or another program's)"
        except OSError as e:
            what = f"a file that cannot be read ({e.strerror or e})"
    return f"{marker} is {what}, not a marker of reconcile"
