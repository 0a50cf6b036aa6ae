"""Words and numbers as a trustee reads them: labels for stored keys, figures formatted by
what they measure, timestamps to the minute.

Stress-test runs are stored as the JSON their engine wrote, and the engine gains keys over
time; a key this module does not know is still shown, with its underscores made spaces, so
an old or a newer run never breaks the page nor shows a Python name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

LABELS: dict[str, str] = {
    # results
    "p_exhausted": "Probability the buffer runs out within the horizon",
    "standard_error": "Standard error of that probability",
    "exact_p_exhausted": "Same probability, computed exactly",
    "expected_loss": "Expected total loss (tCO2e)",
    "var": "Value at risk at {level}: loss not exceeded in {level} of futures (tCO2e)",
    "expected_shortfall": "Expected shortfall at {level}: average loss in the worst "
                          "futures beyond it (tCO2e)",
    "current_buffer_rate": "Buffer balance as a share of exposure",
    "required_contribution_rate": "Contribution rate that keeps the ruin probability on target",
    "within_target": "Ruin probability within the target",
    "total_loss": "Credits lost in the replayed history (tCO2e)",
    "share_of_pool_consumed": "Share of the pool consumed",
    "exhausted_year": "Year of the replay in which the pool ran out",
    # parameters
    "model": "Model",
    "pool": "Pool",
    "as_of": "Pool tested as of",
    "known_at": "As recorded by",
    "scenarios": "Simulated futures",
    "horizon": "Horizon (years)",
    "seed": "Random seed",
    "levels": "Confidence levels",
    "target_ruin": "Target ruin probability",
    "since": "Replayed from",
    "first_year": "First year replayed",
    "allocations": "Allocations by hazard",
    "annual_contributions": "Credits added each year",
    "assumptions": "Assumption",
    "loss_fraction": "Share of a project's exposure lost per event",
    "avoidable_share": "Share of losses that are avoidable",
    "default_probability": "Probability a proponent defaults on an avoidable reversal",
    "hazard_trend": "Annual rise of hazard",
    "region_by": "Regions drawn by",
    "catastrophe": "Catastrophe",
    "annual_probability": "Annual probability",
    "probability_multiplier": "Probability multiplier in a shock year",
    "loss_multiplier": "Loss multiplier in a shock year",
    "pool_figures": "Pool",
    "n_projects": "Projects",
    "total_exposure": "Exposure (tCO2e)",
    "buffer_balance": "Buffer balance (tCO2e)",
    "mean_annual_probability": "Mean annual probability of a loss event",
    "mean_loss_fraction": "Mean loss per event (share of exposure)",
    "regions": "Regions",
    "mean_avoidable_share": "Mean share of losses that are avoidable",
    "projects_assessed": "Projects with a recorded risk assessment",
    "projects_on_profile_default": "Projects on the program's default risk",
    "balance": "Buffer balance (tCO2e)",
    "replayed_balance": "Balance replayed (tCO2e)",
    "losses": "Losses replayed",
    "contributions": "Contributed (tCO2e)",
    "cancelled": "Cancelled (tCO2e)",
    "on_hold": "On hold (tCO2e)",
    "pool_size": "Pool size (tCO2e)",
    "event_loss": "Credits lost per event",
}
"""Stored key -> what a trustee reads. ``{level}`` is filled for per-level tables."""

MODELS: dict[str, str] = {
    "independent": "Independent annual events per project",
    "catastrophe": "Correlated catastrophe years",
    "rising": "Hazard rising over time",
    "default": "Proponent defaults on avoidable reversals",
    "combined": "Catastrophes, rising hazard and defaults combined",
    "backtest": "Historical backtest of the ledger's own reversals",
    "stylised": "Stylised pool",
}

_SHARES = ("p_", "probability", "share", "rate", "fraction", "trend", "ruin")


def label(key: str, level: str | None = None) -> str:
    """The reader's words for a stored key (an unknown key: its words, capitalised)."""
    text = LABELS.get(key)
    if text is None:
        words = key.replace("_", " ").strip()
        if words.startswith("p "):
            words = "probability " + words[2:]
        words = " ".join("VaR" if w == "var" else w for w in words.split())
        text = words[:1].upper() + words[1:]
        if level is not None:
            text += " at {level}"
    return text.format(level=level_text(level)) if level is not None else text


