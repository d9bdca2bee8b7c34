"""desired_state.toml parsing: every problem at once, with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import config
from reconciler.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_example_at_the_repo_root_is_valid() -> None:
    desired = config.load(REPO / "desired_state.toml")
    assert desired.policy.copies == 2
    assert [t.name for t in desired.policy.tiers] == ["recent", "older", "archive"]
    assert desired.digest


def test_every_error_is_listed_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "desired_state.toml"
    path.write_text(
        """
        [library]
        [state]
        dir = "s"
        [sources.card]
        kind = "floppy"
        [targets.nas]
        kind = "filesystem"
        path = 3
        colour = "blue"
        [policy]
        copies = "two"
        [policy.removal]
        max_bytes_per_run = "lots"
        [unknown]
        """
    )
    with pytest.raises(ConfigError) as e:
        config.load(path)
    name = str(path)
    assert e.value.problems == (
        f"{name}: library.path: required",
        f"{name}: sources.card.kind: expected one of folder, icloud, got 'floppy'",
        f"{name}: targets.nas.path: expected a string, got 3",
        f"{name}: targets.nas.colour: unknown key",
        f"{name}: policy.copies: expected an integer, got 'two'",
        f"{name}: policy.removal.max_bytes_per_run: expected a size such as 5000000 or "
        "\"5 GB\", got 'lots'",
        f"{name}: unknown: unknown key",
    )


def test_semantic_checks_are_collected_too(tmp_path: Path) -> None:
    raw = {
        "library": {"path": "l"},
        "state": {"dir": "s"},
        "targets": {"nas": {"kind": "filesystem", "path": "n"}},
        "policy": {
            "copies": 2,
            "removal": {"enabled": True},
            "tiers": [
                {"name": "a", "max_age_days": 100},
                {"name": "b", "max_age_days": 50, "jpeg_quality": 120},
                {"name": "c d"},
            ],
            "heic_preset": "warp",
        },
    }
    with pytest.raises(ConfigError) as e:
        config.parse(raw, name="d.toml", base=tmp_path)
    assert e.value.problems == (
        "d.toml: policy.copies: 2 copies are required before removal but only 1 backup "
        "target(s) are configured",
        "d.toml: policy.tiers[1].max_age_days: tiers must be in increasing age order",
        "d.toml: policy.tiers[1].jpeg_quality: must be between 1 and 100",
        "d.toml: policy.tiers[2].name: use up to 64 letters, digits, '.', '-' and '_' "
        "(it is written into encoded files)",
        "d.toml: policy.heic_preset: expected one of ultrafast, superfast, veryfast, faster, "
        "fast, medium, slow, slower, veryslow, placebo",
    )


def test_sizes_accept_units_and_paths_resolve_against_the_file(tmp_path: Path) -> None:
    raw = {
        "library": {"path": "lib"},
        "state": {"dir": "~/st"},
        "policy": {"removal": {"max_bytes_per_run": "1.5 GB"}},
    }
    desired = config.parse(raw, name="d.toml", base=tmp_path)
    assert desired.policy.removal.max_bytes_per_run == 1_500_000_000
    assert desired.library_path == tmp_path / "lib"
    assert desired.state_dir == Path.home() / "st"


def test_not_toml_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("[library\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith(f"{path}: not valid TOML:")


@pytest.mark.parametrize("streams", [0, 65])
def test_download_streams_are_bounded(tmp_path: Path, streams: int) -> None:
    raw = {
        "library": {"path": "l"},
        "state": {"dir": "s"},
        "apply": {"download_streams": streams},
    }
    with pytest.raises(ConfigError) as e:
        config.parse(raw, name="d.toml", base=tmp_path)
    assert e.value.problems == ("d.toml: apply.download_streams: must be from 1 to 64",)
    raw["apply"] = {"download_streams": 64}
    assert config.parse(raw, name="d.toml", base=tmp_path).apply.download_streams == 64


def test_full_listing_every_days_is_validated(tmp_path: Path) -> None:
    raw = {
        "library": {"path": "l"},
        "state": {"dir": "s"},
        "sources": {"icloud": {"kind": "icloud", "full_listing_every_days": -1}},
    }
    with pytest.raises(ConfigError) as e:
        config.parse(raw, name="d.toml", base=tmp_path)
    assert e.value.problems == (
        "d.toml: sources.icloud.full_listing_every_days: must not be negative "
        "(0: a full listing every run)",
    )
    raw["sources"] = {"icloud": {"kind": "icloud"}}
    source = config.parse(raw, name="d.toml", base=tmp_path).sources["icloud"]
    assert isinstance(source, config.ICloudSource) and source.full_listing_every_days == 7


def test_day_counts_are_at_most_a_century(tmp_path: Path) -> None:
    """A person's "forever" (a million days) is refused with the key named:
    reckoned from now, it fell past the year 9999 and stopped every run."""
    raw = {
        "library": {"path": "l"},
        "state": {"dir": "s"},
        "sources": {"card": {"kind": "folder", "path": "c", "max_age_days": 800_000}},
        "policy": {
            "removal": {"keep_recent_days": 10**12},
            "tiers": [{"name": "all", "max_age_days": 36_501, "keep": "original"}],
        },
        "guards": {"reverify_after_days": 10**9},
    }
    with pytest.raises(ConfigError) as e:
        config.parse(raw, name="d.toml", base=tmp_path)
    assert e.value.problems == (
        "d.toml: sources.card.max_age_days: at most 36500 (a hundred years); 0: all",
        "d.toml: policy.removal.keep_recent_days: at most 36500 (a hundred years)",
        "d.toml: guards.reverify_after_days: at most 36500 (a hundred years); 0: never",
        "d.toml: policy.tiers[0].max_age_days: at most 36500 (a hundred years); "
        "leave it out: any age",
    )
    raw["sources"]["card"]["max_age_days"] = 36_500  # type: ignore[index]
    raw["policy"] = {"removal": {"keep_recent_days": 36_500}}
    raw["guards"] = {"reverify_after_days": 36_500}
    assert config.parse(raw, name="d.toml", base=tmp_path).guards.reverify_after_days == 36_500
