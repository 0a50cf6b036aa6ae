"""The stress-test use case, written once for every face: name the pool, run, record.

The CLI calls :func:`run_and_record`; the HTTP API calls :func:`run_stress_test` inside its
time limit and :func:`record_outcome` afterwards under its write lock (a GET never records).
Rejections are :class:`~risk.errors.StressTestRejected` (a rule broken) or
:class:`~risk.errors.UnknownPool`, members of the ledger's error family; nothing is
written unless the run completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from ledger.application import LedgerApp
from ledger.profiles import ProfileCatalog
from risk.engine import (
    HistoricalLoss,
    Progress,
    StressResult,
    backtest,
    required_contribution_rate,
    simulate,
    simulate_stylised,
)
from risk.errors import StressTestRejected
from risk.pool_contents import (
    assessed_categories,
    check_pool,
    only_pool,
    pool_balance,
    pool_contents,
    pool_losses,
)
from risk.service import record_stress_test
from risk.spec import StressModel, StressSpec

#: Figures a simulated run records: the headline numbers with what they mean, the ruin
#: curve and the horizon loss histogram (the report draws both from stored runs). The
#: per-year exhaustion counts are reproducible from the parameters and seed.
RECORDED_RESULTS = (
    "definitions",
    "p_exhausted",
    "standard_error",
    "exact_p_exhausted",
    "p_exhausted_by_year",
    "one_year_expected_loss",
    "one_year_var",
    "one_year_expected_shortfall",
    "horizon_expected_loss",
    "horizon_loss_quantile",
    "horizon_expected_shortfall",
    "loss_histogram",
)
BACKTEST_RESULTS = (
    "definitions", "total_loss", "share_of_pool_consumed", "exhausted_year", "exhausted_in",
    "losses_by_year", "allocations",
)


@dataclass(frozen=True)
class StressOutcome:
    """What a run prints, what it records, and the engine's result (for charts)."""

    spec: StressSpec
    output: dict[str, Any]
    parameters: dict[str, Any]
    results: dict[str, Any]
    result: StressResult | None = None

    @property
    def recordable(self) -> bool:
        """Pool runs are recorded; the stylised pool is no pool of the ledger."""
        return self.spec.on_a_pool


def resolve_pool(spec: StressSpec, engine: Engine | None) -> StressSpec:
    """The spec naming its pool: the ledger's only pool when none is given; known pools only."""
    if not spec.on_a_pool:
        return spec
    if engine is None:
        raise StressTestRejected("pool models need the ledger's store")
    named = spec if spec.pool is not None else spec.naming(only_pool(engine))
    assert named.pool is not None
    check_pool(engine, named.pool)
    return named


def run_stress_test(
    spec: StressSpec,
    engine: Engine | None = None,
    app: LedgerApp | None = None,
    catalog: ProfileCatalog | None = None,
    progress: Progress | None = None,
) -> StressOutcome:
    """Run one stress test; pool models read the pool from ``engine`` (and ``app``).

    ``progress`` is told (chunks done, chunks in all) as the simulation goes; with a
    target ruin probability the search for the rate is a second pass, counted in the total.
    """
    if spec.model is StressModel.stylised:
        return _stylised(spec, progress)
    named = resolve_pool(spec, engine)
    if engine is None or app is None or named.as_of is None:
        raise StressTestRejected("pool: name the pool and the as-of date")
    if named.model is StressModel.backtest:
        return _backtest(named, engine, app)
    return _simulated(named, engine, app, catalog, progress)


def record_outcome(app: LedgerApp, outcome: StressOutcome) -> str | None:
    """Record a pool run on its pool's stress-test record; returns the run id (None: stylised)."""
    if not outcome.recordable:
        return None
    spec = outcome.spec
    assert spec.pool is not None and spec.as_of is not None
    return record_stress_test(app, spec.pool, spec.as_of, outcome.parameters, outcome.results)


def run_and_record(
    spec: StressSpec,
    engine: Engine | None,
    app: LedgerApp | None,
    catalog: ProfileCatalog | None = None,
    record: bool = True,
    progress: Progress | None = None,
) -> StressOutcome:
    """Run, then record the run unless ``record`` is false; ``output["recorded"]`` says."""
    outcome = run_stress_test(spec, engine, app, catalog, progress)
    run_id = None
    if record and outcome.recordable:
        assert app is not None
        run_id = record_outcome(app, outcome)
    outcome.output["recorded"] = run_id
    return outcome


