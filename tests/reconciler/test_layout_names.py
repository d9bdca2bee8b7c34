"""Names every disk a backup lands on can hold (exFAT, SMB, a phone), and
names as those disks compare them (``layout.safe_name``, ``name_key``)."""

from __future__ import annotations

import unicodedata

import pytest

from reconciler.layout import name_key, safe_name


@pytest.mark.parametrize(
    ("given", "held"),
    [
        ("Screenshot 12:00:00.png", "Screenshot 12_00_00.png"),
        ('a<b>c|d?e*f"g\\h.jpg', "a_b_c_d_e_f_g_h.jpg"),
        ("ends in a dot.jpg.", "ends in a dot.jpg"),
        ("ends in dots and spaces. . ", "ends in dots and spaces"),
        ("CON.jpg", "_CON.jpg"),
        ("com1", "_com1"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("CONSOLE.jpg", "CONSOLE.jpg"),
        ("...", "unnamed"),
        ("IMG_0001.HEIC", "IMG_0001.HEIC"),
    ],
)
def test_a_name_is_one_every_backup_disk_holds(given: str, held: str) -> None:
    assert safe_name(given) == held


def test_a_long_name_cut_to_fit_never_ends_in_a_dot() -> None:
    name = safe_name("a" * 150 + "." * 100 + ".jpg")
    assert len(name.encode()) <= 200
    assert name.endswith(".jpg") and not name[: -len(".jpg")].endswith(".")


def test_names_alike_but_for_case_or_unicode_form_share_a_key() -> None:
    composed = unicodedata.normalize("NFC", "Café.JPG")
    decomposed = unicodedata.normalize("NFD", "café.jpg")
    assert composed != decomposed
    assert name_key(composed) == name_key(decomposed)
    assert name_key("IMG_1.JPG") != name_key("IMG_2.JPG")
