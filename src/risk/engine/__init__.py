"""Monte Carlo stress tester for a pooled buffer (CIWP recommendation 3; domain.md section 6).

Pure numpy, no plotting: the caller builds a :class:`PoolContents` (buffer balance, exposure
and hazard per project) and gets back plain numbers it can publish. One module per concern:

- :mod:`~risk.engine.common`: array types, random streams, chunks, progress callbacks.
- :mod:`~risk.engine.contents`: the inputs (:class:`PoolContents`, :class:`CatastropheParams`).
- :mod:`~risk.engine.summary`: loss paths to published figures (:class:`StressResult`):
  the one-year VaR, the horizon loss quantile, expected shortfall beside each, and what
  "exhausted" means.
- :mod:`~risk.engine.pool_models`: :func:`simulate`, the independent, catastrophe, rising,
  default and combined models.
- :mod:`~risk.engine.stylised`: the stylised pool and its binomial closed form.
- :mod:`~risk.engine.backtest`: historical losses replayed against the balance.
- :mod:`~risk.engine.required_rate`: the buffer rate keeping ruin under a target.

Years are numbered from 1 in every model and in the backtest.
"""

from __future__ import annotations

from risk.engine.backtest import BacktestResult, HistoricalLoss, backtest
from risk.engine.common import DEFAULT_LEVEL, RNG_BLOCK, Progress
from risk.engine.contents import CatastropheParams, PoolContents
from risk.engine.pool_models import MODELS, simulate
from risk.engine.required_rate import required_contribution_rate
from risk.engine.stylised import binomial_exhaustion_probability, simulate_stylised
from risk.engine.summary import (
    EXHAUSTED_MEANS,
    StressResult,
    definitions,
    expected_shortfall,
    value_at_risk,
)
from risk.errors import StressTestRejected

__all__ = [
    "DEFAULT_LEVEL",
    "EXHAUSTED_MEANS",
    "MODELS",
    "RNG_BLOCK",
    "BacktestResult",
    "CatastropheParams",
    "HistoricalLoss",
    "PoolContents",
    "Progress",
    "StressResult",
    "StressTestRejected",
    "backtest",
    "binomial_exhaustion_probability",
    "definitions",
    "expected_shortfall",
    "required_contribution_rate",
    "simulate",
    "simulate_stylised",
    "value_at_risk",
]
