"""One phone is one backup: its folders group by the phone, in the gate and
in every count (``reconciler.independence``)."""

from __future__ import annotations

import pytest

from providers.fake import FakeStore, sha256_bytes
from reconciler.gate import GateRefused, check_removal
from reconciler.independence import backup_groups, count_backups, disk_problems, phones_of
from reconciler.model import FileCopy

PHOTO = b"the photo" * 100
SHA = sha256_bytes(PHOTO)
PIXEL = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"


class _Phone:
    """A phone target's configuration, as far as grouping reads it."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id


class _Disk:
    path = "/mnt/nas"


def _held(*ids: str) -> tuple[dict[str, FakeStore], dict[str, dict[str, FileCopy]]]:
    stores = {i: FakeStore(i) for i in ids}
    copies = {}
    for i in ids:
        stores[i].files["p.jpg"] = PHOTO
        copies[i] = {
            SHA: FileCopy(store_id=i, path="p.jpg", size=len(PHOTO), mtime_ns=0, sha256=SHA)
        }
    return stores, copies


def test_two_folders_of_one_phone_are_one_backup_however_its_id_is_written() -> None:
    phones = phones_of(
        {"phone": _Phone(PIXEL), "phone2": _Phone(PIXEL.lower().replace("-", "")), "nas": _Disk()}
    )
    assert set(phones) == {"phone", "phone2"}
    groups = backup_groups(
        {"phone": None, "phone2": None, "nas": 7}, library=1, same_disk_ok=(), phones=phones
    )
    assert count_backups(["phone", "phone2"], groups) == 1
    assert count_backups(["phone", "phone2", "nas"], groups) == 2
    assert disk_problems(groups) == {
        "phone": "on the same phone as phone2: together they count as one backup "
        "(a lost or reset phone loses every folder on it)",
        "phone2": "on the same phone as phone: together they count as one backup "
        "(a lost or reset phone loses every folder on it)",
    }


def test_two_phones_are_two_backups() -> None:
    other = PIXEL.replace("M", "N")
    phones = phones_of({"phone": _Phone(PIXEL), "tablet": _Phone(other)})
    groups = backup_groups(
        {"phone": None, "tablet": None}, library=1, same_disk_ok=(), phones=phones
    )
    assert count_backups(["phone", "tablet"], groups) == 2
    assert disk_problems(groups) == {}


def test_the_gate_counts_two_folders_of_one_phone_once() -> None:
    stores, copies = _held("phone", "phone2")
    phones = phones_of({"phone": _Phone(PIXEL), "phone2": _Phone(PIXEL)})
    groups = backup_groups(
        {"phone": None, "phone2": None}, library=1, same_disk_ok=(), phones=phones
    )
    with pytest.raises(GateRefused) as e:
        check_removal([("p.jpg", SHA)], need=2, stores=stores, copies=copies, groups=groups)
    assert str(e.value) == (
        "p.jpg: 1 of 2 verified copies now (phone, phone2); copies on one phone count once; kept"
    )
    assert not e.value.unavailable


def test_trusted_deliveries_of_one_phone_count_once() -> None:
    stores, copies = _held("nas")
    phones = phones_of({"gp1": _Phone(PIXEL), "gp2": _Phone(PIXEL)})
    groups = backup_groups(
        {"nas": 7, "gp1": None, "gp2": None}, library=1, same_disk_ok=(), phones=phones
    )
    trusted = {"gp1": {SHA}, "gp2": {SHA}}
    with pytest.raises(GateRefused) as e:
        check_removal(
            [("p.jpg", SHA)], need=3, stores=stores, copies=copies, groups=groups, trusted=trusted
        )
    assert str(e.value) == (
        "p.jpg: 2 of 3 verified copies now (nas, gp1 (trusted delivery), gp2 (trusted delivery)); "
        "copies on one phone count once; kept"
    )
    # The NAS and one Google Photos are two backups.
    got = check_removal(
        [("p.jpg", SHA)], need=2, stores=stores, copies=copies, groups=groups, trusted=trusted
    )
    assert got == [SHA]
