"""Charts for trustees: run-off ladder, buffer balance over time, exposure by group.

Figures are built with the object-oriented API on an Agg canvas (no pyplot, no global
backend switch), so they are safe in a server thread and never need a display. A path
ending in ``.svg`` gives SVG, anything else PNG. Tonnes carry thousands separators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

BALANCE_COLOUR = "#2a7f62"
EXPOSURE_COLOUR = "#c0504d"
BAR_COLOUR = "#3b6ea8"
_ANNOTATE_MAX_BARS = 15


def tonnes(value: float) -> str:
    """Whole tonnes with thousands separators, as everywhere in the project."""
    return f"{value:,.0f}"


def plain_label(text: Any) -> str:
    """Ledger text drawn verbatim: a ``$`` would otherwise switch matplotlib to mathtext."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def runoff_chart(runoff: Mapping[str, Any], path: str | Path) -> Path:
    """The run-off ladder (``projections.runoff`` output): tonnes whose period ends each year."""
    years = [int(y["year"]) for y in runoff.get("years", [])]
    amounts = [int(y["exposure_ending"]) for y in runoff.get("years", [])]
    fig, ax = _figure((9, 4.5))
    where = f", pool {runoff['pool']}" if runoff.get("pool") else ""
    ax.set_title(plain_label(f"Run-off ladder as of {runoff.get('as_of', '')}{where}"))
    if not years:
        _empty(ax, "No exposure outstanding")
    else:
        width = max(0.8, (max(years) - min(years)) / 60)  # stay visible over a century
        bars = ax.bar(years, amounts, color=BAR_COLOUR, width=width)
        ax.set_xlabel("Year the monitoring period ends")
        ax.set_ylabel("Exposure ending (tCO2e)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _tonnes_axis(ax, "y")
        if len(years) <= _ANNOTATE_MAX_BARS:
            ax.bar_label(bars, labels=[tonnes(a) for a in amounts], padding=2, fontsize=8)
            ax.margins(y=0.15)
        if len(years) == 1:
            ax.set_xlim(years[0] - 3, years[0] + 3)
    return _save(fig, path)


def buffer_balance_chart(
    points: Sequence[tuple[date, int, int]], path: str | Path, as_of: date | None = None
) -> Path:
    """Buffer balance against the exposure it backs, over time.

    ``points`` are (date, balance, exposure). Dates after ``as_of`` are a projection of
    what is recorded today (periods ending, nothing new), so they are shaded.
    """
    fig, ax = _figure((9, 4.5))
    ax.set_title("Buffer balance and exposure over time")
    if not points:
        _empty(ax, "No vintages recorded")
        return _save(fig, path)
    days = date2num([p[0] for p in points])
    ax.xaxis_date()
    ax.step(days, [p[2] for p in points], where="post", color=EXPOSURE_COLOUR,
            linewidth=2, label="Exposure (credits that must stay permanent)")
    ax.step(days, [p[1] for p in points], where="post", color=BALANCE_COLOUR,
            linewidth=2, label="Buffer balance (credits held in reserve)")
    if as_of is not None and points[-1][0] > as_of:
        ax.axvspan(float(date2num(as_of)), float(days[-1]), color="#999999", alpha=0.15,
                   label="Projection (as recorded today)")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("tCO2e")
    ax.set_ylim(bottom=0)
    _tonnes_axis(ax, "y")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def exposure_bar_chart(
    groups: Mapping[str, int | Mapping[str, Any]], title: str, path: str | Path
) -> Path:
    """Exposure per group as horizontal bars, largest first.

    ``groups`` maps a label to tonnes, or is ``queries.liabilities(...)["groups"]``
    directly (each value's ``exposure`` is used).
    """
    return _save(_exposure_figure(groups, title), path)


def _exposure_figure(groups: Mapping[str, int | Mapping[str, Any]], title: str) -> Figure:
    rows = sorted(
        ((label, _exposure(value)) for label, value in groups.items()),
        key=lambda r: (-r[1], r[0]),
    )
    rows = [r for r in rows if r[1] > 0]
    height = max(2.5, 0.9 + 0.45 * len(rows))
    fig, ax = _figure((9, height))
    ax.set_title(plain_label(title))
    if not rows:
        _empty(ax, "No exposure")
        return fig
    labels = [plain_label(_shorten(label)) for label, _ in rows]
    amounts = [amount for _, amount in rows]
    bars = ax.barh(range(len(rows)), amounts, color=BAR_COLOUR)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("Exposure (tCO2e)")
    _tonnes_axis(ax, "x")
    ax.bar_label(bars, labels=[tonnes(a) for a in amounts], padding=3, fontsize=8)
    ax.margins(x=0.18)
    return fig


# ---------------------------------------------------------------------- inline SVG charts
#
# The trustee report embeds its charts in the page itself: each function below returns
# one ``<svg>`` element (text kept as text, ids salted by the chart's name so several
# charts on one page never share an id).

POOL_COLOURS = ("#2a7f62", "#3b6ea8", "#c98a1b", "#8e4585", "#4f8f9e", "#7a6a3a",
                "#b0413e", "#5a5a9e", "#2f6f3e", "#a0522d")
OWED_COLOUR = "#b0413e"
LIGHT_BAR = "#c9d8ea"


def pool_balance_svg(
    series: Mapping[str, Sequence[tuple[date, int, int]]], as_of: date, ident: str
) -> str:
    """Each pool's buffer balance as a step line, stepping on the exact business dates;
    ``series`` is (date, balance, owed) per pool. What a pool owes, when it ever owed
    anything, is drawn dashed in the pool's colour: the balance should stay above it."""
    fig, ax = _figure((9, 4.2))
    ax.set_title("Buffer balance by pool (dashed: what the pool owes)")
    drawn = {name: points for name, points in series.items() if points}
    if not drawn:
        _empty(ax, "No buffer contributions recorded")
        return svg_markup(fig, ident)
    ax.xaxis_date()
    for i, (name, points) in enumerate(sorted(drawn.items())):
        tail = [(as_of, points[-1][1], points[-1][2])] if points[-1][0] < as_of else []
        full = [*points, *tail]
        days = date2num([p[0] for p in full])
        colour = POOL_COLOURS[i % len(POOL_COLOURS)]
        label = plain_label(_shorten(name))
        ax.step(days, [p[1] for p in full], where="post", linewidth=2, color=colour,
                label=label)
        if any(p[2] for p in full):
            ax.step(days, [p[2] for p in full], where="post", linewidth=1.5, color=colour,
                    linestyle="--", label=plain_label(f"{_shorten(name)} owes"))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("tCO2e")
    ax.set_ylim(bottom=0)
    _tonnes_axis(ax, "y")
    ax.legend(loc="best", fontsize=8)
    return svg_markup(fig, ident)


def dues_svg(rows: Sequence[tuple[str, int, int]], ident: str) -> str:
    """Per pool (name, balance, owed): what it holds against what it owes; a pool owing
    more than it holds is marked UNCOVERED with the difference."""
    fig, ax = _figure((9, max(2.6, 1.1 + 0.7 * len(rows))))
    ax.set_title("Dues against the buffer balance, by pool")
    if not rows:
        _empty(ax, "No pools")
        return svg_markup(fig, ident)
    ys = list(range(len(rows)))
    balances = [r[1] for r in rows]
    owed = [r[2] for r in rows]
    ax.barh([y - 0.2 for y in ys], balances, height=0.38, color=BALANCE_COLOUR,
            label="Buffer balance (held)")
    ax.barh([y + 0.2 for y in ys], owed, height=0.38, color=OWED_COLOUR,
            label="Owed by the pool (due + shortfall)")
    ax.set_yticks(ys, [plain_label(_shorten(r[0])) for r in rows])
    ax.invert_yaxis()
    top = max(max(balances), max(owed), 1)
    for y, (_, held, due) in zip(ys, rows, strict=True):
        ax.text(held + top * 0.01, y - 0.2, tonnes(held), va="center", fontsize=8)
        text = tonnes(due) + (f"  UNCOVERED {tonnes(due - held)}" if due > held else "")
        ax.text(due + top * 0.01, y + 0.2, text, va="center", fontsize=8,
                color=OWED_COLOUR if due > held else "#1d2320",
                fontweight="bold" if due > held else "normal")
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel("tCO2e")
    _tonnes_axis(ax, "x")
    ax.legend(loc="lower right", fontsize=8)
    return svg_markup(fig, ident)


def runoff_by_bearer_svg(
    years: Sequence[tuple[int, Mapping[str, int]]], bearers: Sequence[str], ident: str
) -> str:
    """Exposure leaving each bearer each year, stacked by bearer (arrivals below zero)."""
    fig, ax = _figure((9, 4.2))
    ax.set_title("Run-off by bearer: exposure ending each year")
    if not years:
        _empty(ax, "No exposure outstanding")
        return svg_markup(fig, ident)
    xs = [y for y, _ in years]
    width = max(0.8, (max(xs) - min(xs)) / 60)
    up = [0] * len(xs)
    down = [0] * len(xs)
    order = sorted(bearers)  # a bearer keeps its colour whatever its size
    for bearer in bearers:
        i = order.index(bearer)
        amounts = [int(b.get(bearer, 0)) for _, b in years]
        bottoms = [up[j] if a >= 0 else down[j] for j, a in enumerate(amounts)]
        ax.bar(xs, amounts, bottom=bottoms, width=width, label=plain_label(_shorten(bearer)),
               color=POOL_COLOURS[i % len(POOL_COLOURS)])
        for j, a in enumerate(amounts):
            if a >= 0:
                up[j] += a
            else:
                down[j] += a
    if min(down) < 0:
        ax.axhline(0, color="#1d2320", linewidth=0.8)
    ax.set_xlabel("Year the exposure leaves its bearer")
    ax.set_ylabel("tCO2e")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(xs) == 1:
        ax.set_xlim(xs[0] - 3, xs[0] + 3)
    _tonnes_axis(ax, "y")
    ax.legend(loc="best", fontsize=8)
    return svg_markup(fig, ident)


def exposure_bars_svg(groups: Mapping[str, int], title: str, ident: str) -> str:
    """:func:`exposure_bar_chart` as inline SVG."""
    return svg_markup(_exposure_figure(groups, title), ident)


def hazard_svg(allocations: Sequence[tuple[str, int, int]], title: str, ident: str) -> str:
    """A pool's buffer by hazard: each allocation (name, credits, losses drawn) as a light
    bar with the losses drawn against it overlaid."""
    fig, ax = _figure((9, max(2.4, 1.0 + 0.5 * len(allocations))))
    ax.set_title(plain_label(title))
    if not allocations:
        _empty(ax, "No allocation by hazard recorded")
        return svg_markup(fig, ident)
    ys = list(range(len(allocations)))
    sizes = [a[1] for a in allocations]
    drawn = [a[2] for a in allocations]
    ax.barh(ys, sizes, color=LIGHT_BAR, label="Allocated (tCO2e)")
    ax.barh(ys, drawn, height=0.45, color=OWED_COLOUR, label="Losses drawn (tCO2e)")
    ax.set_yticks(ys, [plain_label(_shorten(a[0])) for a in allocations])
    ax.invert_yaxis()
    top = max(max(sizes), max(drawn), 1)
    for y, size, used in zip(ys, sizes, drawn, strict=True):
        share = f" ({used / size:.0%})" if size else ""
        ax.text(max(size, used) + top * 0.01, y, f"{tonnes(used)} of {tonnes(size)}{share}",
                va="center", fontsize=8)
    ax.set_xlim(0, top * 1.4)
    ax.set_xlabel("tCO2e")
    _tonnes_axis(ax, "x")
    ax.legend(loc="lower right", fontsize=8)
    return svg_markup(fig, ident)


def ruin_curve_svg(p_by_year: Sequence[float], title: str, ident: str) -> str:
    """P(exhausted) by year: the share of simulated futures in which the pool has run out
    by the end of each year (years numbered from 1)."""
    fig, ax = _figure((9, 3.6))
    ax.set_title(plain_label(title))
    years = list(range(len(p_by_year) + 1))
    ax.plot(years, [0.0] + [float(p) for p in p_by_year], color=OWED_COLOUR, linewidth=2,
            marker="o" if len(p_by_year) <= 30 else None, markersize=4)
    ax.set_xlabel("Year of the horizon")
    ax.set_ylabel("P(exhausted by then)")
    ax.set_xlim(0, max(years[-1], 1) + 0.5)
    ax.set_ylim(bottom=0, top=max(max(float(p) for p in p_by_year) * 1.15, 0.01))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1%}"))
    return svg_markup(fig, ident)


