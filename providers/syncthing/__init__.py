"""The Pixel phone as a backup target, reached through Syncthing on loopback or LAN.

``SyncthingTarget`` is the Store; ``SyncthingClient`` the typed REST client;
``SyncthingPair`` starts a loopback pair of real instances for tests and the demo.
"""

from __future__ import annotations

from providers.base import Confirmation
from providers.syncthing.client import (
    SyncthingAuthError,
    SyncthingClient,
    SyncthingUnreachableError,
    UnknownDeviceError,
    UnknownFolderError,
)
from providers.syncthing.pair import SyncthingInstance, SyncthingPair
from providers.syncthing.target import SyncthingStatus, SyncthingTarget

__all__ = [
    "Confirmation",
    "SyncthingAuthError",
    "SyncthingClient",
    "SyncthingInstance",
    "SyncthingPair",
    "SyncthingStatus",
    "SyncthingTarget",
    "SyncthingUnreachableError",
    "UnknownDeviceError",
    "UnknownFolderError",
]
