"""import-legacy fixtures: the emulator account of two photos (tests/test_import_legacy.py)."""

from tests.test_import_legacy import account  # noqa: F401