def loss_histogram_svg(
    edges: Sequence[float], counts: Sequence[float], balance: int | None, title: str, ident: str
) -> str:
    """How the simulated total losses are distributed, the buffer balance marked."""
    from itertools import pairwise

    fig, ax = _figure((9, 3.6))
    ax.set_title(plain_label(title))
    lefts = [float(e) for e in edges[:-1]]
    widths = [float(b) - float(a) for a, b in pairwise(edges)]
    ax.bar(lefts, [float(c) for c in counts], width=widths, align="edge", color=BAR_COLOUR,
           label="Simulated futures")
    if balance is not None:
        ax.axvline(balance, color=BALANCE_COLOUR, linewidth=2, linestyle="--",
                   label=f"Buffer balance {tonnes(balance)}")
    ax.set_xlabel("Total loss over the horizon (tCO2e)")
    ax.set_ylabel("Simulated futures")
    _tonnes_axis(ax, "x")
    ax.legend(loc="best", fontsize=8)
    return svg_markup(fig, ident)


def svg_markup(fig: Figure, ident: str) -> str:
    """The figure as one ``<svg>`` element to inline in HTML (no XML prolog, no doctype)."""
    import io

    import matplotlib as mpl

    buffer = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": ident}):
        fig.savefig(buffer, format="svg", metadata=_metadata("svg"))
    text = buffer.getvalue()
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", f'<svg id="{ident}" role="img" ', 1)


