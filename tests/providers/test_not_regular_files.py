"""Files a provider reads by name that turn out not to be regular files.

iCloud: pyicloud opens ``<account>.session`` and ``<account>.cookiejar`` in
the session directory, and we read our ``.reconcile-login.json`` there: a
FIFO in their place held every run (and ``status``) for ever. They are now
checked first, and a clear error says to remove the file and log in again.

Syncthing: ``.stignore`` is read before every delivery, freeing, release and
canary: a FIFO there held every run, a folder raised IsADirectoryError out
of the canary (which never raises; the phone is then merely unavailable).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from providers.icloud import session
from providers.syncthing import ignores
from providers.syncthing.pair import SyncthingPair, find_syncthing
from providers.syncthing.target import SyncthingTarget
from reconciler.errors import LoginRequiredError, ProviderError
from tests.helpers import KEEP_ORIGINALS, make_workspace, promptly, unblock_fifos

T = TypeVar("T")
USER = "me@example.com"
STEM = "meexamplecom"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: no request may be needed
NOT_A_FILE = "is not a regular file (a pipe, device, folder or link); remove it and run"

OBSTACLES: dict[str, Callable[[Path], None]] = {
    "fifo": os.mkfifo,
    "folder": Path.mkdir,
    # /dev/null, not /dev/zero: a regression must fail here, not read the
    # machine's memory full in this process.
    "device": lambda path: path.symlink_to("/dev/null"),
}


# ------------------------------------------------------------- iCloud


@pytest.mark.parametrize("kind", sorted(OBSTACLES))
@pytest.mark.parametrize("name", ["session", "cookiejar", "reconcile-login.json"])
def test_signing_in_beside_a_session_file_that_is_not_a_file_says_to_remove_it(
    tmp_path: Path, name: str, kind: str
) -> None:
    path = tmp_path / f"{STEM}.{name}"
    OBSTACLES[kind](path)

    def connect() -> object:
        return session.connect("phone", USER, None, tmp_path, endpoint=NOWHERE)

    with pytest.raises(ProviderError) as raised:
        promptly(connect, tmp_path)

    assert not isinstance(raised.value, LoginRequiredError)  # not "Apple refused"
    assert not raised.value.transient
    assert str(raised.value) == (
        f"phone: the iCloud session file {path} {NOT_A_FILE} `reconcile login icloud` again"
    )


def test_logging_in_beside_a_cookie_jar_fifo_says_to_remove_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / f"{STEM}.cookiejar")

    def login() -> None:
        session.login_interactive(USER, "pw", tmp_path, lambda _: "123456", endpoint=NOWHERE)

    with pytest.raises(ProviderError, match=re.escape(NOT_A_FILE)):
        promptly(login, tmp_path)


@pytest.mark.parametrize("kind", sorted(OBSTACLES))
@pytest.mark.parametrize("name", ["session", "reconcile-login.json"])
def test_the_session_age_beside_a_file_that_is_not_a_file_is_unknown(
    tmp_path: Path, name: str, kind: str
) -> None:
    (tmp_path / f"{STEM}.session").write_text('{"trust_token": "t"}')
    (tmp_path / f"{STEM}.reconcile-login.json").write_text(
        '{"trusted_at": "2024-01-01T00:00:00+00:00"}'
    )
    assert session.session_age(tmp_path, USER) is not None
    path = tmp_path / f"{STEM}.{name}"
    path.unlink()
    OBSTACLES[kind](path)

    assert promptly(lambda: session.session_age(tmp_path, USER), tmp_path) is None


def test_a_plan_beside_a_cookie_jar_fifo_names_it_and_the_rest_is_done(tmp_path: Path) -> None:
    """The whole run, in a process of its own (a FIFO's open would hold this one)."""
    ws = make_workspace(tmp_path / "w", extra=KEEP_ORIGINALS)
    ws.config.write_text(
        ws.config.read_text() + f'\n[sources.phone]\nkind = "icloud"\nendpoint = "{NOWHERE}"\n'
    )
    folder = ws.root / "state" / "icloud-session"
    folder.mkdir(parents=True, mode=0o700)
    jar = folder / f"{STEM}.cookiejar"
    os.mkfifo(jar)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICLOUD_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), "plan"],
            env={**env, "ICLOUD_USERNAME": USER},
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    finally:
        unblock_fifos(folder)
    assert done.returncode == 1, done.stderr
    assert (
        f"  ! unavailable source phone: listing failed: phone: the iCloud session file {jar} "
        f"{NOT_A_FILE} `reconcile login icloud` again; nothing is removed from it this run\n"
    ) in done.stdout
    assert done.stderr == (
        "error: source phone could not be read (see '!' above); the rest was done\n"
    )


