"""Sources, library, targets and the state directory never overlap.

A target inside the source folder is listed as source items (and its copies
deleted as such); a library inside the source is re-imported and re-encoded
every run. The configuration refuses every such pair, after ``~`` and
symlinks are resolved; the removal gate refuses to count such a copy anyway.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.filesystem import FilesystemStore, write_marker
from reconciler.gate import GateRefused, SourceSide, check_removal
from reconciler.hashing import sha256_file
from reconciler.model import FileCopy
from tests.helpers import files_under, make_jpeg, make_workspace, rot_unseen

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


def _config(root: Path, *, source: str, library: str, nas: str, usb: str, state: str) -> str:
    return f"""
[library]
path = "{library}"
[state]
dir = "{state}"
[sources.card]
kind = "folder"
path = "{source}"
[targets.nas]
kind = "filesystem"
path = "{nas}"
[targets.usb]
kind = "filesystem"
path = "{usb}"
[policy.removal]
enabled = true
"""


CASES = {
    "target inside the source": (
        dict(source="pics", library="lib", nas="pics/nas", usb="usb", state="st"),
        ["targets.nas.path ({r}/pics/nas) is inside sources.card.path ({r}/pics)"],
    ),
    "library inside the source": (
        dict(source="pics", library="pics/Library", nas="nas", usb="usb", state="st"),
        ["library.path ({r}/pics/Library) is inside sources.card.path ({r}/pics)"],
    ),
    "source inside a target": (
        dict(source="nas/in", library="lib", nas="nas", usb="usb", state="st"),
        ["sources.card.path ({r}/nas/in) is inside targets.nas.path ({r}/nas)"],
    ),
    "two targets in one folder": (
        dict(source="in", library="lib", nas="disk", usb="disk/", state="st"),
        ["targets.nas.path and targets.usb.path are the same folder ({r}/disk)"],
    ),
    "state inside the library": (
        dict(source="in", library="lib", nas="nas", usb="usb", state="lib/.state"),
        ["state.dir ({r}/lib/.state) is inside library.path ({r}/lib)"],
    ),
    "library is the source": (
        dict(source="pics", library="./pics", nas="nas", usb="usb", state="st"),
        ["sources.card.path and library.path are the same folder ({r}/pics)"],
    ),
    "one place inside two others": (
        dict(source="a", library="a/b", nas="a/b/c", usb="usb", state="st"),
        [
            "library.path ({r}/a/b) is inside sources.card.path ({r}/a)",
            "targets.nas.path ({r}/a/b/c) is inside sources.card.path ({r}/a)",
            "targets.nas.path ({r}/a/b/c) is inside library.path ({r}/a/b)",
        ],
    ),
}
_TAIL = "; sources, library, targets and state must not contain one another"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_every_overlap_is_refused_by_each_command(tmp_path: Path, case: str, command: str) -> None:
    paths, expected = CASES[case]
    ws = make_workspace(tmp_path)
    ws.config.write_text(_config(tmp_path, **paths))
    make_jpeg(tmp_path / paths["source"] / "IMG_1.JPG", OLD)
    before = files_under(tmp_path)
    args = ["apply", "--yes"] if command == "apply" else [command]
    r = ws.run(*args, now=NOW)
    assert r.code == 1
    assert r.out == ""
    lines = []
    for e in expected:
        line = f"error: {ws.config}: " + e.format(r=tmp_path)
        lines.append(line if "same folder" in e else line + _TAIL)
    if "same folder" in expected[0]:
        lines = [line + "; give each its own" for line in lines]
    assert r.err.splitlines() == lines
    assert files_under(tmp_path) == before  # nothing read into, copied or removed


def test_symlinks_and_home_are_resolved_before_comparing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path)
    (tmp_path / "pics").mkdir()
    os.symlink(tmp_path / "pics", tmp_path / "alias")  # the NAS "elsewhere" is the source
    monkeypatch.setenv("HOME", str(tmp_path))
    ws.config.write_text(
        _config(tmp_path, source="~/pics", library="lib", nas="alias/nas", usb="usb", state="st")
    )
    r = ws.run("validate")
    assert r.code == 1
    assert r.err == (
        f"error: {ws.config}: targets.nas.path ({tmp_path}/pics/nas) is inside "
        f"sources.card.path ({tmp_path}/pics){_TAIL}\n"
    )


def test_neighbours_with_a_common_prefix_do_not_overlap(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ws.config.write_text(
        _config(
            tmp_path, source="photos", library="photos-lib", nas="photos2", usb="usb", state="st"
        )
    )
    for store in ("photos-lib", "photos2", "usb"):
        write_marker(
            tmp_path / store, {"photos-lib": "library", "photos2": "nas"}.get(store, store)
        )
    (tmp_path / "photos").mkdir()
    assert ws.run("validate").code == 0


# ------------------------------------------------------- the gate, in depth


def _store_with_copy(
    root: Path, store_id: str, rel: str, data: bytes
) -> tuple[FilesystemStore, FileCopy]:
    write_marker(root, store_id)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    sha = sha256_file(path)
    return FilesystemStore(store_id, root), FileCopy(
        store_id=store_id, path=rel, size=len(data), mtime_ns=0, sha256=sha
    )


def _nas_and_usb(
    nas_root: Path, usb_root: Path, rel: str, photo: bytes
) -> tuple[dict[str, FilesystemStore], dict[str, dict[str, FileCopy]]]:
    """Two stores holding ``photo`` at ``rel``, and their copies by SHA-256."""
    nas, nas_copy = _store_with_copy(nas_root, "nas", rel, photo)
    usb, usb_copy = _store_with_copy(usb_root, "usb", rel, photo)
    sha = nas_copy.sha256
    return {"nas": nas, "usb": usb}, {"nas": {sha: nas_copy}, "usb": {sha: usb_copy}}


def test_the_gate_never_counts_a_copy_under_the_source(tmp_path: Path) -> None:
    card = tmp_path / "card"
    photo = make_jpeg(card / "IMG_1.JPG", OLD).read_bytes()
    sha = sha256_file(card / "IMG_1.JPG")
    stores, copies = _nas_and_usb(card / "nas", tmp_path / "usb", "IMG_1.JPG", photo)
    side = SourceSide(files=[card / "IMG_1.JPG"], root=card)
    with pytest.raises(GateRefused) as e:
        check_removal([("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies, source=side)
    assert str(e.value) == (
        "IMG_1.JPG: 1 of 2 verified copies now (usb); "
        "not counted: nas (inside the source itself); kept"
    )
    # Without the source's side, the same copies would pass: the rule is what refuses.
    assert check_removal([("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies) == [sha]


def test_the_gate_never_counts_the_source_file_itself(tmp_path: Path) -> None:
    """A hard link (or a bind mount) of the source file is the same file."""
    card = tmp_path / "card"
    photo = make_jpeg(card / "IMG_1.JPG", OLD).read_bytes()
    sha = sha256_file(card / "IMG_1.JPG")
    (tmp_path / "nas" / "2024").mkdir(parents=True)
    os.link(card / "IMG_1.JPG", tmp_path / "nas" / "2024" / "IMG_1.JPG")
    nas, nas_copy = _store_with_copy(tmp_path / "nas", "nas", "2024/IMG_1.JPG", photo)
    usb, usb_copy = _store_with_copy(tmp_path / "usb", "usb", "IMG_1.JPG", photo)
    with pytest.raises(GateRefused, match=r"not counted: nas \(inside the source itself\)"):
        check_removal(
            [("IMG_1.JPG", sha)],
            need=2,
            stores={"nas": nas, "usb": usb},
            copies={"nas": {sha: nas_copy}, "usb": {sha: usb_copy}},
            source=SourceSide(files=[card / "IMG_1.JPG"], root=card),
        )


def test_a_corrupt_copy_found_by_the_gate_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    """Damage that keeps size and mtime fools the hash cache; the gate's own
    read must not be forgotten: the next run re-reads, re-copies, removes."""
    ws = make_workspace(tmp_path, removal=False)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=4).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (nas_copy,) = ws.target("nas").rglob("IMG_1.JPG")
    damaged = bytearray(photo)
    damaged[100] ^= 0xFF
    rot_unseen(nas_copy, bytes(damaged), ws.root / "state")
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))

    first = ws.run("apply", "--yes", now=NOW)
    assert first.code == 3
    assert "! refused remove-from-source incoming:IMG_1.JPG: IMG_1.JPG: 1 of 2" in first.out
    assert files_under(ws.incoming) == {"IMG_1.JPG": photo}

    second = ws.run("apply", "--yes", now=NOW)
    assert second.code == 0, second.out + second.err
    assert "+ changed copy-to-target incoming:IMG_1.JPG: copied to nas:" in second.out
    assert "+ changed remove-from-source incoming:IMG_1.JPG" in second.out
    assert sorted(files_under(ws.target("nas")).values()) == sorted([bytes(damaged), photo])
    assert files_under(ws.incoming) == {}
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_two_targets_copies_that_are_one_file_count_once(tmp_path: Path) -> None:
    """A deduplicating tool run on a disk both targets share (``same_disk_ok``)
    hard-links their copies: one file, however many names, is one copy."""
    photo = make_jpeg(tmp_path / "IMG_1.JPG", OLD).read_bytes()
    sha = sha256_file(tmp_path / "IMG_1.JPG")
    stores, copies = _nas_and_usb(tmp_path / "nas", tmp_path / "usb", "2024/IMG_1.JPG", photo)
    (tmp_path / "usb/2024/IMG_1.JPG").unlink()
    os.link(tmp_path / "nas/2024/IMG_1.JPG", tmp_path / "usb/2024/IMG_1.JPG")
    shared = {"nas": "store:nas", "usb": "store:usb"}  # each counts on its own
    with pytest.raises(GateRefused) as e:
        check_removal([("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies, groups=shared)
    assert str(e.value) == (
        "IMG_1.JPG: 1 of 2 verified copies now (nas); "
        "not counted: usb (the same file as nas's copy); kept"
    )
    # A copy of its own (the link broken by a real copy) counts again.
    (tmp_path / "usb/2024/IMG_1.JPG").unlink()
    (tmp_path / "usb/2024/IMG_1.JPG").write_bytes(photo)
    assert check_removal(
        [("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies, groups=shared
    ) == [sha]


def test_targets_hard_linked_after_archiving_keep_the_photo(tmp_path: Path) -> None:
    """End to end: archived to both targets, then deduplicated into one file
    on their shared disk; the photo stays in the source, and the run says why."""
    ws = make_workspace(tmp_path, removal=False)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=8).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (nas_copy,) = ws.target("nas").rglob("IMG_1.JPG")
    (usb_copy,) = ws.target("usb").rglob("IMG_1.JPG")
    usb_copy.unlink()
    os.link(nas_copy, usb_copy)  # as `rdfind -makehardlinks true` would
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))
    # The plan counts the copies as the gate will: no removal planned (the
    # gate refusing it on every run, exit 3, was the plan's miscount).
    plan = ws.run("plan", now=NOW)
    assert "remove-from-source" not in plan.out, plan.out
    assert (
        "1 of 2 verified copies; not counted: usb (the same file as nas's copy (a hard link))"
        in plan.out
    ), plan.out
    assert "target usb: its copies of 1 file are the same file as another's" in plan.out, plan.out
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "refused" not in run.out
    assert files_under(ws.incoming) == {"IMG_1.JPG": photo}
    # A real copy in place of the link counts again: the photo leaves.
    usb_copy.unlink()
    usb_copy.write_bytes(photo)
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "+ changed remove-from-source incoming:IMG_1.JPG" in run.out
    assert files_under(ws.incoming) == {}


def test_a_copy_hard_linked_to_the_source_file_is_not_planned_as_one(tmp_path: Path) -> None:
    """A deduplicating tool run over one disk holding the card folder and a
    target links the target's copy to the source's own file: the gate never
    counts it, and the plan does not either (it planned the removal, and the
    gate refused it on every run)."""
    ws = make_workspace(tmp_path, removal=False)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=9).read_bytes()
    other = make_jpeg(ws.incoming / "IMG_2.JPG", OLD, seed=10).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (nas_copy,) = ws.target("nas").rglob("IMG_1.JPG")
    nas_copy.unlink()
    os.link(ws.incoming / "IMG_1.JPG", nas_copy)
    ws.config.write_text(ws.config.read_text().replace("enabled = false", "enabled = true"))
    plan = ws.run("plan", "--json", now=NOW)
    actions = json.loads(plan.out)["actions"]
    removals = [a["subject"] for a in actions if a["type"] == "remove-from-source"]
    assert removals == ["incoming:IMG_2.JPG"], plan.out
    human = ws.run("plan", now=NOW).out
    assert "not counted: nas (the same file as the source's own (a hard link))" in human, human
    run = ws.run("apply", "--yes", now=NOW)
    assert run.code == 0, run.out + run.err
    assert "refused" not in run.out
    assert files_under(ws.incoming) == {"IMG_1.JPG": photo}
    assert other in files_under(ws.target("nas")).values()
    assert ws.run("plan", "--detailed-exitcode", now=NOW).code == 0


def test_nothing_is_written_through_a_library_folder_linked_into_a_target(
    tmp_path: Path,
) -> None:
    """A person links a library folder to another disk to make room, and the
    folder happens to be the NAS target's own. The walk never follows the
    link; nor may a write: an encode would replace the NAS's original with
    the library's compressed copy."""
    tiers = (
        '[[policy.tiers]]\nname = "fresh"\nmax_age_days = 365\nkeep = "original"\n'
        '[[policy.tiers]]\nname = "older"\njpeg_quality = 75\n'
    )
    ws = make_workspace(tmp_path, extra=tiers, removal=False)  # the card keeps it
    captured = NOW - timedelta(days=200)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", captured, seed=7, size=256).read_bytes()
    assert ws.run("apply", "--yes", now=NOW).code == 0
    (lib,) = ws.library.rglob("IMG_1.JPG")
    (nas_copy,) = ws.target("nas").rglob("IMG_1.JPG")
    folder = lib.parent.relative_to(ws.library)
    assert nas_copy.parent.relative_to(ws.target("nas")) == folder
    moved = tmp_path / "moved-away"
    os.rename(lib.parent, moved)
    os.symlink(nas_copy.parent, lib.parent)

    later = NOW + timedelta(days=400)  # aged into the compressed tier
    run = ws.run("apply", "--yes", now=later)
    assert nas_copy.read_bytes() == photo, run.out
    assert f"library/{folder} is a symbolic link: nothing is read or written" in run.out, run.out
    assert (moved / "IMG_1.JPG").read_bytes() == photo


def test_a_copy_swapped_for_a_link_to_the_same_bytes_is_no_copy(tmp_path: Path) -> None:
    """The gate reads each copy now; a copy replaced by a link (to the very
    bytes, held somewhere no target is) is not on the target any more."""
    photo = make_jpeg(tmp_path / "elsewhere/IMG_1.JPG", OLD).read_bytes()
    sha = sha256_file(tmp_path / "elsewhere/IMG_1.JPG")
    stores, copies = _nas_and_usb(tmp_path / "nas", tmp_path / "usb", "2024/IMG_1.JPG", photo)
    assert check_removal([("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies) == [sha]
    (tmp_path / "usb/2024/IMG_1.JPG").unlink()
    (tmp_path / "usb/2024/IMG_1.JPG").symlink_to(tmp_path / "elsewhere/IMG_1.JPG")
    with pytest.raises(
        GateRefused, match=r"^IMG_1\.JPG: 1 of 2 verified copies now \(nas\); kept$"
    ):
        check_removal([("IMG_1.JPG", sha)], need=2, stores=stores, copies=copies)
