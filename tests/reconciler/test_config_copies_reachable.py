"""``policy.copies`` against the copies the targets can make, as the gate
counts them: with removal on, a NAS and a conduit phone that does not
count as a copy can never hold two, so nothing ever leaves its source while
``validate`` said "valid (… 2 target(s), 2 copies required)"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_workspace

DEVICE = "AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD-EEEEEEE-FFFFFFF-GGGGGGG-HHHHHHH"


def _phone(tid: str, options: str = "", device: str = DEVICE) -> str:
    return (
        f'[targets.{tid}]\nkind = "syncthing"\npath = "{tid}"\nfolder_id = "{tid}"\n'
        f'device_id = "{device}"\n{options}'
    )


NAS = '[targets.nas]\nkind = "filesystem"\npath = "nas"\nsame_disk_ok = true\n'
CONDUIT = 'role = "conduit"\n'


def _validate(tmp_path: Path, targets: str, *, removal: bool = True) -> tuple[int, list[str]]:
    ws = make_workspace(tmp_path, removal=removal, targets=targets, stores=("library", "nas"))
    for tid in ("phone", "phone2"):
        (tmp_path / tid / ".stfolder").mkdir(parents=True)
    r = ws.run("validate")
    return r.code, [line for line in r.out.splitlines() if "policy.copies" in line]


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCTHING_API_KEY", "k")


def test_a_conduit_without_count_as_copy_cannot_make_the_second_copy(tmp_path: Path) -> None:
    assert _validate(tmp_path, NAS + _phone("phone", CONDUIT)) == (
        1,
        [
            "FAIL  policy.copies: 2 copies are required before removal, but the targets can "
            "make at most 1 (targets.phone is a conduit without count_as_copy = true): nothing "
            "would ever be removed from a source; lower policy.copies, add a target, or turn "
            "removal off"
        ],
    )


@pytest.mark.parametrize(
    ("targets", "removal"),
    [
        (NAS + _phone("phone", CONDUIT + "count_as_copy = true\n"), True),  # trusted
        (NAS + _phone("phone", CONDUIT), False),  # nothing to remove: kept in sources anyway
        (NAS + _phone("phone"), True),  # an archive phone is a backup
    ],
    ids=["trusted-conduit", "removal-off", "archive-phone"],
)
def test_targets_that_can_make_the_copies_pass(tmp_path: Path, targets: str, removal: bool) -> None:
    assert _validate(tmp_path, targets, removal=removal) == (0, [])


def test_two_folders_of_one_phone_count_once(tmp_path: Path) -> None:
    code, lines = _validate(tmp_path, _phone("phone") + _phone("phone2"))
    assert code == 1
    assert lines == [
        "FAIL  policy.copies: 2 copies are required before removal, but the targets can make "
        "at most 1 (the folders of one phone count once): nothing would ever be removed from a "
        "source; lower policy.copies, add a target, or turn removal off"
    ]


def test_targets_on_the_library_disk_are_warned_of(tmp_path: Path) -> None:
    """Which disk each is on is the machine's, not the file's: a warning,
    as each target's own "not a backup" line is."""
    targets = NAS.replace("same_disk_ok = true\n", "") + _phone("phone", CONDUIT)
    code, lines = _validate(tmp_path, targets)
    assert code == 1  # the conduit alone fails it
    assert lines == [
        "FAIL  policy.copies: 2 copies are required before removal, but the targets can make "
        "at most 0 (targets.phone is a conduit without count_as_copy = true; some are not a "
        "backup of their own: the lines above): nothing would ever be removed from a source; "
        "lower policy.copies, add a target, or turn removal off"
    ]
    code, lines = _validate(
        tmp_path / "2", NAS.replace("same_disk_ok = true\n", "") + _phone("phone2")
    )
    assert lines == [
        "warn  policy.copies: 2 copies are required before removal, but the targets can make "
        "at most 1 (some are not a backup of their own: the lines above): nothing would ever be "
        "removed from a source; lower policy.copies, add a target, or turn removal off"
    ]
