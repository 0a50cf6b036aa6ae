"""Monte Carlo stress tester for a pooled buffer (CIWP recommendation 3; domain.md section 6).

Pure numpy: the caller builds a :class:`PoolContents` from the projections (buffer balance,
exposure per project, hazard per project) and gets back plain numbers it can publish.

Model families (``simulate(model=...)``):

- ``independent``: each project, each year, has a reversal event with its annual probability
  and loses ``loss_fraction`` of its *remaining* exposure (exposure never regrows, so losses
  never exceed it). Every reversal is a pool loss (as if no avoidable one were compensated).
- ``catastrophe``: as independent, plus regional catastrophe years: each region, each year,
  is struck with ``CatastropheParams.annual_probability``; in a struck year its projects'
  probabilities and loss fractions are multiplied (capped at 1).
- ``rising``: hazard grows with climate change: ``p_t = min(1, p * (1 + trend) ** (t - 1))``
  in year t = 1..horizon.
- ``default``: a reversal's avoidable share is a pool loss only when the proponent defaults
  (``default_probability`` per event); the unavoidable share always is.
- ``combined``: all of the above at once.
- ``simulate_stylised``: one pool of N credits, no contributions; each year an event with
  probability P removes L credits. ``binomial_exhaustion_probability`` is its exact answer.
- ``backtest``: replays historical pool losses deterministically against the balance.

The pool is *exhausted* in the first year t in which cumulative pool losses are positive and
reach ``buffer_balance + annual_contributions * (t - 1)`` (contributions arrive at each
year's end). Total loss (for VaR and ES) is the sum of pool losses over the horizon, uncapped.

Randomness: scenarios are cut into fixed blocks of ``RNG_BLOCK`` scenarios, each with its own
stream spawned from ``np.random.SeedSequence(seed)``; a chunk (the unit of memory, chunk x
projects integers) is a whole number of blocks, so the same seed gives identical results
whatever the chunk size. Events are drawn sparsely (geometric gaps, then thinning), so the
cost follows the number of events, not scenarios x projects x years.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Model = Literal["independent", "catastrophe", "rising", "default", "combined"]
MODELS: tuple[str, ...] = get_args(Model)
RNG_BLOCK = 64
"""Scenarios per random stream: fixes the draws whatever the chunk size."""
DEFAULT_LEVEL = 0.995
"""Solvency II calibrates capital to a 1-in-200-year loss."""
_CHUNK_CELLS = 4_000_000
"""Default chunk: about this many scenario x project cells (32 MB of int64)."""


class StressTestRejected(ValueError):
    """A stress-test input breaks a rule; the message names the field and problem."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PoolContents:
    """What the pool holds and what it insures, one array entry per project."""

    buffer_balance: int
    exposure: IntArray
    annual_probability: FloatArray
    loss_fraction: FloatArray
    region: IntArray
    avoidable_share: FloatArray
    default_probability: float
    hazard_trend: float
    annual_contributions: int = 0

    def __post_init__(self) -> None:
        n = _check_exposure(self)
        for name in ("annual_probability", "loss_fraction", "avoidable_share"):
            object.__setattr__(self, name, _unit_array(getattr(self, name), name, n))
        object.__setattr__(self, "region", _int_array(self.region, "region", n))
        _check_scalars(self)

    @classmethod
    def homogeneous(
        cls,
        n_projects: int,
        exposure: int,
        annual_probability: float,
        loss_fraction: float,
        buffer_balance: int,
        regions: int = 1,
        avoidable_share: float = 0.0,
        default_probability: float = 0.0,
        hazard_trend: float = 0.0,
        annual_contributions: int = 0,
    ) -> PoolContents:
        """Identical projects spread round-robin over ``regions``: handy for tests and benches."""
        if n_projects < 1 or regions < 1:
            raise StressTestRejected("n_projects and regions must be at least 1")
        return cls(
            buffer_balance=buffer_balance,
            exposure=np.full(n_projects, exposure, dtype=np.int64),
            annual_probability=np.full(n_projects, annual_probability),
            loss_fraction=np.full(n_projects, loss_fraction),
            region=np.arange(n_projects, dtype=np.int64) % regions,
            avoidable_share=np.full(n_projects, avoidable_share),
            default_probability=default_probability,
            hazard_trend=hazard_trend,
            annual_contributions=annual_contributions,
        )

    @property
    def n_projects(self) -> int:
        """Number of projects insured by the pool."""
        return int(self.exposure.size)

    @property
    def total_exposure(self) -> int:
        """Sum of exposure borne by the pool."""
        return int(self.exposure.sum())

    def with_balance(self, buffer_balance: int) -> PoolContents:
        """The same pool holding a different balance (for contribution-rate searches)."""
        return replace(self, buffer_balance=buffer_balance)

    def summary(self) -> dict[str, Any]:
        """Published parameters of the pool (JSON-ready)."""
        return {
            "n_projects": self.n_projects,
            "total_exposure": self.total_exposure,
            "buffer_balance": int(self.buffer_balance),
            "annual_contributions": int(self.annual_contributions),
            "mean_annual_probability": float(self.annual_probability.mean()),
            "mean_loss_fraction": float(self.loss_fraction.mean()),
            "regions": int(np.unique(self.region).size),
            "mean_avoidable_share": float(self.avoidable_share.mean()),
            "default_probability": float(self.default_probability),
            "hazard_trend": float(self.hazard_trend),
        }