# ---------------------------------------------------------------------- helpers


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(axis="both", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _tonnes_axis(ax: Axes, which: str) -> None:
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_formatter(FuncFormatter(lambda v, _: tonnes(v)))


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


def _exposure(value: int | Mapping[str, Any]) -> int:
    return int(value["exposure"]) if isinstance(value, Mapping) else int(value)


def _shorten(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _save(fig: Figure, path: str | Path) -> Path:
    target = Path(path)
    fmt = "svg" if target.suffix.lower() == ".svg" else "png"
    fig.savefig(target, format=fmt, metadata=_metadata(fmt))
    return target


def _metadata(fmt: str) -> dict[str, str | None]:
    """No creation date or software stamp in the files: they say only what the ledger says."""
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    return {"Software": None}


# ====================================================================== stress-test charts
# (maintained with risk/: the figures of a stress-test result, drawn from its plain JSON)


def stress_test_chart(result: Mapping[str, Any], path: str | Path) -> Path:
    """Ruin curve (P(exhausted) by year, years from 1) and the distribution of the horizon loss.

    ``result`` is a stress-test result as published (``permanence stress-test --json``) or
    recorded: it needs ``p_exhausted_by_year`` and ``loss_histogram``; the horizon loss
    quantiles (``horizon_loss_quantile``) and the balance (``parameters``) are marked when
    present.
    """
    fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ruin, spread = fig.subplots(1, 2)
    for ax in (ruin, spread):
        ax.grid(axis="both", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    curve = [float(p) for p in result.get("p_exhausted_by_year", [])]
    ruin.plot(range(1, len(curve) + 1), curve, color=EXPOSURE_COLOUR)
    ruin.set(xlabel="year (from 1)", ylabel="P(loss exceeds the balance by year)", ylim=(0, 1))
    ruin.set_title(plain_label(
        f"{result.get('model', '')}: ruin probability ({int(result.get('scenarios', 0)):,} "
        "scenarios)"))
    ruin.xaxis.set_major_locator(MaxNLocator(integer=True))
    histogram = result.get("loss_histogram") or {"edges": [0.0, 1.0], "counts": [0.0]}
    edges = [float(e) for e in histogram["edges"]]
    scenarios = max(1, int(result.get("scenarios", 1)))
    shares = [float(c) / scenarios for c in histogram["counts"]]
    widths = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    spread.bar(edges[:-1], shares, width=widths, align="edge", color=BAR_COLOUR)
    for key, value in (result.get("horizon_loss_quantile") or {}).items():
        spread.axvline(float(value), color="black", linestyle="--",
                       label=f"{float(key):.1%} quantile of the horizon loss")
    parameters = result.get("parameters") or {}
    balance = (parameters.get("pool_figures") or {}).get("buffer_balance",
                                                          parameters.get("pool_size"))
    if balance is not None:
        spread.axvline(float(balance), color=BALANCE_COLOUR, linewidth=2,
                       label=f"balance {tonnes(float(balance))} (exhausted beyond it)")
    horizon = result.get("horizon", "")
    spread.set(xlabel=f"pool loss summed over {horizon} years (credits)",
               ylabel="share of scenarios")
    _tonnes_axis(spread, "x")
    if spread.get_legend_handles_labels()[0]:
        spread.legend(loc="upper right", fontsize=8)
    return _save(fig, path)
