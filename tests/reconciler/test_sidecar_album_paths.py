"""An album's path keeps its folder levels apart from a "/" (or "\\") in a name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler import sidecar

NAMES = st.text(alphabet=st.sampled_from("ab /\\|"), max_size=6)


@given(st.lists(NAMES, min_size=1, max_size=4))
def test_a_path_gives_back_its_levels(levels: list[str]) -> None:
    assert sidecar.album_levels(sidecar.album_path(levels)) == tuple(levels)


def test_names_without_a_slash_or_backslash_read_as_before() -> None:
    assert sidecar.album_path(["Trips", "Chile"]) == "Trips/Chile"
    assert sidecar.album_path(["Ski 2019/20"]) == "Ski 2019\\/20"
    assert sidecar.album_levels("Trips/Chile") == ("Trips", "Chile")
