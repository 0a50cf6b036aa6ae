"""From simulated loss paths to the figures a stress test publishes, each saying what it measures.

Every model hands :func:`summarise` chunks of pool losses, one row per scenario and one
column per year (year 1 is the first simulated year, the year after the as-of date).

- **Exhausted**: the pool is exhausted in the first year t whose cumulative loss *exceeds*
  (strictly) the balance plus the contributions received by then
  (``balance + annual_contributions * (t - 1)``; they arrive at each year's end). A pool
  that loses exactly what it holds has paid everything it owed: it is not exhausted.
- **One-year VaR** (Solvency II's measure): the ``level`` quantile of the loss of ONE year,
  taken as the first simulated year's loss (the 1-in-200-year loss at 0.995).
- **Horizon loss quantile**: the ``level`` quantile of the loss summed over the whole
  horizon (uncapped). It is not a one-year figure and is never labelled VaR.
- **Expected shortfall** beside each: the mean loss of the worst ``1 - level`` share of
  scenarios (fractional at the edge).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from risk.engine.common import DEFAULT_LEVEL, IntArray, Progress, level_key

EXHAUSTED_MEANS = (
    "cumulative pool loss exceeds (is strictly greater than) the buffer balance plus the "
    "contributions received by then; a loss equal to the balance is not exhaustion"
)
YEARS_MEAN = "years are numbered from 1: year 1 is the first simulated year (after the as-of date)"


def definitions(horizon: int) -> dict[str, str]:
    """What each published figure measures, published with it."""
    return {
        "exhausted": EXHAUSTED_MEANS,
        "years": YEARS_MEAN,
        "one_year_var": (
            "Solvency II value at risk: the level quantile of the pool's loss in ONE year, "
            "the first simulated year (year 1)"
        ),
        "horizon_loss_quantile": (
            f"the level quantile of the pool's loss summed over all {horizon} years "
            "(not a one-year VaR)"
        ),
        "expected_shortfall": "mean loss of the worst (1 - level) share of scenarios",
        "loss_histogram": f"distribution of the loss summed over all {horizon} years",
    }


@dataclass(frozen=True)
class StressResult:
    """What a stress test publishes; ``to_dict`` gives plain JSON types."""

    model: str
    scenarios: int
    horizon: int
    seed: int
    levels: list[float]
    p_exhausted: float
    standard_error: float
    p_exhausted_by_year: list[float]
    exhaustion_year_distribution: dict[str, int]
    one_year_expected_loss: float
    one_year_var: dict[str, float]
    one_year_expected_shortfall: dict[str, float]
    horizon_expected_loss: float
    horizon_loss_quantile: dict[str, float]
    horizon_expected_shortfall: dict[str, float]
    loss_histogram: dict[str, list[float]]
    parameters: dict[str, Any] = field(default_factory=dict)
    exact_p_exhausted: float | None = None

    def one_year_var_at(self, level: float = DEFAULT_LEVEL) -> float:
        """Solvency II VaR at ``level``: quantile of the first year's loss."""
        return self.one_year_var[level_key(level)]

    def one_year_es_at(self, level: float = DEFAULT_LEVEL) -> float:
        """Expected shortfall of the first year's loss at ``level``."""
        return self.one_year_expected_shortfall[level_key(level)]

    def horizon_quantile_at(self, level: float = DEFAULT_LEVEL) -> float:
        """Quantile of the loss summed over the horizon at ``level``."""
        return self.horizon_loss_quantile[level_key(level)]

    def horizon_es_at(self, level: float = DEFAULT_LEVEL) -> float:
        """Expected shortfall of the loss summed over the horizon at ``level``."""
        return self.horizon_expected_shortfall[level_key(level)]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, ints, floats and strings, ready for ``json.dumps``."""
        return {
            "model": self.model,
            "scenarios": self.scenarios,
            "horizon": self.horizon,
            "seed": self.seed,
            "levels": list(self.levels),
            "definitions": definitions(self.horizon),
            "p_exhausted": self.p_exhausted,
            "standard_error": self.standard_error,
            "exact_p_exhausted": self.exact_p_exhausted,
            "p_exhausted_by_year": list(self.p_exhausted_by_year),
            "exhaustion_year_distribution": dict(self.exhaustion_year_distribution),
            "one_year_expected_loss": self.one_year_expected_loss,
            "one_year_var": dict(self.one_year_var),
            "one_year_expected_shortfall": dict(self.one_year_expected_shortfall),
            "horizon_expected_loss": self.horizon_expected_loss,
            "horizon_loss_quantile": dict(self.horizon_loss_quantile),
            "horizon_expected_shortfall": dict(self.horizon_expected_shortfall),
            "loss_histogram": {k: list(v) for k, v in self.loss_histogram.items()},
            "parameters": plain(self.parameters),
        }


def plain(value: Any) -> Any:
    """Numpy scalars and arrays to Python types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Run:
    """The run's own parameters, published with its figures."""

    model: str
    scenarios: int
    horizon: int
    seed: int
    levels: list[float]


