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
    """The run-off ladder (``queries.runoff`` output): tonnes whose period ends each year."""
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
        return _save(fig, path)
    labels = [plain_label(_shorten(label)) for label, _ in rows]
    amounts = [amount for _, amount in rows]
    bars = ax.barh(range(len(rows)), amounts, color=BAR_COLOUR)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("Exposure (tCO2e)")
    _tonnes_axis(ax, "x")
    ax.bar_label(bars, labels=[tonnes(a) for a in amounts], padding=3, fontsize=8)
    ax.margins(x=0.18)
    return _save(fig, path)


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
