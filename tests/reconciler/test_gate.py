"""The removal gate on its own: what counts as a verified copy, now."""

from __future__ import annotations

import pytest

from providers.fake import FakeStore, sha256_bytes
from reconciler.gate import GateRefused, check_removal
from reconciler.model import FileCopy

PHOTO = b"the photo" * 100
SHA = sha256_bytes(PHOTO)


def stores_holding(*ids: str) -> tuple[dict[str, FakeStore], dict[str, dict[str, FileCopy]]]:
    stores = {i: FakeStore(i) for i in ("nas", "phone", "usb")}
    copies: dict[str, dict[str, FileCopy]] = {}
    for i in ids:
        stores[i].files["p.jpg"] = PHOTO
        copies[i] = {
            SHA: FileCopy(store_id=i, path="p.jpg", size=len(PHOTO), mtime_ns=0, sha256=SHA)
        }
    return stores, copies


def test_enough_verified_copies_pass() -> None:
    stores, copies = stores_holding("nas", "phone")
    assert check_removal([("p.jpg", SHA)], need=2, stores=stores, copies=copies) == [SHA]


@pytest.mark.parametrize(
    ("damage", "message", "unavailable"),
    [
        ("corrupt", "p.jpg: 1 of 2 verified copies now (phone); kept", False),
        ("offline", "p.jpg: 1 of 2 verified copies now (phone); unavailable now: nas; kept", True),
        ("deleted", "p.jpg: 1 of 2 verified copies now (phone); kept", False),
    ],
)
def test_a_copy_that_went_bad_since_observation_does_not_count(
    damage: str, message: str, unavailable: bool
) -> None:
    stores, copies = stores_holding("nas", "phone")
    if damage == "corrupt":
        stores["nas"].corrupt("p.jpg")
    elif damage == "offline":
        stores["nas"].available = False
    else:
        del stores["nas"].files["p.jpg"]
    with pytest.raises(GateRefused) as e:
        check_removal([("p.jpg", SHA)], need=2, stores=stores, copies=copies)
    assert str(e.value) == message
    # Only a store out of reach is a matter for the next run; a bad copy is refused.
    assert e.value.unavailable is unavailable


def test_a_file_never_verified_is_refused_and_every_file_must_pass() -> None:
    stores, copies = stores_holding("nas", "phone")
    with pytest.raises(GateRefused, match=r"^IMG\.MOV: never downloaded and verified; kept$"):
        check_removal([("p.jpg", SHA), ("IMG.MOV", None)], need=2, stores=stores, copies=copies)
    other = sha256_bytes(b"the live video")
    with pytest.raises(GateRefused, match=r"^IMG\.MOV: 0 of 2 verified copies now \(none\); kept$"):
        check_removal([("p.jpg", SHA), ("IMG.MOV", other)], need=2, stores=stores, copies=copies)
