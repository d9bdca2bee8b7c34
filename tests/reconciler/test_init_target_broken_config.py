"""init-target compares the folder with the configured places; with a
configuration file that does not read (a typo in an unrelated key) it
compared nothing and marked a source folder as a backup store, exit 0 and
no word. It now refuses until the configuration reads; with no
configuration file yet (the quick start marks the stores first) it marks."""

from __future__ import annotations

from pathlib import Path

from providers.filesystem import MARKER
from tests.helpers import make_workspace, run_cli


def test_a_configuration_that_does_not_read_stops_init_target(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    mark = ["-c", str(ws.config), "init-target", str(ws.incoming), "--id", "disk2"]
    assert run_cli(mark).code == 1  # a configured source: refused
    ws.config.write_text(ws.config.read_text() + "\n[guards]\nmax_shrink_fractoin = 0.4\n")
    r = run_cli(mark)
    assert r.code == 1, r.out + r.err
    assert "the configuration does not read" in r.err, r.err
    assert "max_shrink_fractoin" in r.err, r.err
    assert not (ws.incoming / MARKER).exists()


def test_with_no_configuration_yet_init_target_marks(tmp_path: Path) -> None:
    r = run_cli(
        [
            "-c",
            str(tmp_path / "none.toml"),
            "init-target",
            str(tmp_path / "nas"),
            "--id",
            "nas",
            "--create",
        ]
    )
    assert r.code == 0, r.out + r.err
    assert (tmp_path / "nas" / MARKER).exists()
