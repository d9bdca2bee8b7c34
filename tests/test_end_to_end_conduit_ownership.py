"""A conduit phone deletes only what the tool itself delivered, on a real
loopback Syncthing pair whose phone folder applies deletes.

The shared folder is the person's too: they put a boarding pass there, copy
a delivered photo under another name, or ignore a year in ``.stignore``. A
release (deleted here, and so on the phone) is only ever of a file the tool
put at exactly that path with exactly those bytes, and only where Syncthing
announces the deletion. Also: the byte budget serves files in order (a
large file is not starved by newer small ones), and a released sidecar is
not delivered again."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.icloud.emulator import Account
from providers.icloud.emulator.testing import RunningEmulator, seed_trusted_session
from providers.syncthing.pair import SyncthingPair
from tests.helpers import (
    Run,
    Workspace,
    make_jpeg,
    phone_files,
    phone_workspace,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=8)
OLD = datetime(2022, 3, 4, 5, 6, tzinfo=UTC)
NO_CHANGES = "No changes. The library matches desired_state.toml.\n"
DELIVERED = "2022/03/04/IMG_1.JPG"


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncthingPair]:
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        yield pair


def conduit(root: Path, pair: SyncthingPair, *, extra: str = "") -> Workspace:
    options = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\n'
    return phone_workspace(root, pair, removal=False, phone_options=options + extra)


def until(ws: Workspace, text: str, now: datetime = NOW, timeout: float = 20.0) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        r = ws.run("plan", now=now)
        if text in r.out or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def on_phone(pair: SyncthingPair) -> dict[str, bytes]:
    return phone_files(pair)


def share(pair: SyncthingPair, rel: str) -> None:
    """Have this machine's Syncthing send a file the person put in the folder."""
    with pair.local.client() as c:
        c.scan(pair.folder_id, rel)
    wait_for(lambda: rel in on_phone(pair), what=f"{rel} reaching the phone")


@pytest.mark.parametrize(
    "rel,kind",
    [("Documents/boarding-pass.pdf", "pdf"), ("from-laptop/holiday.jpg", "jpeg")],
)
def test_a_file_the_person_put_in_the_folder_is_never_released(
    tmp_path: Path, pair: SyncthingPair, rel: str, kind: str
) -> None:
    ws = conduit(tmp_path / "ws", pair)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)  # the tool's own delivery
    theirs = pair.local_folder / rel
    if kind == "pdf":
        theirs.parent.mkdir(parents=True)
        theirs.write_bytes(b"%PDF-1.4\n% the person's boarding pass\n%%EOF\n")
    else:
        make_jpeg(theirs, OLD, seed=99)  # in no source, not in the library
    content = theirs.read_bytes()
    share(pair, rel)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert until(ws, NO_CHANGES).out == NO_CHANGES

    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert f"- release-from-phone phone:{DELIVERED}" in r.out, r.out
    assert rel not in r.out, r.out
    wait_for(lambda: DELIVERED not in on_phone(pair), what="the delivery's release")
    time.sleep(1)  # a deletion of the person's file, were one announced, arrives too
    assert on_phone(pair)[rel] == content
    assert theirs.read_bytes() == content
    final = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert (final.code, final.out) == (0, NO_CHANGES)


