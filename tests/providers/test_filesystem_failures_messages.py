"""An error a write meets says where: an OSError that names no file (as
os.utime's and many others' do) is never shown as a bare
": Read-only file system", but with the store (and file) its action
writes; one that names a file is shown with it."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore
from tests.helpers import KEEP_ORIGINALS, make_jpeg, make_workspace

OLD = datetime(2022, 1, 1, tzinfo=UTC)


def _failing_on_nas(monkeypatch: pytest.MonkeyPatch, error: OSError) -> None:
    """The nas store's writes raise ``error``, unwrapped, as a provider's
    write that forgot to wrap one would."""
    real = FilesystemStore.put

    def put(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.id == "nas":
            raise error
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FilesystemStore, "put", put)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(errno.EROFS, "Read-only file system"), "nas: Read-only file system"),
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/nas/x.jpg"),
            "/mnt/nas/x.jpg: Read-only file system",
        ),
    ],
)
def test_an_unwrapped_os_error_names_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, said: str
) -> None:
    ws = make_workspace(tmp_path, extra=KEEP_ORIGINALS + "\n[apply]\nretries = 0\n")
    make_jpeg(ws.incoming / "IMG_0.JPG", OLD, seed=0)
    _failing_on_nas(monkeypatch, error)
    r = ws.run("apply", "--yes", "--detail")
    assert r.code == 1, r.out + r.err
    failed = [line for line in r.out.splitlines() if line.startswith("  x failed")]
    assert failed == [f"  x failed copy-to-target incoming:IMG_0.JPG: {said}"]
