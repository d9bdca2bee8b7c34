"""A saved iCloud plan applied in two goes (README: ``apply PLANFILE --only
download,copy``, a run stopped after its downloads, a copy that failed)
finishes. The first go learns each file's SHA-256, and the planner then
names the rest by content (``copy:nas:<sha256>``, not the asset it comes
from): that is the plan's own work half done, not the world moved under it.
Anything else that differs is still stale (the rule, on plain values, at
the end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator
from reconciler.commands.saved_plan import intersect as _intersect
from reconciler.model import CopyToTarget, DownloadAsset, FileOrigin, Plan, WriteSidecar
from reconciler.render import size_text
from tests.helpers import Workspace, make_jpeg, media_under

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
OLD = datetime(2021, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def account(tmp_path: Path) -> Account:
    account = Account()
    jpeg = make_jpeg(tmp_path / "src" / "0.jpg", OLD, seed=0).read_bytes()
    account.add_asset(jpeg, "IMG_0000.JPG", asset_date=OLD)
    return account


def _saved(ws: Workspace, tmp_path: Path) -> Path:
    saved = tmp_path / "plan.json"
    r = ws.run("plan", "--out", str(saved), now=NOW)
    assert r.code == 0, r.out + r.err
    kinds = [a["type"] for a in json.loads(saved.read_text())["actions"]]
    assert kinds == ["download"] + ["copy-to-target"] * 2 + ["write-sidecar"] * 3 + [
        "remove-from-source"
    ]
    return saved


def _finishes(ws: Workspace, account: Account, saved: Path) -> str:
    """``apply`` of the saved plan runs the rest of it: no action stale, the
    asset off-loaded with its copies on both targets, nothing left to do."""
    again = ws.run("apply", str(saved), "--yes", now=NOW)
    assert (again.code, again.err) == (0, ""), again.out
    assert "stale" not in again.out, again.out
    assert "  + changed remove-from-source icloud:IMG_0000.JPG: removed from icloud\n" in again.out
    assert account.live_assets() == []
    for target in ("nas", "usb"):
        assert list(media_under(ws.target(target))) == ["2021/06/01/IMG_0000.JPG"]
    after = ws.run("plan", "--detailed-exitcode", now=NOW)
    assert after.code == 0, after.out
    return again.out


@pytest.mark.parametrize("first", ["download", "download,copy"])
def test_a_saved_icloud_plan_applied_stage_by_stage_finishes(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path, first: str
) -> None:
    saved = _saved(ws, tmp_path)
    r = ws.run("apply", str(saved), "--yes", "--only", first, now=NOW)
    assert (r.code, r.err) == (0, ""), r.out
    out = _finishes(ws, account, saved)
    done = "already done by an apply since this plan was made"
    assert f"  = ok download icloud:IMG_0000.JPG: {done}\n" in out, out
    if first == "download,copy":  # done under the ids they had then
        assert f"  = ok copy-to-target (2)\n      icloud:IMG_0000.JPG: {done}\n" in out, out
    else:
        # (the photo's size varies with the emulator's encoder: said as the tool says it)
        (photo,) = (ws.target("nas") / "2021/06/01").glob("IMG_0000.JPG")
        both = size_text(2 * photo.stat().st_size)
        assert f"  + changed copy-to-target (2, {both})\n" in out, out


def test_copies_a_plain_apply_made_by_content_since_are_done(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """The plan's download, then cron's copies (journaled as ``copy:nas:<sha>``,
    never as the saved ``copy:nas:icloud:<asset>:original``): done, not stale."""
    saved = _saved(ws, tmp_path)
    assert ws.run("apply", str(saved), "--yes", "--only", "download", now=NOW).code == 0
    assert ws.run("apply", "--yes", "--only", "copy", now=NOW).code == 0
    out = _finishes(ws, account, saved)
    done = "already done by an apply since this plan was made"
    assert f"  = ok copy-to-target (2)\n      icloud:IMG_0000.JPG: {done}\n" in out, out


def test_a_saved_icloud_plan_whose_copy_failed_finishes_when_run_again(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    """'run apply again to retry them', with the same plan file."""
    saved = _saved(ws, tmp_path)
    ws.target("nas").chmod(0o555)  # denied to a process without root's override
    try:
        r = _cli(ws, [*NO_DAC], "apply", str(saved), "--yes")
    finally:
        ws.target("nas").chmod(0o755)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "  x failed copy-to-target icloud:IMG_0000.JPG: nas: creating" in r.stdout, r.stdout
    assert "run apply again to retry them" in r.stderr
    assert len(account.live_assets()) == 1
    _finishes(ws, account, saved)


def test_a_saved_icloud_plan_killed_after_its_download_finishes_when_run_again(
    ws: Workspace, account: Account, emu: RunningEmulator, tmp_path: Path
) -> None:
    saved = _saved(ws, tmp_path)
    # Killed once the download's outcome is committed, before any copy.
    killed = _cli(ws, [], "apply", str(saved), "--yes", kill_at="finish-after:download:1")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert media_under(ws.target("nas")) == {}
    out = _finishes(ws, account, saved)
    assert "never finished (killed?): marked crashed" in out, out


#: Drops the capabilities that let root ignore file permissions (tests/test_faults.py).
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _cli(
    ws: Workspace, prefix: list[str], *args: str, kill_at: str = ""
) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (the emulator's account from the
    environment, as the ``ws`` fixture set it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILE_TEST_")}
    if kill_at:
        env["RECONCILE_TEST_KILL_AT"] = kill_at
    cli = [sys.executable, "-m", "reconciler.cli", "-c", str(ws.config), *args]
    return subprocess.run([*prefix, *cli], env=env, capture_output=True, text=True, timeout=120)


# ------------------------------------------------ the rule, on plain values

ASSET = "4F1A:Ab12"
ORIGIN = FileOrigin(source_id="icloud", item_key=ASSET, ref="original")
SHA = "a" * 64
KNOWN = {("icloud", ASSET, "original"): SHA}
DOWNLOAD = f"download:icloud:{ASSET}:original"


def _plan(*actions: object) -> Plan:
    return Plan(actions=tuple(actions), notes=(), created_at=NOW)  # type: ignore[arg-type]


def _download() -> DownloadAsset:
    return DownloadAsset(
        id=DOWNLOAD, subject="icloud:IMG_1.JPG", reason="not downloaded yet", origin=ORIGIN,
        name="IMG_1.JPG", size=10, captured_at=OLD,
    )  # fmt: skip


def _copy(*, learned: bool) -> CopyToTarget:
    """The copy to nas before its download (by origin) and after (by content)."""
    return CopyToTarget(
        id=f"copy:nas:{SHA}" if learned else f"copy:nas:icloud:{ASSET}:original",
        subject="icloud:IMG_1.JPG", reason="no verified copy on nas",
        depends_on=() if learned else (DOWNLOAD,), target_id="nas",
        sha256=SHA if learned else None, origin=None if learned else ORIGIN,
        name="IMG_1.JPG", size=10, captured_at=OLD,
    )  # fmt: skip


def _sidecar(sha256: str | None, depends_on: tuple[str, ...]) -> WriteSidecar:
    return WriteSidecar(
        id=f"sidecar:nas:icloud:{ASSET}", subject="nas:IMG_1.JPG.xmp", reason="metadata",
        depends_on=depends_on, store_id="nas", source_id="icloud", item_key=ASSET,
        sha256=sha256, name="IMG_1.JPG.xmp",
    )  # fmt: skip


SAVED = _plan(
    _download(),
    _copy(learned=False),
    _sidecar(None, (f"copy:nas:icloud:{ASSET}:original", DOWNLOAD)),
)
FRESH_COPY = _copy(learned=True)
FRESH_SIDECAR = _sidecar("d" * 64, (FRESH_COPY.id,))


def test_what_a_download_since_learned_names_the_same_actions() -> None:
    plan, outcomes = _intersect(
        SAVED, _plan(FRESH_COPY, FRESH_SIDECAR), done={DOWNLOAD}, known=KNOWN
    )
    assert plan.actions == (FRESH_COPY, FRESH_SIDECAR)  # the fresh plan's own
    assert [(o.action_id, o.status) for o in outcomes] == [(DOWNLOAD, "ok")]


def test_without_what_the_state_knows_nothing_is_renamed() -> None:
    plan, outcomes = _intersect(SAVED, _plan(FRESH_COPY, FRESH_SIDECAR), done={DOWNLOAD})
    assert plan.actions == ()
    assert [o.status for o in outcomes] == ["ok", "stale", "stale"]
    other = {("icloud", ASSET, "original"): "b" * 64}  # another file's content learned
    plan, _ = _intersect(SAVED, _plan(FRESH_COPY, FRESH_SIDECAR), done={DOWNLOAD}, known=other)
    assert plan.actions == ()


@pytest.mark.parametrize(
    "change",
    [
        {"size": 11},
        {"name": "IMG_2.JPG"},
        {"target_id": "usb"},
        {"captured_at": NOW},
    ],
)
def test_a_learned_copy_that_differs_otherwise_is_stale(change: dict[str, object]) -> None:
    moved = attrs.evolve(FRESH_COPY, **change)
    plan, outcomes = _intersect(SAVED, _plan(moved, FRESH_SIDECAR), done={DOWNLOAD}, known=KNOWN)
    assert plan.actions == ()
    assert [o.status for o in outcomes] == ["ok", "stale", "stale"]


def test_a_sidecar_left_to_no_download_is_not_taken_for_any_digest() -> None:
    """Content left unnamed only because a download was to learn it is what
    the item renders once known; one that waited on no download is not."""
    saved = _plan(_copy(learned=False), _sidecar(None, (f"copy:nas:icloud:{ASSET}:original",)))
    plan, outcomes = _intersect(saved, _plan(FRESH_COPY, FRESH_SIDECAR), known=KNOWN)
    assert plan.actions == (FRESH_COPY,)
    assert [(o.action_id, o.status) for o in outcomes] == [(FRESH_SIDECAR.id, "stale")]
    pinned = _plan(_download(), _sidecar("e" * 64, (DOWNLOAD,)))  # a digest saved: kept to
    plan, _ = _intersect(pinned, _plan(FRESH_SIDECAR), done={DOWNLOAD}, known=KNOWN)
    assert plan.actions == ()


def test_a_copy_whose_id_is_not_its_origins_is_stale() -> None:
    """A hand-edited id: what is renamed is the planner's name for its own
    origin, never what the file says."""
    edited = attrs.evolve(_copy(learned=False), id=f"copy:nas:icloud:{ASSET}:edited")
    plan, _ = _intersect(_plan(_download(), edited), _plan(FRESH_COPY), known=KNOWN)
    assert plan.actions == ()
