"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``, and a RAM-backed
temporary directory for tests that make thousands of small worlds.

``dev`` (the default): quick, for running tests while working. ``ci``: what
``make test`` selects, the safety and convergence property at depth (at
least 2,000 generated worlds; the whole suite stays well under 15 minutes).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("dev", max_examples=40)
settings.register_profile("ci", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="module")
def ram_tempdir() -> Iterator[None]:
    """``tempfile`` on /dev/shm where there is one: each generated world
    fsyncs its files and its SQLite journal, which on a disk costs more
    than the whole property does."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield
        return
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(dir=shm, prefix="reconcile-tests-") as tmp:
        tempfile.tempdir = tmp
        try:
            yield
        finally:
            tempfile.tempdir = saved