def summarise(
    paths: Iterable[IntArray],
    balance: int,
    contributions: int,
    run: Run,
    parameters: dict[str, Any],
    chunks: int,
    progress: Progress | None = None,
) -> StressResult:
    """Fold chunks of loss paths (scenarios x years) into the published figures.

    ``progress`` is told after each of the ``chunks`` chunks how many are done.
    """
    counts = np.zeros(run.horizon + 1, dtype=np.int64)
    totals: list[IntArray] = []
    first_years: list[IntArray] = []
    for done, chunk in enumerate(paths, start=1):
        years = exhaustion_years(chunk, balance, contributions)
        counts += np.bincount(years, minlength=run.horizon + 1)
        totals.append(chunk.sum(axis=1))
        first_years.append(chunk[:, 0].copy())
        if progress is not None:
            progress(done, chunks)
    total = np.concatenate(totals)
    one_year = np.concatenate(first_years)
    p_exhausted = float(counts[1:].sum() / run.scenarios)
    return StressResult(
        model=run.model,
        scenarios=run.scenarios,
        horizon=run.horizon,
        seed=run.seed,
        levels=run.levels,
        p_exhausted=p_exhausted,
        standard_error=math.sqrt(p_exhausted * (1 - p_exhausted) / run.scenarios),
        p_exhausted_by_year=[float(x) for x in np.cumsum(counts[1:]) / run.scenarios],
        exhaustion_year_distribution=_distribution(counts),
        one_year_expected_loss=float(one_year.mean()),
        one_year_var={level_key(q): value_at_risk(one_year, q) for q in run.levels},
        one_year_expected_shortfall={
            level_key(q): expected_shortfall(one_year, q) for q in run.levels
        },
        horizon_expected_loss=float(total.mean()),
        horizon_loss_quantile={level_key(q): value_at_risk(total, q) for q in run.levels},
        horizon_expected_shortfall={
            level_key(q): expected_shortfall(total, q) for q in run.levels
        },
        loss_histogram=_histogram(total),
        parameters=parameters,
    )


def _distribution(counts: IntArray) -> dict[str, int]:
    """Scenarios exhausted in each year 1..horizon, and those never exhausted."""
    out = {str(year): int(n) for year, n in enumerate(counts[1:], start=1)}
    out["never"] = int(counts[0])
    return out


def exhaustion_years(losses: IntArray, balance: int, contributions: int) -> IntArray:
    """Year (from 1) in which each scenario's pool is exhausted, 0 if never.

    Exhausted means the cumulative loss is strictly greater than the balance plus the
    contributions received by then (see the module docstring).
    """
    cumulative = np.cumsum(losses, axis=1)
    resources = balance + contributions * np.arange(losses.shape[1], dtype=np.int64)
    hit = cumulative > resources
    first = hit.argmax(axis=1) + 1
    return np.where(hit.any(axis=1), first, 0).astype(np.int64)


def value_at_risk(losses: npt.ArrayLike, level: float) -> float:
    """Empirical quantile: the smallest loss x with P(L <= x) >= level."""
    ordered = np.sort(np.asarray(losses, dtype=np.float64))
    index = max(0, math.ceil(level * ordered.size - 1e-9) - 1)
    return float(ordered[min(index, ordered.size - 1)])


def expected_shortfall(losses: npt.ArrayLike, level: float) -> float:
    """Empirical ES: mean of the worst ``1 - level`` share of outcomes (fractional at the edge)."""
    ordered = np.sort(np.asarray(losses, dtype=np.float64))[::-1]
    tail = (1.0 - level) * ordered.size
    if abs(tail - round(tail)) < 1e-9:  # 0.5% of 20,000 is 100 scenarios, not 99.99999...
        tail = float(round(tail))
    whole = min(math.floor(tail), ordered.size)
    part = tail - whole
    total = float(ordered[:whole].sum())
    if part > 1e-9 and whole < ordered.size:
        total += part * float(ordered[whole])
    return total / tail if tail > 0 else float(ordered[0])


def _histogram(total: IntArray, bins: int = 50) -> dict[str, list[float]]:
    low, high = float(total.min()), float(total.max())
    span = (low - 0.5, high + 0.5) if low == high else (low, high)
    counts, edges = np.histogram(total, bins=bins, range=span)
    return {"edges": [float(e) for e in edges], "counts": [float(c) for c in counts]}


__all__ = [
    "EXHAUSTED_MEANS",
    "YEARS_MEAN",
    "Run",
    "StressResult",
    "definitions",
    "exhaustion_years",
    "expected_shortfall",
    "plain",
    "summarise",
    "value_at_risk",
]
