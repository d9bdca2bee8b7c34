"""The HTML report: one self-contained page with plots of the run history.

``page()`` turns the census of each run (reconciler/census's
``Census.to_json()``, as ``StateDB.census_history`` returns them) and the
last runs into one HTML document that needs nothing else: the plots are
made by matplotlib's Agg renderer and inlined as base64 PNG, the style is
inline, there is no script, and the page's own Content-Security-Policy
forbids any other load. A person opens it from a mail, a share or a USB
stick, offline, years later; nothing on it may reach the network.

Kept apart from the commands so the page is a function of its inputs
(history, runs, the moment it was made): tests feed it real runs' figures.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from reconciler import metrics, render
from reconciler.render import size_text
from reconciler.visible import escape_controls

if TYPE_CHECKING:  # a name only: the page is a function of what it is given
    from reconciler.census import Proof

#: A census as ``Census.to_json()`` gives it (reconciler/census).
CensusDoc = Mapping[str, Any]
#: One point of the history: when the run finished, and its census.
Point = tuple[str | datetime, CensusDoc]

#: Plots over time need two runs with figures: one point draws no line.
MIN_POINTS = 2

#: Item states from the bottom of the stack up, with their label and colour:
#: the good states at the bottom, what needs a person on top, where it shows.
ITEM_STATES: tuple[tuple[str, str, str], ...] = (
    ("removed", "off-loaded from its source", "#3f51b5"),
    ("archived_2plus", "archived on 2+ targets", "#2e7d32"),
    ("archived_1", "archived on 1 target", "#9ccc65"),
    ("waiting_phone", "waiting for a phone to confirm", "#4fc3f7"),
    ("library_only", "in the library, on no target", "#ffb300"),
    ("source_only", "in a source only", "#9e9e9e"),
    ("failed", "failed", "#d32f2f"),
)
#: The states in the order an item goes through them, for the table.
_PIPELINE = (
    "source_only",
    "library_only",
    "waiting_phone",
    "archived_1",
    "archived_2plus",
    "removed",
    "failed",
)
_LABELS = {key: label for key, label, _ in ITEM_STATES}
_TIER_COLOURS = ("#00838f", "#6a1b9a", "#ef6c00", "#558b2f", "#ad1457", "#4e342e")
_LIBRARY, _ICLOUD, _SAVED, _OFFLOADED = "#1565c0", "#8e24aa", "#00897b", "#3f51b5"


def page(
    *,
    history: Sequence[Point],
    runs: Sequence[Mapping[str, Any]],
    generated_at: datetime,
    state_path: str,
    proof: Proof | None = None,
    checkpoint: Callable[[], None] | None = None,
    running: bool | None = None,
    last_apply: Mapping[str, Any] | None = None,
) -> str:
    """The whole HTML document. ``history`` is oldest first; ``runs`` newest
    first (as ``StateDB.last_runs`` gives them). ``proof``: what may be said
    of the census now (``census.proof``, as ``status`` says it); without it
    the page says nothing of whether every item is archived. ``checkpoint``
    is called before each plot is drawn (a safe point to stop at: the
    CLI's signal handling, ``Interrupts.check``). ``running``: whether a
    live run holds the run lock now (``lock.held_now``; None: not known),
    which alone tells a run with no exit recorded under way from one
    killed, as ``status`` tells them (``render.with_liveness``).
    ``last_apply``: the database's last apply not declined
    (``StateDB.last_apply``), the headline's run as status's, also when more
    than the runs listed came after it."""
    runs = render.with_liveness(runs, running)
    points = [(_when(at), doc) for at, doc in history]
    # Plotted by the time each run finished, in that order: in the order
    # of the runs, a clock that went back (NTP stepping it, a reset at
    # boot) would draw the lines and areas folded back over themselves.
    # The census of now is still the last run's.
    plotted = sorted(points, key=lambda p: p[0])
    parts = [
        _HEAD,
        "<h1>reconcile report</h1>",
        f'<p class="meta">made {_esc(_utc(generated_at))} from {_esc(state_path)}</p>',
        _headline(runs, last_apply),
    ]
    parts.append("<h2>Over time</h2>")
    if len(points) < MIN_POINTS:
        parts.append(
            f'<p class="empty">Not enough runs yet to plot: the plots need at least '
            f"{MIN_POINTS} runs with figures, there {_were(len(points))}. Each plan and "
            "apply adds one; come back after the next.</p>"
        )
    else:
        for title, plot in (
            ("Items by state", _plot_items),
            ("Bytes saved by compression (by tier) and by off-loading", _plot_saved),
            ("Library size and iCloud usage", _plot_sizes),
            ("Library files by tier", _plot_tiers),
        ):
            if checkpoint is not None:
                checkpoint()
            parts.append(_figure(title, plot, plotted))
    parts.append("<h2>Now</h2>")
    if points:
        at, doc = points[-1]
        parts.append(f'<p class="meta">as the last run left it ({_esc(_utc(at))})</p>')
        parts.append(_census_tables(doc, proof))
    else:
        parts.append('<p class="empty">No figures yet: run <code>reconcile apply</code>.</p>')
    parts.append("<h2>Last runs</h2>")
    parts.append(_runs_table(runs))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write(path: Path, text: str) -> bool:
    """Replace ``path`` whole (temporary name in its folder, fsync, rename): a
    browser or a sync client never picks up half a report. As the metrics
    textfile is (``metrics.write_textfile``): under a lock beside it, so the
    temporary a killed writer left there is removed by the next. False when
    another writer held that lock all the while (nothing written)."""
    return metrics.write_textfile(path, text, wait=metrics.WAIT_SECONDS)


# ------------------------------------------------------------------ plots

#: Draws one figure's axes; says whether they are stacked (legend order).
Plot = Callable[[Figure, Sequence[tuple[datetime, CensusDoc]]], bool]


def _figure(title: str, plot: Plot, points: Sequence[tuple[datetime, CensusDoc]]) -> str:
    fig = Figure(figsize=(10.5, 3.2), dpi=100)
    FigureCanvasAgg(fig)  # the Agg renderer: no display, no GUI toolkit
    # Fixed margins, not a layout engine: every plot's axes then line up
    # under each other, whatever the width of its legend.
    fig.subplots_adjust(left=0.08, right=0.72, top=0.95, bottom=0.17)
    stacked = plot(fig, points)
    for ax in fig.axes:
        ax.xaxis_date(UTC)
        locator = AutoDateLocator(tz=UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
        ax.set_xlabel("run finished (UTC)", fontsize=9, color="#555555")
        ax.grid(True, color="#e6e6e6", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        handles, labels = ax.get_legend_handles_labels()
        if stacked:  # list the layers top first, as they are drawn
            handles, labels = handles[::-1], labels[::-1]
        ax.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f"<figure><figcaption>{_esc(title)}</figcaption>"
        f'<img alt="{_esc(title)}" src="data:image/png;base64,{data}"></figure>'
    )


def _plot_items(fig: Figure, points: Sequence[tuple[datetime, CensusDoc]]) -> bool:
    ax = fig.add_subplot()
    xs = _xs(points)
    shown = [s for s in ITEM_STATES if any(_int(d, "items", s[0]) for _, d in points)]
    if not shown:  # every count zero: an empty library still gets its axis
        shown = [ITEM_STATES[1]]
    ax.stackplot(
        xs,
        *[[_int(d, "items", key) for _, d in points] for key, _, _ in shown],
        labels=[label for _, label, _ in shown],
        colors=[colour for _, _, colour in shown],
        alpha=0.9,
    )
    ax.set_ylabel("items")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return True


def _plot_saved(fig: Figure, points: Sequence[tuple[datetime, CensusDoc]]) -> bool:
    ax = fig.add_subplot()
    xs = _xs(points)
    for key, label, colour in (
        ("saved_by_compression", "saved by compression (library)", _SAVED),
        ("offloaded", "off-loaded from sources", _OFFLOADED),
    ):
        ys = [_int(d, "bytes", key) for _, d in points]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=2, label=label, color=colour)
    # The compression line broken down by tier (runs recorded before the
    # census kept it have no breakdown: those points are left out).
    tiers = list(dict.fromkeys(t for _, d in points for t in d.get("saved_by_tier", {})))
    for i, tier in enumerate(tiers):
        kept = [(x, d) for x, (_, d) in zip(xs, points, strict=True) if "saved_by_tier" in d]
        ax.plot(
            [x for x, _ in kept],
            [int(d["saved_by_tier"].get(tier, 0)) for _, d in kept],
            linestyle="--",
            linewidth=1.2,
            label=f"… in tier {tier}",
            color=_TIER_COLOURS[i % len(_TIER_COLOURS)],
        )
    _bytes_axis(ax)
    return False


def _plot_sizes(fig: Figure, points: Sequence[tuple[datetime, CensusDoc]]) -> bool:
    ax = fig.add_subplot()
    xs = _xs(points)
    library = [_int(d, "bytes", "library") for _, d in points]
    icloud = [_int(d, "bytes", "icloud") for _, d in points]
    ax.plot(xs, library, marker="o", markersize=3, linewidth=2, label="library", color=_LIBRARY)
    icloud_label = "iCloud" if any(icloud) else "iCloud (nothing there)"
    ax.plot(xs, icloud, marker="o", markersize=3, linewidth=2, label=icloud_label, color=_ICLOUD)
    targets = sorted({t for _, d in points for t in d.get("targets", {})})
    for i, tid in enumerate(targets):
        ys = [_int(d.get("targets", {}), tid, "bytes") for _, d in points]
        colour = _TIER_COLOURS[i % len(_TIER_COLOURS)]
        ax.plot(xs, ys, linestyle="--", linewidth=1.2, label=f"target {tid}", color=colour)
    _bytes_axis(ax)
    return False


def _plot_tiers(fig: Figure, points: Sequence[tuple[datetime, CensusDoc]]) -> bool:
    ax = fig.add_subplot()
    xs = _xs(points)
    # In the order the census gives them (the configured order), newest first.
    tiers = list(dict.fromkeys(t for _, d in reversed(points) for t in d.get("tiers", {})))
    tiers = tiers or ["(no files yet)"]
    ax.stackplot(
        xs,
        *[[int(d.get("tiers", {}).get(t, 0)) for _, d in points] for t in tiers],
        labels=tiers,
        colors=[_TIER_COLOURS[i % len(_TIER_COLOURS)] for i in range(len(tiers))],
        alpha=0.85,
    )
    ax.set_ylabel("library files")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return True


def _xs(points: Sequence[tuple[datetime, CensusDoc]]) -> Any:
    """The runs' times as matplotlib's date numbers (days, UTC)."""
    return date2num([at for at, _ in points])


def _bytes_axis(ax: Any) -> None:
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: size_text(max(0, int(v)))))


# ----------------------------------------------------------------- tables


def _headline(runs: Sequence[Mapping[str, Any]], last_apply: Mapping[str, Any] | None) -> str:
    """What ``status`` says first: the last apply (the work), else the last
    run (``render.headline_run``); listed, as the runs table has it (with
    whether it is alive)."""
    r = render.headline_run(runs)
    if last_apply is not None and (r is None or r.get("command") != "apply"):
        r = next((x for x in runs if x["id"] == last_apply["id"]), last_apply)
    if r is None:
        return '<p class="headline">No runs yet: nothing has been recorded here.</p>'
    if r.get("status") == render.RUNNING:  # no exit yet: under way, or killed
        return (
            f'<p class="headline {_run_class(r)}">Last run: {_esc(r["command"])} '
            f"#{r['id']} {_esc(render.run_state(r))}, started {_esc(_utc(r.get('started_at')))}"
            "</p>"
        )
    code = r.get("exit_code")
    # The line that chose the exit code (a run with several problems said
    # each, that one first: ``commands.common.finish``).
    first = str(r.get("reason") or "").split("\n")[0]
    why = f": {_esc(first)}" if first else ""
    return (
        f'<p class="headline {_run_class(r)}">Last run: {_esc(r["command"])} '
        f"#{r['id']}, finished {_esc(_utc(r.get('finished_at')))}, "
        f"exit {'-' if code is None else code} ({_esc(r.get('status') or '?')}){why}</p>"
    )


def _census_tables(doc: CensusDoc, proof: Proof | None) -> str:
    saved_by_tier = doc.get("saved_by_tier", {})
    items = doc.get("items", {})
    rows = [(_LABELS[key], str(_int(doc, "items", key))) for key in _PIPELINE]
    rows.append(("total", str(sum(int(n) for n in items.values()))))
    out = ['<div class="cols">', _table("Items by state", ("state", "items"), rows)]
    money = doc.get("bytes", {})
    out.append(
        _table(
            "Bytes",
            ("what", "size"),
            [
                ("library", size_text(int(money.get("library", 0)))),
                ("iCloud usage", size_text(int(money.get("icloud", 0)))),
                ("saved by compression", size_text(int(money.get("saved_by_compression", 0)))),
                *[(f"… in tier {t}", size_text(int(n))) for t, n in saved_by_tier.items()],
                ("off-loaded from sources", size_text(int(money.get("offloaded", 0)))),
            ],
        )
    )
    out.append(
        _table(
            "Library files by tier",
            ("tier", "files"),
            [(t, str(n)) for t, n in doc.get("tiers", {}).items()] or [("none", "0")],
        )
    )
    waiting = doc.get("waiting_since", {})
    out.append(
        _table(
            "Targets",
            ("target", "files", "size", "waiting since"),
            [
                (
                    tid,
                    str(t.get("files", 0)),
                    size_text(int(t.get("bytes", 0))),
                    _utc(waiting.get(tid)) if waiting.get(tid) else None,
                )
                for tid, t in sorted(doc.get("targets", {}).items())
            ]
            or [("none", "0", "0 B", None)],
        )
    )
    out.append("</div>")
    oldest = doc.get("oldest_unarchived")
    if oldest:
        out.append(
            f"<p>Oldest item not yet archived: <b>{_esc(oldest.get('name'))}</b>, "
            f"captured {_esc(_utc(oldest.get('captured_at')))}</p>"
        )
    elif proof is None:
        out.append("<p>Whether every item is archived now: <code>reconcile status</code> says.</p>")
    elif proof.archived:
        word = "copy" if proof.copies == 1 else "copies"
        out.append(
            f"<p>Every item the tool knows is archived. ({proof.copies} {word} required, "
            "or off-loaded from its source with them.)</p>"
        )
    if proof is not None and proof.unproven:
        named = "; ".join(f"{tid} {why}" for tid, why in proof.unproven.items())
        out.append(
            f"<p>Not proven now: {_esc(named)}; the counts above take the copies there "
            "as last recorded.</p>"
        )
    return "\n".join(out)


def _runs_table(runs: Sequence[Mapping[str, Any]]) -> str:
    if not runs:
        return '<p class="empty">No runs yet.</p>'
    head = "".join(
        f"<th>{h}</th>" for h in ("run", "command", "started", "finished", "exit", "why")
    )
    body = []
    for r in runs:
        code = r.get("exit_code")
        # A run with no exit says what became of it in the exit column.
        quiet = code in (0, 2) or r.get("status") == render.RUNNING
        why = r.get("reason") or ("" if quiet else r.get("status") or "")
        # one line per problem the run said (``commands.common.finish``)
        said = "<br>".join(_esc(line) for line in str(why).split("\n"))
        body.append(
            f'<tr class="{_run_class(r)}"><td>{r["id"]}</td><td>{_esc(r["command"])}</td>'
            f"<td>{_esc(_utc(r.get('started_at')))}</td>"
            f"<td>{_esc(_utc(r.get('finished_at')))}</td>"
            f"<td>{'-' if code is None else code} {_esc(render.run_state(r))}</td>"
            f"<td>{said}</td></tr>"
        )
    return f'<table class="runs"><tr>{head}</tr>{"".join(body)}</table>'


def _table(title: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc('-' if c is None else c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><caption>{_esc(title)}</caption><tr>{header}</tr>{body}</table>"


# ---------------------------------------------------------------- helpers


def _when(at: str | datetime) -> datetime:
    when = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _utc(at: object) -> str:
    if not at:
        return "-"
    return f"{_when(at if isinstance(at, datetime) else str(at)).astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _int(doc: Mapping[str, Any], section: str, key: str) -> int:
    return int(doc.get(section, {}).get(key, 0) or 0)


def _esc(value: object) -> str:
    """Text for the page: HTML's own characters, and every control or bidi
    character escaped visibly (``visible.escape_controls``) as on a terminal."""
    return html.escape(escape_controls(str(value)), quote=True)


def _were(n: int) -> str:
    return "is 1" if n == 1 else f"are {n}"


def _run_class(run: Mapping[str, Any]) -> str:
    """The style of a run: by its exit code; one with none recorded yet is
    ``unfinished`` (neutral: under way, or not known) unless it is known
    to be dead (killed: ``bad``)."""
    if run.get("status") == render.RUNNING and run.get("running_now") is not False:
        return "unfinished"
    return _exit_class(run.get("exit_code"))


def _exit_class(code: object) -> str:
    return "ok" if code == 0 else "changes" if code == 2 else "bad"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>reconcile report</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #222; background: #fff; padding: 0 16px; }
h1 { margin-bottom: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.meta { color: #666; font-size: 0.9em; margin-top: 4px; }
.headline { padding: 10px 14px; border-radius: 6px; border-left: 6px solid; }
.headline.ok { background: #e8f5e9; border-color: #2e7d32; }
.headline.changes { background: #fff8e1; border-color: #ffb300; }
.headline.bad { background: #ffebee; border-color: #d32f2f; }
.headline.unfinished { background: #e3f2fd; border-color: #1565c0; }
.empty { background: #f5f5f5; padding: 16px; border-radius: 6px; color: #444; }
figure { margin: 0 0 18px 0; }
figcaption { font-weight: bold; margin-bottom: 4px; }
figure img { width: 100%; height: auto; display: block; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding-bottom: 4px; white-space: nowrap; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 4px 10px; text-align: left; }
th { background: #f5f5f5; }
table.runs { width: 100%; }
tr.ok td:nth-child(5) { color: #2e7d32; } tr.changes td:nth-child(5) { color: #b26a00; }
tr.bad td:nth-child(5) { color: #c62828; font-weight: bold; }
tr.unfinished td:nth-child(5) { color: #1565c0; }
</style></head><body>"""
