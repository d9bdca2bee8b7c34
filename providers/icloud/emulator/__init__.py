"""An iCloud Photos emulator that the real, unmodified pyicloud client talks to.

It serves the protocol subset pyicloud uses (sign-in with SRP-6a and SMS
two-factor, the setup service, CloudKit queries, counts, lookups, modifies,
zone changes, and content downloads with Range) from an in-memory account, on
127.0.0.1 only. Tests, end-to-end runs and ``make demo`` use it through
``providers.icloud.emulator.testing.running_emulator``; a person can run it
with ``python -m providers.icloud.emulator``.
"""

from __future__ import annotations

from providers.icloud.emulator.faults import Fault
from providers.icloud.emulator.seed import add_folder, generate_library
from providers.icloud.emulator.server import EmulatorServer
from providers.icloud.emulator.store import Account, EmulatedAsset

__all__ = [
    "Account",
    "EmulatedAsset",
    "EmulatorServer",
    "Fault",
    "add_folder",
    "generate_library",
]
