"""The backtest: the pool's historical losses replayed, deterministically, against its balance.

Years are numbered from 1 as in the simulated models: year 1 is the first replayed year.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.engine.summary import EXHAUSTED_MEANS, exhaustion_years
from risk.errors import StressTestRejected

BACKTEST_YEARS_MEAN = (
    "years are numbered from 1: year 1 is the first replayed year (first_year when given)"
)


@dataclass(frozen=True)
class HistoricalLoss:
    """A pool loss that happened: years after the replay's first year (0: in it), credits, cause."""

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
            "definitions": {"exhausted": EXHAUSTED_MEANS, "years": BACKTEST_YEARS_MEAN},
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
    whose ``cause`` matches a name consumes that allocation. A loss's ``year_offset`` counts
    years after the first replayed year (0: in it); the result numbers years from 1, as the
    simulated models do: the pool is exhausted in the first year whose cumulative loss
    exceeds the balance plus the contributions received by then (``exhausted_year``).
    """
    records = [_historical(item) for item in losses]
    if int(balance) < 0 or int(annual_contributions) < 0:
        raise StressTestRejected("balance and annual_contributions: must not be negative")
    span = max((r.year_offset for r in records), default=-1) + 1
    years = span if horizon is None else horizon
    if years < span or years < 1:
        raise StressTestRejected(f"horizon: {years} does not cover the last loss (year {span})")
    by_year = np.zeros(years, dtype=np.int64)
    for record in records:
        by_year[record.year_offset] += record.quantity
    exhausted = exhaustion_years(by_year[None, :], int(balance), int(annual_contributions))
    cumulative = np.cumsum(by_year)
    received = int(balance) + int(annual_contributions) * np.arange(1, years + 1)
    total = int(cumulative[-1])
    return BacktestResult(
        balance=int(balance),
        horizon=years,
        annual_contributions=int(annual_contributions),
        total_loss=total,
        share_of_pool_consumed=total / int(balance) if balance else math.inf,
        exhausted_year=int(exhausted[0]) if exhausted[0] else None,
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


__all__ = ["BacktestResult", "HistoricalLoss", "backtest"]