def _check_exposure(contents: PoolContents) -> int:
    exposure = np.asarray(contents.exposure)
    if exposure.ndim != 1 or exposure.size == 0:
        raise StressTestRejected("exposure: expected a non-empty one-dimensional array")
    if not np.issubdtype(exposure.dtype, np.integer):
        raise StressTestRejected("exposure: quantities are whole credits (an integer array)")
    if (exposure < 0).any():
        raise StressTestRejected("exposure: must not be negative")
    object.__setattr__(contents, "exposure", exposure.astype(np.int64))
    return int(exposure.size)


def _unit_array(values: Any, name: str, n: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise StressTestRejected(f"{name}: expected {n} values, one per project")
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise StressTestRejected(f"{name}: every value must be within [0, 1]")
    return array


def _int_array(values: Any, name: str, n: int) -> IntArray:
    array = np.asarray(values)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise StressTestRejected(f"{name}: expected {n} integer codes, one per project")
    return array.astype(np.int64)


def _check_scalars(contents: PoolContents) -> None:
    if int(contents.buffer_balance) < 0:
        raise StressTestRejected("buffer_balance: must not be negative")
    if int(contents.annual_contributions) < 0:
        raise StressTestRejected("annual_contributions: must not be negative")
    if not 0.0 <= contents.default_probability <= 1.0:
        raise StressTestRejected("default_probability: must be within [0, 1]")
    if not (math.isfinite(contents.hazard_trend) and contents.hazard_trend > -1.0):
        raise StressTestRejected("hazard_trend: must be greater than -1")


@dataclass(frozen=True)
class CatastropheParams:
    """A regional shock year: how often it strikes a region and how much worse it makes it."""

    annual_probability: float = 0.02
    probability_multiplier: float = 5.0
    loss_multiplier: float = 1.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.annual_probability <= 1.0:
            raise StressTestRejected("catastrophe.annual_probability: must be within [0, 1]")
        if self.probability_multiplier < 1.0 or self.loss_multiplier < 1.0:
            raise StressTestRejected("catastrophe multipliers: must be at least 1")

    def to_dict(self) -> dict[str, float]:
        """Published parameters (JSON-ready)."""
        return {
            "annual_probability": self.annual_probability,
            "probability_multiplier": self.probability_multiplier,
            "loss_multiplier": self.loss_multiplier,
        }


# --------------------------------------------------------------------------- outputs


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
    expected_loss: float
    var: dict[str, float]
    expected_shortfall: dict[str, float]
    loss_histogram: dict[str, list[float]]
    parameters: dict[str, Any] = field(default_factory=dict)
    exact_p_exhausted: float | None = None

    def var_at(self, level: float = DEFAULT_LEVEL) -> float:
        """VaR of total losses at ``level`` (must be one of the computed levels)."""
        return self.var[_level_key(level)]

    def es_at(self, level: float = DEFAULT_LEVEL) -> float:
        """Expected shortfall of total losses at ``level``."""
        return self.expected_shortfall[_level_key(level)]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, ints, floats and strings, ready for ``json.dumps``."""
        return {
            "model": self.model,
            "scenarios": self.scenarios,
            "horizon": self.horizon,
            "seed": self.seed,
            "levels": list(self.levels),
            "p_exhausted": self.p_exhausted,
            "standard_error": self.standard_error,
            "exact_p_exhausted": self.exact_p_exhausted,
            "p_exhausted_by_year": list(self.p_exhausted_by_year),
            "exhaustion_year_distribution": dict(self.exhaustion_year_distribution),
            "expected_loss": self.expected_loss,
            "var": dict(self.var),
            "expected_shortfall": dict(self.expected_shortfall),
            "loss_histogram": {k: list(v) for k, v in self.loss_histogram.items()},
            "parameters": _plain(self.parameters),
        }


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays to Python types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _level_key(level: float) -> str:
    return f"{level:g}"


# --------------------------------------------------------------------------- public entry points


def simulate(
    contents: PoolContents,
    model: str = "independent",
    scenarios: int = 10_000,
    horizon: int = 100,
    seed: int = 0,
    levels: float | Sequence[float] = DEFAULT_LEVEL,
    chunk_size: int | None = None,
    catastrophe: CatastropheParams | None = None,
) -> StressResult:
    """Run one model family over ``scenarios`` x ``horizon`` years and summarise the pool's fate."""
    flags = _flags(model)
    levels_list = _levels(levels)
    _check_run(scenarios, horizon)
    cat = catastrophe or CatastropheParams()
    chunk = _chunk_size(chunk_size, contents.n_projects)
    paths = _loss_paths(contents, flags, scenarios, horizon, seed, chunk, cat)
    parameters = {
        "pool": contents.summary(),
        "rng_block": RNG_BLOCK,
        **({"catastrophe": cat.to_dict()} if flags.catastrophe else {}),
    }
    return _summarise(
        paths,
        balance=int(contents.buffer_balance),
        contributions=int(contents.annual_contributions),
        run=_Run(model, scenarios, horizon, seed, levels_list),
        parameters=parameters,
    )


def simulate_stylised(
    pool_size: int,
    event_loss: int,
    annual_probability: float,
    horizon: int = 100,
    scenarios: int = 10_000,
    seed: int = 0,
    levels: float | Sequence[float] = DEFAULT_LEVEL,
    chunk_size: int | None = None,
) -> StressResult:
    """The stylised pool (N credits, events of L credits with probability P each year)."""
    _check_stylised(pool_size, event_loss, annual_probability)
    _check_run(scenarios, horizon)
    levels_list = _levels(levels)
    chunk = _chunk_size(chunk_size, horizon)
    paths = _stylised_paths(event_loss, annual_probability, scenarios, horizon, seed, chunk)
    exact = binomial_exhaustion_probability(pool_size, event_loss, annual_probability, horizon)
    parameters = {
        "pool_size": pool_size,
        "event_loss": event_loss,
        "annual_probability": annual_probability,
        "events_to_exhaust": math.ceil(pool_size / event_loss),
        "rng_block": RNG_BLOCK,
    }
    result = _summarise(
        paths,
        balance=pool_size,
        contributions=0,
        run=_Run("stylised", scenarios, horizon, seed, levels_list),
        parameters=parameters,
    )
    return replace(result, exact_p_exhausted=exact)


def binomial_exhaustion_probability(
    pool_size: int, event_loss: int, annual_probability: float, horizon: int
) -> float:
    """Exact P(exhausted by ``horizon``) for the stylised pool: P(K >= ceil(N/L)), K ~ Bin(T, P)."""
    _check_stylised(pool_size, event_loss, annual_probability)
    if horizon < 0:
        raise StressTestRejected("horizon: must not be negative")
    needed = math.ceil(pool_size / event_loss)
    if needed > horizon:
        return 0.0
    if annual_probability >= 1.0:
        return 1.0
    if annual_probability <= 0.0:
        return 0.0
    terms = [_binomial_pmf(k, horizon, annual_probability) for k in range(needed, horizon + 1)]
    return min(1.0, math.fsum(terms))


def _binomial_pmf(k: int, n: int, p: float) -> float:
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return math.exp(log_pmf)


def required_contribution_rate(
    contents: PoolContents,
    target_ruin_probability: float,
    model: str = "independent",
    scenarios: int = 2_000,
    horizon: int = 100,
    seed: int = 0,
    tolerance: float = 1e-4,
    chunk_size: int | None = None,
    catastrophe: CatastropheParams | None = None,
) -> float:
    """Smallest buffer rate (balance as a share of total exposure) keeping ruin <= target.

    Bisection on one fixed-seed set of loss paths: the balance changes neither events nor
    losses, so every candidate rate faces the same scenarios and ruin falls monotonically.
    """
    if not 0.0 <= target_ruin_probability < 1.0:
        raise StressTestRejected("target_ruin_probability: must be within [0, 1)")
    if not 0.0 < tolerance < 1.0:
        raise StressTestRejected("tolerance: must be within (0, 1)")
    _check_run(scenarios, horizon)
    chunk = _chunk_size(chunk_size, contents.n_projects)
    cat = catastrophe or CatastropheParams()
    paths = np.concatenate(
        list(_loss_paths(contents, _flags(model), scenarios, horizon, seed, chunk, cat))
    )
    return _bisect_rate(paths, contents, target_ruin_probability, tolerance)


def _bisect_rate(paths: IntArray, contents: PoolContents, target: float, tolerance: float) -> float:
    exposure = contents.total_exposure
    contributions = int(contents.annual_contributions)

    def ruin(rate: float) -> float:
        balance = round(rate * exposure)
        return float((_exhaustion_years(paths, balance, contributions) > 0).mean())

    if ruin(0.0) <= target:
        return 0.0
    low, high = 0.0, 1.0
    if ruin(high) > target:
        raise StressTestRejected(
            f"target_ruin_probability: {target} cannot be met by holding the whole exposure"
        )
    while high - low > tolerance:
        middle = (low + high) / 2
        if ruin(middle) <= target:
            high = middle
        else:
            low = middle
    return high


# --------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class HistoricalLoss:
    """A pool loss that happened: year offset from the start of the replay, credits, cause."""

    year_offset: int
    quantity: int
    cause: str | None = None


@dataclass(frozen=True)
class BacktestResult:
    """A deterministic replay of historical pool losses against the balance."""

    balance: int
    horizon: int
    annual_contributions: int
    total_loss: int
    share_of_pool_consumed: float
    exhausted_year: int | None
    losses_by_year: list[int]
    balance_by_year: list[int]
    allocations: dict[str, dict[str, float | int]]

    def share_of_allocation(self, name: str) -> float:
        """Share of a named sub-allocation (e.g. the fire share) consumed by its cause."""
        return float(self.allocations[name]["share_consumed"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "model": "backtest",
            "balance": self.balance,
            "horizon": self.horizon,
            "annual_contributions": self.annual_contributions,
            "total_loss": self.total_loss,
            "share_of_pool_consumed": self.share_of_pool_consumed,
            "exhausted_year": self.exhausted_year,
            "losses_by_year": list(self.losses_by_year),
            "balance_by_year": list(self.balance_by_year),
            "allocations": {k: dict(v) for k, v in self.allocations.items()},
        }


def backtest(
    balance: int,
    losses: Iterable[HistoricalLoss | tuple[int, int] | tuple[int, int, str | None]],
    allocations: Mapping[str, int] | None = None,
    annual_contributions: int = 0,
    horizon: int | None = None,
) -> BacktestResult:
    """Replay historical pool losses; report the share of the pool and of each allocation used.

    ``allocations`` names sub-allocations of the pool (e.g. ``{"fire": 5_950_000}``); a loss
    whose ``cause`` matches a name consumes that allocation. Year offsets start at 0; the
    pool is exhausted in the first year whose cumulative loss reaches the balance plus the
    contributions received by then.
    """
    records = [_historical(item) for item in losses]
    if int(balance) < 0 or int(annual_contributions) < 0:
        raise StressTestRejected("balance and annual_contributions: must not be negative")
    span = max((r.year_offset for r in records), default=-1) + 1
    years = span if horizon is None else horizon
    if years < span or years < 1:
        raise StressTestRejected(f"horizon: {years} does not cover the last loss (year {span - 1})")
    by_year = np.zeros(years, dtype=np.int64)
    for record in records:
        by_year[record.year_offset] += record.quantity
    exhausted = _exhaustion_years(by_year[None, :], int(balance), int(annual_contributions))
    cumulative = np.cumsum(by_year)
    received = int(balance) + int(annual_contributions) * np.arange(1, years + 1)
    total = int(cumulative[-1])
    return BacktestResult(
        balance=int(balance),
        horizon=years,
        annual_contributions=int(annual_contributions),
        total_loss=total,
        share_of_pool_consumed=total / int(balance) if balance else math.inf,
        exhausted_year=int(exhausted[0]) - 1 if exhausted[0] else None,
        losses_by_year=[int(x) for x in by_year],
        balance_by_year=[int(x) for x in received - cumulative],
        allocations=_allocation_shares(records, allocations or {}),
    )


def _historical(item: HistoricalLoss | tuple[Any, ...]) -> HistoricalLoss:
    record = item if isinstance(item, HistoricalLoss) else HistoricalLoss(*item)
    if not isinstance(record.year_offset, int) or record.year_offset < 0:
        raise StressTestRejected(f"year_offset: {record.year_offset!r} must be a whole year >= 0")
    if not isinstance(record.quantity, int) or record.quantity < 0:
        raise StressTestRejected(f"quantity: {record.quantity!r} must be whole credits >= 0")
    return record


def _allocation_shares(
    records: list[HistoricalLoss], allocations: Mapping[str, int]
) -> dict[str, dict[str, float | int]]:
    shares: dict[str, dict[str, float | int]] = {}
    for name, allocation in allocations.items():
        if int(allocation) <= 0:
            raise StressTestRejected(f"allocations.{name}: must be a positive number of credits")
        used = sum(r.quantity for r in records if r.cause == name)
        shares[name] = {
            "allocation": int(allocation),
            "losses": int(used),
            "share_consumed": used / int(allocation),
        }
    return shares


# --------------------------------------------------------------------------- validation helpers


@dataclass(frozen=True)
class _Flags:
    catastrophe: bool
    rising: bool
    default: bool


_MODEL_FLAGS: dict[str, _Flags] = {
    "independent": _Flags(False, False, False),
    "catastrophe": _Flags(True, False, False),
    "rising": _Flags(False, True, False),
    "default": _Flags(False, False, True),
    "combined": _Flags(True, True, True),
}


def _flags(model: str) -> _Flags:
    if model not in _MODEL_FLAGS:
        raise StressTestRejected(f"model: {model!r} is not one of {', '.join(MODELS)}")
    return _MODEL_FLAGS[model]


def _levels(levels: float | Sequence[float]) -> list[float]:
    values = [float(levels)] if isinstance(levels, (int, float)) else [float(x) for x in levels]
    if not values or any(not 0.0 < q < 1.0 for q in values):
        raise StressTestRejected(f"levels: {values} must be probabilities within (0, 1)")
    return values


def _check_run(scenarios: int, horizon: int) -> None:
    if scenarios < 1:
        raise StressTestRejected("scenarios: must be at least 1")
    if horizon < 1:
        raise StressTestRejected("horizon: must be at least 1 year")


def _check_stylised(pool_size: int, event_loss: int, annual_probability: float) -> None:
    if pool_size < 1 or event_loss < 1:
        raise StressTestRejected("pool_size and event_loss: must be at least 1 credit")
    if not 0.0 <= annual_probability <= 1.0:
        raise StressTestRejected("annual_probability: must be within [0, 1]")


def _chunk_size(chunk_size: int | None, width: int) -> int:
    """Round to whole RNG blocks; by default about ``_CHUNK_CELLS`` cells per chunk."""
    if chunk_size is None:
        chunk_size = max(RNG_BLOCK, _CHUNK_CELLS // max(width, 1))
    if chunk_size < 1:
        raise StressTestRejected("chunk_size: must be at least 1")
    return max(1, -(-chunk_size // RNG_BLOCK)) * RNG_BLOCK


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class _Run:
    model: str
    scenarios: int
    horizon: int
    seed: int
    levels: list[float]


def _summarise(
    paths: Iterable[IntArray],
    balance: int,
    contributions: int,
    run: _Run,
    parameters: dict[str, Any],
) -> StressResult:
    """Fold chunks of loss paths into the published figures."""
    counts = np.zeros(run.horizon + 1, dtype=np.int64)
    totals: list[IntArray] = []
    for chunk in paths:
        years = _exhaustion_years(chunk, balance, contributions)
        counts += np.bincount(years, minlength=run.horizon + 1)
        totals.append(chunk.sum(axis=1))
    total = np.concatenate(totals)
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
        expected_loss=float(total.mean()),
        var={_level_key(q): value_at_risk(total, q) for q in run.levels},
        expected_shortfall={_level_key(q): expected_shortfall(total, q) for q in run.levels},
        loss_histogram=_histogram(total),
        parameters=parameters,
    )


def _distribution(counts: IntArray) -> dict[str, int]:
    """Scenarios exhausted in each year 1..horizon, and those never exhausted."""
    out = {str(year): int(n) for year, n in enumerate(counts[1:], start=1)}
    out["never"] = int(counts[0])
    return out


def _exhaustion_years(losses: IntArray, balance: int, contributions: int) -> IntArray:
    """Year (1-based) each scenario's pool is exhausted, 0 if never."""
    cumulative = np.cumsum(losses, axis=1)
    resources = balance + contributions * np.arange(losses.shape[1], dtype=np.int64)
    hit = (cumulative >= resources) & (cumulative > 0)
    first = hit.argmax(axis=1) + 1
    return np.where(hit.any(axis=1), first, 0).astype(np.int64)


def value_at_risk(losses: npt.ArrayLike, level: float) -> float:
    """Empirical VaR: the smallest loss x with P(L <= x) >= level."""
    ordered = np.sort(np.asarray(losses, dtype=np.float64))
    index = max(0, math.ceil(level * ordered.size - 1e-9) - 1)
    return float(ordered[min(index, ordered.size - 1)])


def expected_shortfall(losses: npt.ArrayLike, level: float) -> float:
    """Empirical ES: mean of the worst ``1 - level`` share of outcomes (fractional at the edge)."""
    ordered = np.sort(np.asarray(losses, dtype=np.float64))[::-1]
    tail = (1.0 - level) * ordered.size
    whole = min(math.floor(tail + 1e-9), ordered.size)
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


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class _Layout:
    """Per-pool lookup tables, built once per run."""

    groups: list[tuple[IntArray, FloatArray]]
    region_index: IntArray
    n_regions: int
    by_region: IntArray
    region_start: IntArray
    region_count: IntArray


def _layout(contents: PoolContents) -> _Layout:
    """Group projects by probability octave so thinning keeps at least half the candidates."""
    p = contents.annual_probability
    positive = np.flatnonzero(p > 0)
    octave = np.floor(np.log2(p[positive])).astype(np.int64)
    groups = []
    for value in np.unique(octave):
        cols = positive[octave == value]
        groups.append((cols.astype(np.int64), p[cols]))
    _, region_index = np.unique(contents.region, return_inverse=True)
    region_index = region_index.astype(np.int64).ravel()
    n_regions = int(region_index.max()) + 1
    by_region = np.argsort(region_index, kind="stable").astype(np.int64)
    count = np.bincount(region_index, minlength=n_regions).astype(np.int64)
    start = (np.cumsum(count) - count).astype(np.int64)
    return _Layout(groups, region_index, n_regions, by_region, start, count)


@dataclass(frozen=True)
class _Events:
    """One year's reversal events in a chunk: scenario row, project, shock flag, default flag."""

    row: IntArray
    col: IntArray
    shocked: BoolArray
    defaulted: BoolArray


def _loss_paths(
    contents: PoolContents,
    flags: _Flags,
    scenarios: int,
    horizon: int,
    seed: int,
    chunk: int,
    cat: CatastropheParams,
) -> Iterator[IntArray]:
    """Yield pool losses per scenario and year, one (chunk x horizon) array at a time."""
    layout = _layout(contents)
    streams = np.random.SeedSequence(seed).spawn(-(-scenarios // RNG_BLOCK))
    per_chunk = chunk // RNG_BLOCK
    for first in range(0, len(streams), per_chunk):
        gens = [np.random.default_rng(s) for s in streams[first : first + per_chunk]]
        start = first * RNG_BLOCK
        rows = min(scenarios, start + len(gens) * RNG_BLOCK) - start
        yield _chunk_losses(contents, layout, flags, cat, gens, rows, horizon)


def _chunk_losses(
    contents: PoolContents,
    layout: _Layout,
    flags: _Flags,
    cat: CatastropheParams,
    gens: list[np.random.Generator],
    rows: int,
    horizon: int,
) -> IntArray:
    remaining = np.tile(contents.exposure, (rows, 1))
    losses = np.zeros((rows, horizon), dtype=np.int64)
    growth = 1.0 + contents.hazard_trend if flags.rising else 1.0
    for year in range(horizon):
        factor = growth**year
        events = _chunk_events(contents, layout, flags, cat, gens, rows, factor)
        pool_loss = _apply(contents, remaining, events, flags, cat)
        per_row = np.bincount(events.row, weights=pool_loss.astype(np.float64), minlength=rows)
        losses[:, year] = np.rint(per_row).astype(np.int64)
    return losses


def _chunk_events(
    contents: PoolContents,
    layout: _Layout,
    flags: _Flags,
    cat: CatastropheParams,
    gens: list[np.random.Generator],
    rows: int,
    factor: float,
) -> _Events:
    parts = []
    for index, gen in enumerate(gens):
        offset = index * RNG_BLOCK
        block_rows = min(RNG_BLOCK, rows - offset)
        events = _block_events(gen, block_rows, contents, layout, flags, cat, factor)
        parts.append(replace(events, row=events.row + offset))
    return _Events(
        row=np.concatenate([e.row for e in parts]),
        col=np.concatenate([e.col for e in parts]),
        shocked=np.concatenate([e.shocked for e in parts]),
        defaulted=np.concatenate([e.defaulted for e in parts]),
    )


def _block_events(
    gen: np.random.Generator,
    rows: int,
    contents: PoolContents,
    layout: _Layout,
    flags: _Flags,
    cat: CatastropheParams,
    factor: float,
) -> _Events:
    """One block's events for one year; the draw order is fixed, so results are reproducible."""
    width = contents.n_projects
    keys = [_group_keys(gen, rows, width, cols, p, factor) for cols, p in layout.groups]
    shock: BoolArray | None = None
    if flags.catastrophe:
        shock = gen.random((rows, layout.n_regions)) < cat.annual_probability
        keys.append(_shock_keys(gen, shock, contents, layout, cat, factor))
    key = _union(keys) if flags.catastrophe else _concat(keys)
    row, col = np.divmod(key, width)
    shocked = (
        shock[row, layout.region_index[col]] if shock is not None else np.zeros(key.size, bool)
    )
    defaulted = (
        gen.random(key.size) < contents.default_probability
        if flags.default
        else np.ones(key.size, dtype=bool)
    )
    return _Events(row, col, shocked, defaulted)


def _concat(keys: list[IntArray]) -> IntArray:
    """Probability groups hold disjoint projects, so their events never coincide."""
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


def _union(keys: list[IntArray]) -> IntArray:
    """Base and catastrophe events may coincide: one event per project-year (sorted)."""
    key = np.sort(_concat(keys))
    return key[np.concatenate(([True], key[1:] != key[:-1]))] if key.size else key


def _group_keys(
    gen: np.random.Generator,
    rows: int,
    width: int,
    cols: IntArray,
    p: FloatArray,
    factor: float,
) -> IntArray:
    """Bernoulli events for one probability group: candidates at the group's top rate, thinned."""
    p_eff = np.minimum(p * factor, 1.0)
    top = float(p_eff.max())
    position = _bernoulli_positions(gen, rows * cols.size, top)
    row, local = np.divmod(position, cols.size)
    if float(p_eff.min()) < top:
        keep = gen.random(position.size) * top < p_eff[local]
        row, local = row[keep], local[keep]
    return row * width + cols[local]


def _bernoulli_positions(gen: np.random.Generator, n: int, p: float) -> IntArray:
    """Indices of successes among ``n`` Bernoulli(p) trials, via geometric gaps (sorted)."""
    if n <= 0 or p <= 0.0:
        return np.zeros(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n, dtype=np.int64)
    found: list[IntArray] = []
    last = -1
    while True:
        left = n - 1 - last
        draws = int(left * p + 4.0 * math.sqrt(left * p) + 16)
        # Clip huge gaps (tiny p) so the cumulative sum cannot overflow; any gap > n is out.
        gaps = np.minimum(gen.geometric(p, size=draws), n + 1).astype(np.int64)
        position = last + np.cumsum(gaps)
        if position[-1] >= n:
            found.append(position[position < n])
            return np.concatenate(found)
        found.append(position)
        last = int(position[-1])


def _shock_keys(
    gen: np.random.Generator,
    shock: BoolArray,
    contents: PoolContents,
    layout: _Layout,
    cat: CatastropheParams,
    factor: float,
) -> IntArray:
    """Extra events in shocked region-years, lifting each project's probability to p * m."""
    rows, regions = np.nonzero(shock)
    counts = layout.region_count[regions]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    within = np.arange(total) - np.repeat(ends - counts, counts)
    cols = layout.by_region[np.repeat(layout.region_start[regions], counts) + within]
    base = np.minimum(contents.annual_probability[cols] * factor, 1.0)
    lifted = np.minimum(base * cat.probability_multiplier, 1.0)
    extra = np.where(base < 1.0, (lifted - base) / np.maximum(1.0 - base, 1e-300), 0.0)
    hit = gen.random(total) < extra
    return np.repeat(rows, counts)[hit] * contents.n_projects + cols[hit]


def _apply(
    contents: PoolContents,
    remaining: IntArray,
    events: _Events,
    flags: _Flags,
    cat: CatastropheParams,
) -> IntArray:
    """Take each event's loss from the remaining exposure; return the part the pool bears."""
    row, col = events.row, events.col
    fraction = contents.loss_fraction[col]
    if flags.catastrophe:
        fraction = np.minimum(np.where(events.shocked, fraction * cat.loss_multiplier, fraction), 1)
    left = remaining[row, col]
    loss = np.rint(fraction * left).astype(np.int64)
    remaining[row, col] = left - loss
    if not flags.default:
        return loss
    avoidable = np.rint(loss * contents.avoidable_share[col]).astype(np.int64)
    return loss - avoidable + np.where(events.defaulted, avoidable, 0)


def _stylised_paths(
    event_loss: int,
    annual_probability: float,
    scenarios: int,
    horizon: int,
    seed: int,
    chunk: int,
) -> Iterator[IntArray]:
    """Loss paths of the stylised pool: L credits in each year an event happens."""
    streams = np.random.SeedSequence(seed).spawn(-(-scenarios // RNG_BLOCK))
    per_chunk = chunk // RNG_BLOCK
    for first in range(0, len(streams), per_chunk):
        blocks = []
        for index, stream in enumerate(streams[first : first + per_chunk]):
            rows = min(RNG_BLOCK, scenarios - (first + index) * RNG_BLOCK)
            events = np.random.default_rng(stream).random((rows, horizon)) < annual_probability
            blocks.append(events.astype(np.int64) * event_loss)
        yield np.concatenate(blocks)


# --------------------------------------------------------------------------- plotting


def plot_result(result: StressResult, path: str | Path) -> Path:
    """Write a PNG: ruin probability by year, and the distribution of total losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(path)
    figure, (ruin, spread) = plt.subplots(1, 2, figsize=(11, 4))
    years = np.arange(1, result.horizon + 1)
    ruin.plot(years, result.p_exhausted_by_year, color="tab:red")
    ruin.set(xlabel="year", ylabel="P(pool exhausted by year)", ylim=(0, 1))
    ruin.set_title(f"{result.model}: ruin probability ({result.scenarios} scenarios)")
    edges = np.asarray(result.loss_histogram["edges"])
    counts = np.asarray(result.loss_histogram["counts"]) / result.scenarios
    spread.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue")
    for key, value in result.var.items():
        spread.axvline(value, color="black", linestyle="--", label=f"VaR {key}")
    spread.set(xlabel="total pool loss over horizon (credits)", ylabel="share of scenarios")
    spread.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


__all__ = [
    "DEFAULT_LEVEL",
    "MODELS",
    "RNG_BLOCK",
    "BacktestResult",
    "CatastropheParams",
    "HistoricalLoss",
    "PoolContents",
    "StressResult",
    "StressTestRejected",
    "backtest",
    "binomial_exhaustion_probability",
    "expected_shortfall",
    "plot_result",
    "required_contribution_rate",
    "simulate",
    "simulate_stylised",
    "value_at_risk",
]