def test_the_same_bytes_under_another_name_stay_and_the_plan_converges(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    ws = conduit(tmp_path / "ws", pair)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert until(ws, NO_CHANGES).out == NO_CHANGES  # confirmed: delivered
    mine = pair.local_folder / "Favourites" / "best.jpg"
    mine.parent.mkdir()
    shutil.copyfile(pair.local_folder / DELIVERED, mine)
    share(pair, "Favourites/best.jpg")

    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert "best.jpg" not in r.out, r.out
    wait_for(lambda: DELIVERED not in on_phone(pair), what="the delivery's release")
    assert "Favourites/best.jpg" in on_phone(pair)
    final = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert (final.code, final.out) == (0, NO_CHANGES)


def test_a_copy_made_before_the_first_confirmation_leaves_the_delivery_releasable(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    """Both names seen in one run, the person's first in the walk: only the
    tool's own path is confirmed as its delivery, and released."""
    ws = conduit(tmp_path / "ws", pair)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    mine = pair.local_folder / "0-copies" / "IMG_1 copy.JPG"  # walked before 2022/
    mine.parent.mkdir()
    shutil.copyfile(pair.local_folder / DELIVERED, mine)
    share(pair, "0-copies/IMG_1 copy.JPG")
    assert until(ws, NO_CHANGES).out == NO_CHANGES

    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert f"- release-from-phone phone:{DELIVERED}" in r.out, r.out
    assert "IMG_1 copy" not in r.out, r.out
    wait_for(lambda: DELIVERED not in on_phone(pair), what="the delivery's release")
    assert "0-copies/IMG_1 copy.JPG" in on_phone(pair)
    assert mine.is_file()
    final = ws.run("plan", "--detailed-exitcode", now=LATER)
    assert (final.code, final.out) == (0, NO_CHANGES)


@pytest.mark.parametrize("pattern", ["/2022", "*.JPG"])
def test_a_delivery_the_person_ignores_is_kept_not_released(
    tmp_path: Path, pair: SyncthingPair, pattern: str
) -> None:
    ws = conduit(tmp_path / "ws", pair)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    assert ws.run("apply", "--yes", now=NOW).code == 0
    assert until(ws, NO_CHANGES).out == NO_CHANGES
    stignore = pair.local_folder / ".stignore"
    stignore.write_text(stignore.read_text() + pattern + "\n")  # the person's own line
    with pair.local.client() as c:
        c.scan(pair.folder_id)

    plan = ws.run("plan", now=LATER)
    assert "release-from-phone" not in plan.out, plan.out
    assert "removed it before it settled" not in plan.out, plan.out
    assert (
        f"phone:{DELIVERED}: ignored by this machine's .stignore (a pattern of yours): "
        "a release would not reach the phone, so it is kept here and there"
    ) in plan.out, plan.out
    r = ws.run("apply", "--yes", now=LATER)
    assert r.code == 0, r.out + r.err
    assert "released" not in r.out, r.out
    assert (pair.local_folder / DELIVERED).is_file()
    assert DELIVERED in on_phone(pair)
    assert ", 0 released" in ws.run("status", now=LATER).out


def test_a_file_larger_than_the_budget_is_not_starved_by_newer_small_ones(
    tmp_path: Path, pair: SyncthingPair
) -> None:
    """One new photo a day, settle_days = 1: without first come first served
    the phone never empties, and a clip larger than the budget waits for
    ever while newer photos overtake it."""
    scratch = tmp_path / "scratch"
    small = make_jpeg(scratch / "s.JPG", OLD, seed=1).stat().st_size
    big = make_jpeg(scratch / "CLIP.JPG", OLD, seed=500, size=300)
    budget = 4 * small + 400  # room for three or four photos, not for the clip
    assert big.stat().st_size > budget
    ws = conduit(tmp_path / "ws", pair, extra=f"max_bytes_on_phone = {budget}\n")
    ws.config.write_text(ws.config.read_text().replace("settle_days = 7", "settle_days = 1"))
    seen: list[str] = []
    for day in range(5):
        now = NOW + timedelta(days=day)
        make_jpeg(ws.incoming / f"IMG_{day:02d}.JPG", OLD, seed=10 + day)  # today's photo
        if day == 1:
            big.rename(ws.incoming / "CLIP.JPG")  # arrives while day 0's photo settles
        r = ws.run("apply", "--yes", now=now)
        assert r.code == 0, r.out + r.err
        seen.append(r.out)
        here = {str(p.relative_to(pair.local_folder)) for p in pair.local_folder.rglob("*.JPG")}
        wait_for(lambda: here <= on_phone(pair).keys(), what="deliveries arriving")  # noqa: B023
        # today's deliveries confirmed (on loopback within a second; a day
        # with a file held back never says "No changes": not 20 s for it)
        until(ws, NO_CHANGES, now=now, timeout=4.0)
        # never more than the budget on the phone, but for the clip alone
        phone = {k: v for k, v in on_phone(pair).items() if k.endswith(".JPG")}
        assert sum(map(len, phone.values())) <= budget or list(phone) == ["2022/03/04/CLIP.JPG"], (
            phone
        )
        if "2022/03/04/CLIP.JPG" in phone:
            break
    else:
        pytest.fail("the clip never reached the phone:\n" + "\n".join(seen))
    assert "held back" in seen[1], seen[1]  # it did wait, behind nothing newer


@pytest.fixture
def account(tmp_path: Path) -> Account:
    """One iCloud photo with metadata: its item has an XMP sidecar."""
    account = Account()
    data = make_jpeg(tmp_path / "src" / "a.jpg", OLD, seed=1).read_bytes()
    account.add_asset(data, "IMG_0001.JPG", asset_date=OLD, favorite=True, caption="Beach")
    return account


def test_a_released_sidecar_is_not_delivered_again(
    tmp_path: Path, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SyncthingPair.create(tmp_path / "st", phone_ignore_delete=False) as pair:
        monkeypatch.setenv("SYNCTHING_API_KEY", pair.local.api_key)
        monkeypatch.setenv("ICLOUD_USERNAME", emu.username)
        monkeypatch.delenv("ICLOUD_PASSWORD", raising=False)
        root = tmp_path / "ws"
        icloud = f'[sources.icloud]\nkind = "icloud"\nendpoint = "{emu.url}"\ntimeout_s = 5\n'
        conduit = 'liveness_timeout_s = 10\nrole = "conduit"\nsettle_days = 7\n'
        ws = phone_workspace(root, pair, removal=False, phone_options=conduit, sources=icloud)
        seed_trusted_session(emu, root / "state" / "icloud-session")
        assert ws.run("apply", "--yes", now=NOW).code == 0
        wait_for(lambda: any(k.endswith(".xmp") for k in on_phone(pair)), what="xmp on phone")
        assert until(ws, NO_CHANGES).out == NO_CHANGES
        r = ws.run("apply", "--yes", now=LATER)
        assert r.code == 0, r.out + r.err
        # the photo and its sidecar, each once
        assert r.out.count("released: Syncthing removes it") == 2, r.out
        wait_for(lambda: not on_phone(pair), what="releases reaching the phone")
        after = ws.run("plan", "--detailed-exitcode", now=LATER)
        assert (after.code, after.out) == (0, NO_CHANGES)
