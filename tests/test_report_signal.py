"""A signal that stops ``reconcile report`` while matplotlib draws its plots.

README (Exit codes): 130 / 143 / 129, "stopped by SIGINT / SIGTERM / SIGHUP
(apply and plan; status and report too), with one error: line". The signal
here arrives while matplotlib's Agg renderer (C++) converts a clip box,
which it does by calling back into Python (``BboxBase.__array__``): the
moment is pinned by raising the signal from that callback; the handler is
the CLI's own, the renderer matplotlib's. Seen without the pin too: a
``kill -TERM`` at a random moment of a real ``reconcile report`` process
over a long history ended "error: internal error (ValueError: Invalid
bounding box); this is a bug", exit 1, or (the C++ dropping the raise)
exit 0 with the report written. The handler now only notes the signal
while the plots are drawn (``Interrupts.deferred``); it stops the report
between plots.
"""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest
from matplotlib.transforms import BboxBase

from tests.helpers import make_jpeg, make_workspace


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_while_the_plots_are_drawn_exits_128_plus_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    ws = make_workspace(tmp_path / "ws", removal=False)
    make_jpeg(ws.incoming / "IMG_1.JPG", datetime(2024, 6, 1, 12), seed=1)
    assert ws.run("plan").code == 0
    assert ws.run("apply", "--yes").code == 0
    page = tmp_path / "report.html"
    fired = []
    original = BboxBase.__array__

    def arriving(self: BboxBase, *args: object, **kwargs: object) -> object:
        # asked by the C++ renderer itself (its caller: draw_path)
        if not fired and sys._getframe(1).f_code.co_name == "draw_path":
            fired.append(True)
            signal.raise_signal(sig)  # the signal comes now
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BboxBase, "__array__", arriving)
    r = ws.run("report", str(page))
    assert fired
    assert (r.code, r.err) == (
        128 + sig,
        "error: interrupted; what was done is kept, run again to continue\n",
    )
    assert not page.exists()  # stopped before it was written
