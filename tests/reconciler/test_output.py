"""Output that scales: plans and apply results grouped by kind and reason,
the first few of each group, every line with --detail (exact text)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler import render
from reconciler.apply import Outcome
from reconciler.model import CopyToLibrary, CopyToTarget, EncodeForTier, Note, Plan
from tests.helpers import make_jpeg, make_workspace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLD = datetime(2024, 9, 16, 8, 30, tzinfo=UTC)


def _plan(n: int) -> Plan:
    actions = []
    for i in range(n):
        sha = f"{i:064x}"
        common = dict(sha256=sha, name=f"IMG_{i}.JPG", size=1_500_000, captured_at=OLD)
        actions.append(
            CopyToLibrary(
                id=f"library:{sha}",
                subject=f"card:IMG_{i}.JPG",
                reason="not in the library",
                **common,  # type: ignore[arg-type]
            )
        )
        actions.append(
            CopyToTarget(
                id=f"copy:nas:{sha}",
                subject=f"card:IMG_{i}.JPG",
                reason="no verified copy on nas",
                target_id="nas",
                origin=None,
                **common,  # type: ignore[arg-type]
            )
        )
    actions.append(
        EncodeForTier(
            id="encode:x",
            subject="card:IMG_0.JPG",
            reason="tier old wants q75",
            sha256="0" * 64,
            origin=None,
            name="IMG_0.JPG",
            tier="old",
            quality=75,
            crf=None,
        )
    )
    notes = [
        Note(status="waiting", subject=f"card:IMG_{i}.JPG", reason="too young; kept in the source")
        for i in range(n)
    ] + [Note(status="unavailable", subject="target usb", reason="not mounted")]
    return Plan(actions=tuple(actions), notes=tuple(notes), created_at=NOW)


def test_plan_summary_groups_by_kind_and_reason_and_cuts_each_group() -> None:
    assert render.plan_text(_plan(7)) == (
        "reconcile will perform these actions:\n"
        "  + copy-to-library (7, 10.5 MB): not in the library\n"
        "      card:IMG_0.JPG\n"
        "      card:IMG_1.JPG\n"
        "      card:IMG_2.JPG\n"
        "      card:IMG_3.JPG\n"
        "      card:IMG_4.JPG\n"
        "      … and 2 more (--detail lists every one)\n"
        "  + copy-to-target[nas] (7, 10.5 MB): no verified copy on nas\n"
        "      card:IMG_0.JPG\n"
        "      card:IMG_1.JPG\n"
        "      card:IMG_2.JPG\n"
        "      card:IMG_3.JPG\n"
        "      card:IMG_4.JPG\n"
        "      … and 2 more (--detail lists every one)\n"
        "  ~ encode card:IMG_0.JPG: tier old wants q75\n"
        "\n"
        "Not done this run:\n"
        "  … waiting (7): too young; kept in the source\n"
        "      card:IMG_0.JPG\n"
        "      card:IMG_1.JPG\n"
        "      card:IMG_2.JPG\n"
        "      card:IMG_3.JPG\n"
        "      card:IMG_4.JPG\n"
        "      … and 2 more (--detail lists every one)\n"
        "  ! unavailable target usb: not mounted\n"
        "\n"
        "Plan: 7 to copy into the library, 7 to copy to targets, 1 to encode. "
        "(1 unavailable, 7 waiting)"
    )


def test_plan_summary_stays_short_for_a_large_library() -> None:
    text = render.plan_text(_plan(100_000))
    assert len(text.splitlines()) == len(render.plan_text(_plan(7)).splitlines()) == 28
    assert "      … and 99995 more (--detail lists every one)" in text


def test_plan_detail_prints_every_line() -> None:
    assert render.plan_text(_plan(2), detail=True) == (
        "reconcile will perform these actions:\n"
        "  + copy-to-library card:IMG_0.JPG: not in the library\n"
        "  + copy-to-target[nas] card:IMG_0.JPG: no verified copy on nas\n"
        "  + copy-to-library card:IMG_1.JPG: not in the library\n"
        "  + copy-to-target[nas] card:IMG_1.JPG: no verified copy on nas\n"
        "  ~ encode card:IMG_0.JPG: tier old wants q75\n"
        "\n"
        "Not done this run:\n"
        "  … waiting card:IMG_0.JPG: too young; kept in the source\n"
        "  … waiting card:IMG_1.JPG: too young; kept in the source\n"
        "  ! unavailable target usb: not mounted\n"
        "\n"
        "Plan: 2 to copy into the library, 2 to copy to targets, 1 to encode. "
        "(1 unavailable, 2 waiting)"
    )


def test_apply_outcomes_group_by_status_and_kind_with_bytes() -> None:
    plan = _plan(6)
    outcomes = [
        Outcome(
            action_id=a.id,
            kind=a.kind,
            subject=a.subject,
            status="failed" if a.id.endswith("5") else "changed",
            detail="disk full" if a.id.endswith("5") else "",
        )
        for a in plan.actions
        if a.kind == "copy-to-target"
    ]
    sizes = {a.id: render.size_of(a) for a in plan.actions}
    assert render.outcomes_text(outcomes, sizes) == (
        "  + changed copy-to-target (5, 7.5 MB)\n"
        "      card:IMG_0.JPG\n"
        "      card:IMG_1.JPG\n"
        "      card:IMG_2.JPG\n"
        "      card:IMG_3.JPG\n"
        "      card:IMG_4.JPG\n"
        "  x failed copy-to-target card:IMG_5.JPG: disk full"
    )


def test_cli_plan_and_apply_summary_and_detail(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False)
    ws.config.write_text(
        ws.config.read_text() + '\n[[policy.tiers]]\nname = "all"\nkeep = "original"\n'
    )
    for i in range(7):
        make_jpeg(ws.incoming / f"IMG_{i}.JPG", OLD, seed=i)
    size = sum(p.stat().st_size for p in ws.incoming.iterdir())
    total, twice = render.size_text(size), render.size_text(2 * size)
    first5 = "".join(f"      incoming:IMG_{i}.JPG\n" for i in range(5))
    more = "      … and 2 more (--detail lists every one)\n"
    r = ws.run("plan", now=NOW)
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "reconcile will perform these actions:\n"
        f"  + copy-to-library (7, {total}): not in the library\n{first5}{more}"
        f"  + copy-to-target[nas] (7, {total}): no verified copy on nas\n{first5}{more}"
        f"  + copy-to-target[usb] (7, {total}): no verified copy on usb\n{first5}{more}"
        "\n"
        "Plan: 7 to copy into the library, 14 to copy to targets.\n"
    )
    detail = ws.run("plan", "--detail", now=NOW).out
    assert detail == (
        "reconcile will perform these actions:\n"
        + "".join(
            f"  + copy-to-library incoming:IMG_{i}.JPG: not in the library\n" for i in range(7)
        )
        + "".join(
            f"  + copy-to-target[{t}] incoming:IMG_{i}.JPG: no verified copy on {t}\n"
            for i in range(7)
            for t in ("nas", "usb")
        )
        + "\nPlan: 7 to copy into the library, 14 to copy to targets.\n"
    )

    applied = ws.run("apply", "--yes", now=NOW)
    assert applied.code == 0, applied.err
    assert applied.out.endswith(
        f"  + changed copy-to-library (7, {total})\n"
        + "".join(
            f"      incoming:IMG_{i}.JPG: copied to 2024/09/16/IMG_{i}.JPG\n" for i in range(5)
        )
        + more
        + f"  + changed copy-to-target (14, {twice})\n"
        + "".join(
            f"      incoming:IMG_{i}.JPG: copied to {t}:2024/09/16/IMG_{i}.JPG\n"
            for i, t in [(0, "nas"), (0, "usb"), (1, "nas"), (1, "usb"), (2, "nas")]
        )
        + "      … and 9 more (--detail lists every one)\n"
        "\n"
        "Apply: 21 changed.\n"
    )
    # The log in the state directory keeps every outcome line.
    log = (tmp_path / "state" / "reconcile.log").read_text()
    assert log.count(" + changed copy-to-target incoming:IMG_6.JPG: copied to ") == 2


def test_same_named_remote_items_are_told_apart_by_date_and_short_id() -> None:
    from hashlib import sha256

    from reconciler.plan import plan
    from tests.reconciler.test_plan import desired, item, world

    later = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    items = (
        item("a1:m1", None, OLD, name="IMG_0002.JPG"),
        item("a2:m2", None, later, name="IMG_0002.JPG"),
        item("a3:m3", None, None, name="IMG_0002.JPG"),
        item("a4:m4", None, OLD, name="IMG_0003.JPG"),
    )
    p = plan(desired(), world(items, remote=True), NOW)

    def short(key: str) -> str:
        return sha256(key.encode()).hexdigest()[:8]

    downloads = [a.subject for a in p.actions if a.kind == "download"]
    assert downloads == [
        f"card:IMG_0002.JPG (2024-09-16, #{short('a1:m1')})",
        f"card:IMG_0002.JPG (2025-03-04, #{short('a2:m2')})",
        f"card:IMG_0002.JPG (date unknown, #{short('a3:m3')})",
        "card:IMG_0003.JPG",  # a name no other item has stays as it is
    ]
    # Every action and note of one item names it the same way.
    assert {a.subject for a in p.actions} == set(downloads)
    assert f"card:IMG_0002.JPG (date unknown, #{short('a3:m3')})" in {n.subject for n in p.notes}
    # download, two copies, removal: each line names the item unmistakably
    assert (
        render.plan_text(p, detail=True).count(f"IMG_0002.JPG (2024-09-16, #{short('a1:m1')})") == 4
    )
    members = render.plan_text(p).splitlines()[2:6]  # the download group
    assert len(set(members)) == 4