# ---------------------------------------------------------- Syncthing


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncthingPair]:
    find_syncthing()  # fails (never skips) when syncthing is not installed
    with SyncthingPair.create(tmp_path_factory.mktemp("syncthing")) as pair:
        yield pair


@pytest.fixture(params=sorted(OBSTACLES))
def stignore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A folder whose ``.stignore`` is a FIFO, a folder or a link to a device."""
    path = tmp_path / ".stignore"
    OBSTACLES[request.param](path)
    yield path
    unblock_fifos(tmp_path)


def test_reading_an_stignore_that_is_not_a_file_is_a_provider_error(stignore: Path) -> None:
    folder = stignore.parent
    reads: list[Callable[[], object]] = [
        lambda: ignores.lines(folder),
        lambda: ignores.ignored_paths(folder),
        lambda: ignores.ensure(folder, ignores.TMP_LINE, ignores.TMP_COMMENT),
        lambda: ignores.remove(folder, "/a.jpg"),
    ]
    for read in reads:
        with pytest.raises(ProviderError) as raised:
            promptly(read, folder)
        assert str(raised.value).startswith(f"syncthing: cannot read {stignore}: not a regular")


def test_an_stignore_that_is_not_utf8_is_a_provider_error(tmp_path: Path) -> None:
    (tmp_path / ".stignore").write_bytes(b"/caf\xe9.jpg\n")
    with pytest.raises(ProviderError, match=r"\.stignore is not UTF-8 text"):
        ignores.ignored_paths(tmp_path)


@pytest.fixture
def phone(pair: SyncthingPair, stignore: Path) -> Iterator[SyncthingTarget]:
    """The pair's target, its folder's ``.stignore`` not a file (put back after)."""
    local = pair.local_folder / ".stignore"
    saved = local.read_bytes() if local.is_file() else None
    local.unlink(missing_ok=True)
    os.rename(stignore, local)
    try:
        with pair.target(timeout=5.0, liveness_timeout=5.0) as target:
            yield target
    finally:
        unblock_fifos(pair.local_folder)
        if local.is_dir() and not local.is_symlink():
            local.rmdir()
        local.unlink(missing_ok=True)
        if saved is not None:
            local.write_bytes(saved)


@pytest.mark.syncthing
def test_the_phone_is_not_alive_this_run_with_an_stignore_that_is_not_a_file(
    phone: SyncthingTarget,
) -> None:
    live = promptly(phone.prove_alive, phone.folder_path)
    assert not live.alive
    assert live.reason.startswith(f"syncthing: cannot read {phone.folder_path / '.stignore'}: ")


@pytest.mark.syncthing
def test_delivering_and_releasing_with_an_stignore_that_is_not_a_file_are_provider_errors(
    phone: SyncthingTarget, tmp_path: Path
) -> None:
    src = tmp_path / "src.jpg"
    src.write_bytes(b"a photo")
    sha = "0" * 64  # never compared: the name is chosen first
    with pytest.raises(ProviderError, match=r"\.stignore: not a regular file"):
        promptly(lambda: phone.put(src, "2021/a.jpg", sha), phone.folder_path)
    with pytest.raises(ProviderError, match=r"\.stignore: not a regular file"):
        promptly(lambda: phone.release("2021/a.jpg"), phone.folder_path)
