"""Imported only by the forkserver process (a preload module, see apply.py):
the forkserver dies with the run that started it (``reconciler.lifeline``).

Importing it anywhere else would tie that process to its parent's life, so
nothing else imports it.
"""

from __future__ import annotations

from reconciler.lifeline import die_with_parent

die_with_parent()
