"""Numbers in desired_state.toml that no run can use are refused by key,
before anything runs: nan and inf (nan passes every range check), sizes
past what SQLite holds, durations past a hundred years; and an empty
``-c ""`` is refused rather than taken for "not given"."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.helpers import make_workspace


def _refused(tmp_path: Path, replace: tuple[str, str] = ("", ""), extra: str = "") -> str:
    ws = make_workspace(tmp_path, extra=extra)
    if replace[0]:
        assert replace[0] in ws.config.read_text()
        ws.config.write_text(ws.config.read_text().replace(*replace))
    for command in ("validate", "plan"):
        r = ws.run(command)
        assert r.code == 1, (command, r.err)
    return r.err.replace(f"{ws.config}: ", "")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_log_size_that_is_not_finite_is_refused(tmp_path: Path, value: str) -> None:
    err = _refused(tmp_path, extra=f"[log]\nmax_file_size_mb = {value}\n")
    expected = "must be more than 0" if value == "-inf" else f"must be a finite number, not {value}"
    assert err == f"error: log.max_file_size_mb: {expected}\n"


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_backup_interval_that_is_not_finite_is_refused(tmp_path: Path, value: str) -> None:
    replace = ('dir = "state"', f'dir = "state"\nbackup_interval_hours = {value}')
    err = _refused(tmp_path, replace)
    assert err == f"error: state.backup_interval_hours: must be a finite number, not {value}\n"


def test_every_float_is_checked_wherever_it_is(tmp_path: Path) -> None:
    extra = "[apply]\nbackoff_base_s = nan\n[guards]\nmax_shrink_fraction = nan\n"
    err = _refused(tmp_path, extra=extra)
    assert err == (
        "error: guards.max_shrink_fraction: must be in (0, 1]\n"
        "error: apply.backoff_base_s: must be a finite number, not nan\n"
    )


def test_durations_past_a_century_are_refused(tmp_path: Path) -> None:
    replace = ('dir = "state"', 'dir = "state"\nbackup_interval_hours = 1e300')
    err = _refused(tmp_path, replace, extra="[apply]\nbackoff_base_s = 1e12\n")
    assert err == (
        "error: apply.backoff_base_s: at most 3153600000 (a hundred years)\n"
        "error: state.backup_interval_hours: at most 876000 (a hundred years)\n"
    )


def test_a_size_past_what_sqlite_holds_is_refused(tmp_path: Path) -> None:
    big = "9" * 400 + " GB"
    replace = ("keep_recent_days = 30", f'keep_recent_days = 30\nmax_bytes_per_run = "{big}"')
    err = _refused(tmp_path, replace)
    shown = f"{big[:20]}…{big[-10:]}"
    assert err == (
        "error: policy.removal.max_bytes_per_run: expected a size of at most "
        f"9223372036854775807 bytes, got '{shown}'\n"
    )


@pytest.mark.parametrize(("text", "size"), [("4.35 KB", 4350), ("1.5 GiB", 3 << 29), ("7", 7)])
def test_sizes_are_read_exactly(tmp_path: Path, text: str, size: int) -> None:
    from reconciler import config

    assert config._parse_size(text, config.ByteSize) == size


def test_an_empty_config_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cron's ``-c "$CONFIG"`` with CONFIG unset: never another library's file."""
    ws = make_workspace(tmp_path)
    monkeypatch.chdir(ws.root)  # a valid ./desired_state.toml is right here
    monkeypatch.setenv("RECONCILE_CONFIG", str(ws.config))
    for argv in (["-c", "", "validate"], ["plan", "-c", ""], ["-c", " ", "apply", "--yes"]):
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, stdout=out, stderr=err, stdin=io.StringIO())
        shown = argv[argv.index("-c") + 1]
        assert (code, out.getvalue()) == (1, ""), argv
        assert err.getvalue() == (
            f'error: -c "{shown}": an empty configuration path; '
            "pass -c FILE (is a variable unset?)\n"
        )


@pytest.mark.parametrize(
    ("replace", "extra", "said"),
    [
        (
            ("pace_seconds = 0", "pace_seconds = -1"),
            "",
            "policy.removal.pace_seconds: must not be negative (got -1)",
        ),
        (
            ("", ""),
            "[apply]\nbackoff_base_s = -0.5\n",
            "apply.backoff_base_s: must not be negative (got -0.5)",
        ),
        (("", ""), "[apply]\nretries = -5\n", "apply.retries: must not be negative"),
        (
            ("", ""),
            '[sources.ic]\nkind = "icloud"\nendpoint = "http://127.0.0.1:9"\ntimeout_s = 0\n',
            "sources.ic.timeout_s: must be more than 0 (got 0)",
        ),
    ],
)
def test_a_negative_wait_is_refused_before_any_run(
    tmp_path: Path, replace: tuple[str, str], extra: str, said: str
) -> None:
    """A pause of -1 s passed validate, then every apply removed one item and
    died on the sleep ("internal error … sleep length must be non-negative")."""
    assert said in _refused(tmp_path, replace=replace, extra=extra)


def test_a_choice_key_names_its_choices(tmp_path: Path) -> None:
    """Not cattrs' "unknown error (av1 not in literal typing.Literal[…])"."""
    err = _refused(tmp_path, replace=("[policy]\n", '[policy]\nvideo_codec = "av1"\n'))
    assert "policy.video_codec: expected one of libx264, libx265, got 'av1'" in err, err
    assert "typing" not in err
