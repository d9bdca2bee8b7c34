"""Helpers for the import-legacy tests: other bytes of the same length, and hashes."""

from __future__ import annotations

import hashlib

from tests.test_import_legacy import (  # noqa: F401  (used by the tests here)
    NOW,
    OLD,
    _archived,
    _seed_one,
    planned,
    seed_media_db,
)


def flipped(data: bytes, mask: int = 0x5A) -> bytes:
    """Other bytes of the same length (a reused IMG_ number)."""
    out = bytearray(data)
    for i in range(len(out) // 2, len(out) // 2 + 64):
        out[i] ^= mask
    return bytes(out)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
