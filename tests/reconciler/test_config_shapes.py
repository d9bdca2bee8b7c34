"""A value of the wrong shape is said in the file's words (a table, a list
of tables), never in Python's (``'str' object has no attribute 'keys'``,
``expected Removal``); a file saved "UTF-8 with BOM" is read as it shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import config
from reconciler.errors import ConfigError

HEAD = '[library]\npath = "lib"\n[state]\ndir = "st"\n'


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            # the commonest slip: one pair of brackets where a list of tables needs two
            HEAD + '[policy.tiers]\nname = "all"\nkeep = "original"\n',
            [
                "policy.tiers: expected a list of tables, got a table; write each tier as "
                "[[policy.tiers]] (two pairs of brackets) with its keys below"
            ],
        ),
        (
            "guards = []\n" + HEAD,
            [
                "guards: expected a table, got an empty list; write [guards] on a line of its own, "
                "its keys below"
            ],
        ),
        (
            HEAD + "[policy]\nremoval = true\n",
            [
                "policy.removal: expected a table, got true; write [policy.removal] on a line of "
                "its own, its keys below"
            ],
        ),
        (
            'log = "x"\n' + HEAD,
            ["log: expected a table, got 'x'; write [log] on a line of its own, its keys below"],
        ),
        (HEAD + "[policy]\ntiers = [3]\n", ["policy.tiers[0]: expected a table, got 3"]),
        (
            "targets = []\n" + HEAD,
            ["targets: expected a table; write [targets] on a line of its own, its keys below"],
        ),
    ],
    ids=[
        "tiers-one-pair-of-brackets",
        "guards-list",
        "removal-bool",
        "log-str",
        "tier-int",
        "targets-list",
    ],
)
def test_a_wrong_shape_is_said_plainly(tmp_path: Path, text: str, said: list[str]) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.problems == tuple(f"{path}: {line}" for line in said)


def test_a_byte_order_mark_is_no_part_of_the_text(tmp_path: Path) -> None:
    """Notepad's "UTF-8 with BOM": tomllib refuses the invisible mark at
    line 1, column 1, where the editor shows nothing wrong."""
    path = tmp_path / "d.toml"
    path.write_bytes(b"\xef\xbb\xbf" + HEAD.encode())
    assert config.load(path).library_path == tmp_path / "lib"
    path.write_bytes(HEAD.encode() + b"\xef\xbb\xbf")  # elsewhere it is a character: refused
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.problems[0].startswith(f"{path}: not valid TOML:")


@pytest.mark.parametrize(
    ("kind", "got"), [("[]", "an empty list"), ("{}", "a table"), ('["folder"]', "a list")]
)
def test_a_kind_of_another_shape_is_named_plainly(tmp_path: Path, kind: str, got: str) -> None:
    """A list or a table is no kind: it gave 'sources.card: expected
    reconciler' (a Python type's name cut short)."""
    path = tmp_path / "d.toml"
    path.write_text(HEAD + f'[sources.card]\nkind = {kind}\npath = "card"\n')
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.problems == (
        f"{path}: sources.card.kind: expected one of folder, icloud, got {got}",
    )
