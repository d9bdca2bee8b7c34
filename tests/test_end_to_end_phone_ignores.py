"""The person's own ``.stignore`` patterns on this machine, and the tool's
(the whole tool, real Syncthing): what Syncthing ignores is Syncthing's to
say; the tool's lines come first, so no pattern of the person's undoes them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from providers.syncthing import ignores
from providers.syncthing.pair import SyncthingPair
from reconciler import config
from reconciler.connect import connect
from reconciler.observe import observe
from reconciler.state import StateDB
from tests.helpers import Workspace, files_under, make_jpeg, phone_files, phone_workspace

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
REL = "2022/03/04/IMG_1.JPG"
FREED = [ignores.TMP_COMMENT, ignores.TMP_LINE, ignores.FREED_COMMENT, f"/{REL}"]


@pytest.fixture
def strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    """A pair whose phone folder applies deletions: one reaching it deletes the phone's copy."""
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def _freeing(tmp_path: Path, pair: SyncthingPair) -> tuple[Workspace, bytes]:
    ws = phone_workspace(
        tmp_path / "ws",
        pair,
        removal=True,
        phone_options="liveness_timeout_s = 10\ndelete_local_copy = true\n",
    )
    return ws, make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()


def _until_freed(ws: Workspace, pair: SyncthingPair) -> None:
    deadline = time.monotonic() + 20
    while True:
        r = ws.run("apply", "--yes", now=NOW)
        assert r.code == 0, r.out + r.err  # never a refusal (3), never a failure
        if not (pair.local_folder / REL).exists() and not files_under(ws.incoming):
            return
        assert time.monotonic() < deadline, r.out + r.err
        time.sleep(0.3)


def test_a_negation_of_the_persons_does_not_keep_a_copy_from_being_freed(
    tmp_path: Path, strict: SyncthingPair
) -> None:
    pair = strict
    stignore = pair.local_folder / ".stignore"
    stignore.write_text("!*.JPG\n")  # "sync every JPG", put there before the tool came
    ws, photo = _freeing(tmp_path, pair)
    _until_freed(ws, pair)
    assert stignore.read_text().splitlines() == [*FREED, "!*.JPG"]
    assert phone_files(pair) == {REL: photo}
    final = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert final.code == 0, final.out


def test_a_negation_put_first_after_freeing_never_deletes_the_phones_copy(
    tmp_path: Path, strict: SyncthingPair
) -> None:
    pair = strict
    ws, photo = _freeing(tmp_path, pair)
    _until_freed(ws, pair)
    stignore = pair.local_folder / ".stignore"
    assert stignore.read_text().splitlines() == FREED
    stignore.write_text("!*.JPG\n" + stignore.read_text())  # the person's, at the top
    r = ws.run("apply", "--yes", now=NOW)
    assert r.code == 0, r.out + r.err
    assert stignore.read_text().splitlines() == [*FREED, "!*.JPG"]
    with pair.local.client() as c:
        c.scan(pair.folder_id)  # Syncthing's own rescan
    time.sleep(1)
    assert phone_files(pair) == {REL: photo}


def test_a_delivery_a_pattern_of_the_persons_ignores_is_said_with_the_pattern(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    (pair.local_folder / ".stignore").write_text("// mine\n/2022\n")
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 10\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert (pair.local_folder / REL).is_file()  # delivered here, and never sent
    desired = config.load(ws.config)
    db = StateDB.in_dir(desired.state_dir)
    conn = connect(desired)
    try:
        world = observe(desired, db, conn, now=NOW)
    finally:
        conn.close()
        db.close()
    (phone,) = [t for t in world.targets if t.target_id == "phone"]
    assert phone.remarks == (
        (
            f"phone:{REL}",
            f"{REL} is ignored by this machine's .stignore (your pattern '/2022'): Syncthing "
            "never sends it to the phone; remove or narrow that pattern; it does not count",
        ),
    )
    assert list(files_under(ws.incoming)) == ["IMG_1.JPG"]


def test_the_tools_lines_go_first_and_leave_nothing_behind(tmp_path: Path) -> None:
    """Without Syncthing: the file's lines as ``ensure`` and ``remove`` leave them."""
    stignore = tmp_path / ".stignore"
    # an older file: the tool's freed line below a negation the person added since
    stignore.write_text(
        f"{ignores.TMP_COMMENT}\n{ignores.TMP_LINE}\n!*.JPG\n"
        f"{ignores.FREED_COMMENT}\n/a.JPG\n*.tmp\n"
    )
    ignores.ensure(tmp_path, "/b.JPG", ignores.FREED_COMMENT)
    assert stignore.read_text().splitlines() == [
        ignores.TMP_COMMENT,
        ignores.TMP_LINE,
        ignores.FREED_COMMENT,
        "/b.JPG",
        "/a.JPG",
        "!*.JPG",
        "*.tmp",
    ]
    assert ignores.decisive(tmp_path) == {"a.JPG", "b.JPG"}
    ignores.remove(tmp_path, "/a.JPG")
    ignores.remove(tmp_path, "/b.JPG")
    # no comment left heading nothing
    assert stignore.read_text().splitlines() == [
        ignores.TMP_COMMENT,
        ignores.TMP_LINE,
        "!*.JPG",
        "*.tmp",
    ]


@pytest.mark.parametrize(
    ("patterns", "named"),
    [
        (["/2022"], "/2022"),
        (["*.png", "(?i)*.jpg"], "(?i)*.jpg"),
        (["!*.JPG", "/2022"], "!*.JPG"),  # the first match decides: not ignored
        (["**/04"], "**/04"),
        (["/20[!2]2"], None),
        (["{x,2022}/03"], "{x,2022}/03"),
        (["#include more", "// mine"], None),
    ],
)
def test_the_pattern_that_ignores_a_path_is_named(patterns: list[str], named: str | None) -> None:
    assert ignores.pattern_for(patterns, REL) == named


def test_a_pattern_of_the_person_s_that_ignores_the_canary_is_named(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    """ ".*" (no hidden files) in this machine's .stignore ignores the
    liveness canary too: the phone could never be proven alive, and every
    run waited its whole timeout and blamed the phone's folder."""
    (pair.local_folder / ".stignore").write_text(".*\n")
    ws = phone_workspace(
        tmp_path / "ws", pair, removal=True, phone_options="liveness_timeout_s = 3\n"
    )
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    p = ws.run("plan", now=NOW)
    assert (
        "this machine's .stignore ignores the test file .reconcile-canary (your pattern '.*'): "
        "the phone can never be proven alive; add the line !/.reconcile-canary above that "
        "pattern"
    ) in p.out + p.err, p.out + p.err
