"""Files a person names for the tool to write (a saved plan, the report,
the metrics file) never land in a source, the library, a target, or over
the state directory's own files. Before, `plan --out incoming/IMG_9.JPG`
replaced a photo not yet archived, `report nas/…/IMG_1.JPG` a verified
backup, `plan --out state/state.db` the state itself, and a metrics file
configured inside a source overwrote a photo on every plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import KEEP_ORIGINALS, files_under, make_jpeg, make_workspace

OLD = datetime(2020, 1, 2, 12, tzinfo=UTC)


def test_a_saved_plan_or_report_never_replaces_a_photo_a_backup_or_the_state(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    unarchived = ws.incoming / "IMG_9.JPG"
    unarchived.write_bytes(photo[::-1])
    assert ws.run("apply", "--yes").code == 0
    (backup,) = ws.target("nas").rglob("IMG_1.JPG")
    (tmp_path / "link-to-usb").symlink_to(ws.target("usb"))
    before = {p: p.read_bytes() for p in (unarchived, backup)}
    attempts = [
        ("plan", "--out", str(unarchived), "sources.incoming.path"),
        ("report", str(backup), "targets.nas.path"),
        ("plan", "--out", str(tmp_path / "link-to-usb/plan.json"), "targets.usb.path"),
        ("plan", "--out", str(ws.library / "plan.json"), "library.path"),
        ("plan", "--out", str(tmp_path / "state/state.db"), "state.dir (its own files)"),
        ("report", str(tmp_path / "state/backups/r.html"), "state.dir (its own files)"),
    ]
    for *args, inside in attempts:
        r = ws.run(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert f"inside {inside}, whose files it could overwrite" in r.err, (args, r.err)
    assert {p: p.read_bytes() for p in before} == before
    assert not (ws.target("usb") / "plan.json").exists()
    assert ws.run("plan", "--detailed-exitcode").code == 0  # the state is whole
    # beside the places, and in the state directory's free names: written
    for out in (tmp_path / "plan.json", tmp_path / "state/saved-plan.json"):
        assert ws.run("plan", "--out", str(out)).code == 0
        assert out.read_text().startswith("{")


def test_a_metrics_file_inside_a_place_is_refused_by_the_configuration(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    photo = make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1).read_bytes()
    ws.config.write_text(ws.config.read_text() + '\n[log]\nmetrics_file = "incoming/IMG_1.JPG"\n')
    for command in ("validate", "plan"):
        r = ws.run(command)
        assert r.code == 1, r.out + r.err
        assert "log.metrics_file (" in r.err and "inside sources.incoming.path" in r.err
    assert files_under(ws.incoming) == {"IMG_1.JPG": photo}


def test_a_saved_plan_or_report_never_replaces_the_configuration(tmp_path: Path) -> None:
    """`plan --out desired_state.toml` replaced the configuration with the
    plan's JSON, and every later command failed."""
    ws = make_workspace(tmp_path, removal=False, extra=KEEP_ORIGINALS)
    make_jpeg(ws.incoming / "IMG_1.JPG", OLD, seed=1)
    before = ws.config.read_text()
    (tmp_path / "link-to-config").symlink_to(ws.config)
    for args in (
        ("plan", "--out", str(ws.config)),
        ("plan", "--out", str(tmp_path / "link-to-config")),
        ("report", str(ws.config)),
    ):
        r = ws.run(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert "that is the configuration file; write it elsewhere" in r.err, (args, r.err)
    assert ws.config.read_text() == before
    assert ws.run("plan", "--out", str(tmp_path / "plan.json")).code == 0