def level_text(level: str | None) -> str:
    """``"0.995"`` -> ``"99.5%"``; anything else as given."""
    try:
        return f"{float(str(level)) * 100:g}%"
    except ValueError:
        return str(level)


def is_share(key: str) -> bool:
    """Does this key hold a probability or a share (shown as a percentage)?"""
    if "multiplier" in key:
        return False
    return any(part in key for part in _SHARES)


def value(key: str, raw: Any) -> str:
    """A stored value, formatted by what its key measures."""
    if isinstance(raw, bool) or raw is None:
        return {True: "yes", False: "no", None: "—"}[raw]
    if key == "model" and isinstance(raw, str):
        return MODELS.get(raw, raw)
    if isinstance(raw, int) and (key == "year" or key.endswith("_year")):
        return str(raw)  # a calendar year or a year of the horizon, not a quantity
    if isinstance(raw, (int, float)):
        if is_share(key) and isinstance(raw, float):
            return percent(raw)
        if isinstance(raw, int) or float(raw).is_integer() or abs(raw) >= 100:
            return f"{raw:,.0f}"
        return f"{raw:.4g}"
    if isinstance(raw, str):
        return when(raw)
    if isinstance(raw, (list, tuple)):
        if key == "levels":
            return ", ".join(level_text(str(x)) for x in raw)
        return ", ".join(value(key, x) for x in raw)
    return str(raw)


def percent(share: float) -> str:
    """0.0123 -> ``1.23%``; tiny shares keep two significant digits."""
    pct = share * 100
    if pct == 0 or abs(pct) >= 0.01:
        return f"{pct:.2f}%"
    return f"{pct:.2g}%"


def when(text: str) -> str:
    """An ISO timestamp to the minute in UTC (dates and other text unchanged)."""
    if len(text) <= 10 or "T" not in text:
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def day(value_: date | datetime | None) -> str:
    if value_ is None:
        return "—"
    if isinstance(value_, datetime):
        return when(value_.isoformat())
    return value_.isoformat()


def rows(values: Mapping[str, Any], skip: frozenset[str] = frozenset(),
         prefix: str = "") -> list[tuple[str, str, str]]:
    """(raw key, label, value) rows: scalars, tables of scalars keyed by level or name, one
    level of nesting shown as "Group: item"; series (long lists) are left to the charts."""
    out: list[tuple[str, str, str]] = []
    for key, raw in values.items():
        if key in skip:
            continue
        path = f"{prefix}{key}"
        if isinstance(raw, Mapping):
            if _per_level(raw):
                out += [(f"{path}.{lv}", label(key, lv), value(key, v)) for lv, v in raw.items()]
            elif not prefix:
                for sub, v in raw.items():
                    if isinstance(v, Mapping):
                        continue
                    out.append((f"{path}.{sub}", (f"{label(key)}: {label(sub)[:1].lower()}"
                                f"{label(sub)[1:]}"), value(sub, v)))
        elif isinstance(raw, (list, tuple)):
            if len(raw) <= 8 and all(not isinstance(x, (Mapping, list, tuple)) for x in raw):
                out.append((path, label(key), value(key, raw)))
        else:
            out.append((path, label(key), value(key, raw)))
    return out


def _per_level(table: Mapping[str, Any]) -> bool:
    """A table keyed by confidence level (``{"0.995": ...}``)."""
    if not table:
        return False
    for k, v in table.items():
        try:
            level = float(k)
        except ValueError:
            return False
        if not 0 < level < 1 or isinstance(v, (Mapping, list, tuple)):
            return False
    return True