# ---------------------------------------------------------------------- the three kinds


def _simulated(
    spec: StressSpec,
    engine: Engine,
    app: LedgerApp,
    catalog: ProfileCatalog | None,
    progress: Progress | None,
) -> StressOutcome:
    assert spec.pool is not None and spec.as_of is not None
    figures = pool_contents(
        engine, spec.pool, spec.as_of, catalog, spec.options(),
        assessed_categories(app, engine, spec.pool), known_at=spec.known_at,
    )
    passes = 2 if spec.target_ruin is not None else 1
    result = simulate(
        figures.contents, spec.model.value, spec.scenarios, spec.horizon, spec.seed,
        spec.levels, catastrophe=spec.catastrophe(), progress=_phase(progress, 0, passes),
    )
    parameters = {**spec.parameters(), "pool_figures": figures.summary()}
    output = {**result.to_dict(), "pool": spec.pool, "as_of": spec.as_of.isoformat(),
              "parameters": parameters}
    results = {k: output[k] for k in RECORDED_RESULTS}
    exposure = figures.contents.total_exposure
    balance = figures.contents.buffer_balance
    results["current_buffer_rate"] = balance / exposure if exposure else None
    if spec.target_ruin is not None:
        rate = required_contribution_rate(
            figures.contents, spec.target_ruin, spec.model.value, spec.scenarios, spec.horizon,
            spec.seed, catastrophe=spec.catastrophe(), progress=_phase(progress, 1, passes),
        )
        results["required_contribution_rate"] = rate
        results["within_target"] = result.p_exhausted <= spec.target_ruin
    output |= {k: results[k] for k in results if k not in output}
    return StressOutcome(spec, output, parameters, results, result)


def _stylised(spec: StressSpec, progress: Progress | None) -> StressOutcome:
    assert spec.pool_size is not None and spec.event_loss is not None
    assert spec.annual_probability is not None
    result = simulate_stylised(
        spec.pool_size, spec.event_loss, spec.annual_probability, spec.horizon,
        spec.scenarios, spec.seed, spec.levels, progress=progress,
    )
    output = result.to_dict()
    parameters = {**spec.parameters(), **output["parameters"]}
    output["parameters"] = parameters
    results = {k: output[k] for k in RECORDED_RESULTS}
    return StressOutcome(spec, output, parameters, results, result)


def _backtest(spec: StressSpec, engine: Engine, app: LedgerApp) -> StressOutcome:
    assert spec.pool is not None and spec.as_of is not None
    losses = pool_losses(app, engine, spec.pool, spec.as_of, spec.known_at)
    start = spec.since.year if spec.since else (losses[0].on.year if losses else spec.as_of.year)
    early = [x for x in losses if x.on.year < start]
    if early:
        raise StressTestRejected(f"since: the pool's first loss ({early[0].on}) precedes it")
    balance = pool_balance(engine, spec.pool, spec.as_of, spec.known_at)
    gross = balance["contributions"] - balance["on_hold"]
    history = [HistoricalLoss(x.on.year - start, x.quantity, x.cause) for x in losses]
    result = backtest(
        gross, history, dict(spec.allocation), spec.annual_contributions,
        horizon=None if history else 1,
    )
    parameters = {**spec.parameters(), "first_year": start, "pool_figures": {
        "balance": balance, "replayed_balance": gross, "losses": len(losses)}}
    exhausted_in = None if result.exhausted_year is None else start + result.exhausted_year - 1
    output = {**result.to_dict(), "pool": spec.pool, "as_of": spec.as_of.isoformat(),
              "first_year": start, "exhausted_in": exhausted_in, "parameters": parameters,
              "losses": [{"on": x.on.isoformat(), "quantity": x.quantity, "cause": x.cause,
                          "vintage_id": x.vintage_id, "reversal_id": x.reversal_id}
                         for x in losses]}
    results = {k: output[k] for k in BACKTEST_RESULTS}
    return StressOutcome(spec, output, parameters, results)


def _phase(progress: Progress | None, index: int, passes: int) -> Progress | None:
    """Report pass ``index`` of ``passes`` equal passes as one count of chunks."""
    if progress is None:
        return None
    report = progress

    def told(done: int, total: int) -> None:
        report(index * total + done, passes * total)

    return told


__all__ = [
    "BACKTEST_RESULTS",
    "RECORDED_RESULTS",
    "StressOutcome",
    "record_outcome",
    "resolve_pool",
    "run_and_record",
    "run_stress_test",
]
