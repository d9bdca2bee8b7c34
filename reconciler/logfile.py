"""The log file: ``reconcile.log`` in the state directory, rotated by size
(with no old file kept, emptied at its size instead).

Every line the CLI shows (and, with ``-v``, the libraries' debug records)
goes here with a UTC timestamp, so a cron run can be read the next morning
even when cron's mail went nowhere. Secrets from the environment are
replaced by ``***`` before anything is written, whoever logged them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from reconciler.visible import escape_controls

LOG_NAME = "reconcile.log"
LOGGER = "reconcile"
#: Environment variables whose values never reach the log.
SECRET_VARIABLES = ("ICLOUD_PASSWORD", "SYNCTHING_API_KEY")


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


class _UTC(logging.Formatter):
    """Each record with its UTC time, every line of it as a person may be
    shown it (``visible.escape_controls``): a library's record under ``-v``
    or a traceback can hold a name, and no name may reorder or fake a line
    of the log. Lines the CLI logged were escaped already; escaping again
    changes nothing."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(escape_controls(line) for line in super().format(record).split("\n"))


class _SizeLimitedLog(RotatingFileHandler):
    """A rotating log that keeps its size with no old file too: given
    ``backupCount=0`` the library's handler only reopens the same file at
    the limit, and the log grows for ever; here it starts again, empty.

    A log that cannot be written (its disk full: README lets it be a link to
    a file elsewhere, under /var/log say) is said once, to ``failed``, and
    written no more this run: the library's way, a traceback on stderr for
    every record, would bury cron's mail, and the run's work and exit do
    not depend on its log."""

    def __init__(self, *args: Any, failed: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed = failed
        self._broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self._broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self._broke(sys.exc_info()[1])

    def _broke(self, e: BaseException | None) -> None:
        if self._broken:
            return
        self._broken = True  # first: what ``failed`` does must not come back here
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        self._failed(
            f"warning: the log {self.baseFilename} cannot be written ({why}); "
            "this run goes on without it"
        )

    def doRollover(self) -> None:
        super().doRollover()
        if self.backupCount == 0 and self.stream is not None:
            self.stream.truncate(0)

    def close(self) -> None:
        """Closed whatever is left unwritten: what could not be written was
        said already (``handleError``), or is said now, once."""
        try:
            super().close()
        except OSError as e:  # the last of it, flushed as it closes
            self._broke(e)


def open_log(
    state_dir: Path,
    *,
    max_bytes: int,
    backups: int,
    verbose: bool = False,
    env: Mapping[str, str] | None = None,
    failed: Callable[[str], None] | None = None,
) -> logging.Logger:
    """Start writing to the state directory's log (again: idempotent).
    ``failed`` is told, once, if the log cannot be written (default: stderr)."""
    env = os.environ if env is None else env
    logger = logging.getLogger(LOGGER)
    close_log()
    state_dir.mkdir(parents=True, exist_ok=True)
    # Opened for appending by name: a pipe there would hold the run until
    # some reader came, for ever. (A link to a file is a person's choice.)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(state_dir / LOG_NAME).st_mode):
            raise OSError(
                errno.EINVAL,
                "not a regular file (a pipe, a device or a folder took its name)",
                str(state_dir / LOG_NAME),
            )
    handler = _SizeLimitedLog(
        state_dir / LOG_NAME,
        maxBytes=max_bytes,
        backupCount=backups,
        encoding="utf-8",
        failed=failed or _to_stderr,
    )
    handler.setFormatter(_UTC("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redact = _Redact([v for k in SECRET_VARIABLES if (v := env.get(k, ""))])
    handler.addFilter(redact)  # the libraries' records (-v)
    for old in list(logger.filters):
        logger.removeFilter(old)
    logger.addFilter(redact)  # ours, before any handler sees them
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    # -v: the libraries' records too (pyicloud, urllib3), through the same filter.
    owner = logging.getLogger() if verbose else logger
    owner.addHandler(handler)
    if verbose:
        _saved_root_level[:] = [logging.getLogger().level]
    owner.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = verbose
    handler.set_name(LOG_NAME)
    return logger


def close_log() -> None:
    """Detach and close the log handlers this module added (and give the
    root logger back its level: main() may run again in the same process)."""
    for owner in (logging.getLogger(LOGGER), logging.getLogger()):
        for handler in list(owner.handlers):
            if handler.get_name() == LOG_NAME:
                owner.removeHandler(handler)
                handler.close()
    if _saved_root_level:
        logging.getLogger().setLevel(_saved_root_level.pop())


_saved_root_level: list[int] = []


def _to_stderr(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(escape_controls(text), file=sys.stderr, flush=True)
