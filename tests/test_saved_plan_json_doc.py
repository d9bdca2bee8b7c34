"""README's ``--json`` plan format names every action kind ``--json`` and
``--out`` write, each with every field of its own, and the fields of an
entry of a removal's ``files``: a script reading the JSON can know them."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from reconciler.model import ACTION_TYPES, MediaFile

README = Path(__file__).resolve().parents[1] / "README.md"
COMMON = {"id", "subject", "reason", "depends_on", "detail"}


def _format_section() -> str:
    text = README.read_text()
    return text.split("### `--json` plan format", 1)[1].split("\n## ", 1)[0]


def test_readme_names_every_field_every_action_has() -> None:
    every = _format_section().split("plus its own fields:", 1)[0]
    assert [f for f in sorted(COMMON) if f"`{f}`" not in every] == []


def test_readme_names_every_action_kind_with_its_own_fields() -> None:
    prose = _format_section().split("plus its own fields:", 1)[1]
    missing = {}
    for cls in ACTION_TYPES:
        own = [f.name for f in attrs.fields(cls) if f.name not in COMMON]
        described = re.search(rf"`{re.escape(cls.kind)}`\s+\(([^)]*)\)", prose)
        if described is None:
            missing[cls.kind] = own
            continue
        undocumented = [f for f in own if f"`{f}`" not in described.group(1)]
        if undocumented:
            missing[cls.kind] = undocumented
    assert missing == {}, (
        f"action kinds/fields --json writes that README does not describe: {missing}"
    )


def test_readme_names_every_field_of_a_removals_file() -> None:
    prose = _format_section().split("Each entry of a removal's `files`", 1)[1]
    prose = prose.split("A change that breaks readers", 1)[0]
    assert [f for f in MediaFile._fields if f"`{f}`" not in prose] == []
