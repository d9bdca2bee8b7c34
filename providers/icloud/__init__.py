"""iCloud Photos: the source adapter over pyicloud, and its emulator.

- ``source.ICloudSource`` — the ``providers.base.Source`` the core uses.
- ``session.login_interactive`` / ``session.session_age`` — for ``reconcile login icloud``.
- ``emulator`` — a local iCloud that the unmodified pyicloud client talks to.
"""
