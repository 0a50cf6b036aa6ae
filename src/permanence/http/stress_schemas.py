"""The shapes of the stress-test answers, so ``/openapi.json`` describes them.

A run's answer is what ``permanence stress-test --json`` prints: a simulated run (the five
pool models and the stylised pool: :meth:`risk.engine.StressResult.to_dict` plus the pool
and what the use case adds) or a backtest (:meth:`risk.engine.BacktestResult.to_dict` plus
the replayed losses); ``model`` tells which. A recorded run keeps the results listed by
:data:`risk.stress_test.RECORDED_RESULTS` or :data:`~risk.stress_test.BACKTEST_RESULTS`;
runs recorded by older versions may lack the newer keys (and carry older ones), so every
recorded result is optional.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, RootModel

from permanence.http.schemas import Answer, Day, Instant, Tonnes

ByLevel = dict[str, float]
"""A figure per VaR/ES level, keyed by the level as written (``"0.995"``)."""

Parameters = dict[str, JsonValue]

class Definitions(Answer):
    """What each published figure measures, published with it."""

    exhausted: str
    years: str
    one_year_var: str | None = None
    horizon_loss_quantile: str | None = None
    expected_shortfall: str | None = None
    loss_histogram: str | None = None


class LossHistogram(Answer):
    """The loss summed over the horizon: ``counts[i]`` scenarios within
    ``edges[i]..edges[i+1]``."""

    edges: list[float]
    counts: list[float]


class AllocationUse(Answer):
    """A backtest sub-allocation and how much of it its cause consumed."""

    allocation: Tonnes
    losses: Tonnes
    share_consumed: float


class ReplayedLoss(Answer):
    """A loss the pool bore, replayed by the backtest."""

    on: Day = Field(description="The day the pool became liable.")
    quantity: Tonnes
    cause: str | None
    vintage_id: str
    reversal_id: str


RECORDED_DESCRIPTION = ("The run id on the pool's record (``ST1``, ...); null: not recorded "
                        "(a GET, ``record=false`` or the stylised pool).")


class SimulatedRun(Answer):
    """A Monte Carlo run: a pool model, or the stylised pool (no ``pool`` nor ``as_of``)."""

    model: Literal["independent", "catastrophe", "rising", "default", "combined", "stylised"]
    scenarios: int
    horizon: int = Field(description="Years simulated, numbered from 1.")
    seed: int
    levels: list[float]
    definitions: Definitions
    p_exhausted: float = Field(description="Share of scenarios in which the pool is exhausted "
                               "(cumulative loss exceeds the balance plus contributions).")
    standard_error: float
    exact_p_exhausted: float | None = Field(description="Stylised pool: the closed form.")
    p_exhausted_by_year: list[float] = Field(description="P(exhausted by year t), t = 1..horizon.")
    exhaustion_year_distribution: dict[str, int] = Field(
        description="Scenarios exhausted in each year, and ``never``.")
    one_year_expected_loss: float
    one_year_var: ByLevel = Field(description="Solvency II VaR: the quantile of year 1's loss.")
    one_year_expected_shortfall: ByLevel
    horizon_expected_loss: float
    horizon_loss_quantile: ByLevel = Field(
        description="The quantile of the loss summed over the horizon (not a one-year VaR).")
    horizon_expected_shortfall: ByLevel
    loss_histogram: LossHistogram
    parameters: Parameters = Field(description="The request as run, with the pool's figures.")
    pool: str | None = None
    as_of: Day | None = None
    current_buffer_rate: float | None = Field(
        None, description="Pool models: balance / exposure (null without exposure).")
    required_contribution_rate: float | None = Field(
        None, description="With ``target_ruin``: the buffer rate that keeps ruin under it.")
    within_target: bool | None = Field(None, description="With ``target_ruin``.")
    recorded: str | None = Field(description=RECORDED_DESCRIPTION)


class BacktestRun(Answer):
    """The pool's recorded losses replayed against its balance; years numbered from 1."""

    model: Literal["backtest"]
    balance: Tonnes = Field(description="The balance replayed: contributions less holds.")
    horizon: int
    annual_contributions: Tonnes
    total_loss: Tonnes
    share_of_pool_consumed: float | None = Field(
        description="total_loss / balance; null when the balance is zero.")
    definitions: Definitions
    exhausted_year: int | None
    losses_by_year: list[Tonnes]
    balance_by_year: list[Tonnes]
    allocations: dict[str, AllocationUse]
    pool: str
    as_of: Day
    first_year: int = Field(description="The calendar year of year 1.")
    exhausted_in: int | None = Field(description="The calendar year of ``exhausted_year``.")
    parameters: Parameters
    losses: list[ReplayedLoss]
    recorded: str | None = Field(description=RECORDED_DESCRIPTION)


class StressTestAnswer(RootModel[Annotated[SimulatedRun | BacktestRun,
                                           Field(discriminator="model")]]):
    """A stress test's answer, as ``permanence stress-test --json`` prints it."""


class RecordedResults(Answer):
    """What a run recorded: a simulated run's figures or a backtest's (older runs may lack
    the newer keys)."""

    definitions: dict[str, str] | None = None
    p_exhausted: float | None = None
    standard_error: float | None = None
    exact_p_exhausted: float | None = None
    p_exhausted_by_year: list[float] | None = None
    one_year_expected_loss: float | None = None
    one_year_var: ByLevel | None = None
    one_year_expected_shortfall: ByLevel | None = None
    horizon_expected_loss: float | None = None
    horizon_loss_quantile: ByLevel | None = None
    horizon_expected_shortfall: ByLevel | None = None
    loss_histogram: LossHistogram | None = None
    current_buffer_rate: float | None = None
    required_contribution_rate: float | None = None
    within_target: bool | None = None
    total_loss: Tonnes | None = None
    share_of_pool_consumed: float | None = None
    exhausted_year: int | None = None
    exhausted_in: int | None = None
    losses_by_year: list[Tonnes] | None = None
    allocations: dict[str, AllocationUse] | None = None


class RecordedRun(Answer):
    """One recorded run: when the pool was tested, by whom, with what, and what it found."""

    run_id: str
    pool: str
    on: Day = Field(description="The business date the pool was tested as of.")
    recorded_at: Instant
    recorded_by: str | None = Field(description="Who recorded it (``token:NAME``, ``cli``).")
    model: str
    parameters: Parameters
    results: RecordedResults


class RecordedRuns(Answer):
    """A pool's recorded runs, newest recorded first."""

    pool: str
    runs: list[RecordedRun]


__all__ = [
    "AllocationUse", "BacktestRun", "Definitions", "LossHistogram",
    "RecordedResults", "RecordedRun", "RecordedRuns", "ReplayedLoss", "SimulatedRun",
    "StressTestAnswer",
]
