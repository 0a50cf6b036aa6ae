"""HTTP face of the buffer stress test (CIWP recommendation 3): run it, and list the record.

- ``GET /stress-test``: run a test with query parameters; never records (a GET is safe).
- ``POST /stress-test``: the same parameters as a JSON body; records the run on the pool
  unless ``record`` is false (the stylised pool is never recorded).
- ``GET /pools/{pool}/stress-tests``: the pool's recorded runs, newest first.

Parameters and output match ``permanence stress-test --json``. Bad values are 422 (as
every malformed input of the API), an unknown pool 404, a rejected run 400. Scenarios are
capped at :data:`MAX_SCENARIOS` so one request cannot hold a worker for long.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger.assessment_service import latest_stress_tests, record_stress_test
from permanence.parsing import UsageError, to_date
from permanence.runtime import Runtime
from projections import queries
from projections.pool_contents import (
    ContentsOptions,
    StressOutcome,
    StressSpec,
    only_pool,
    parse_allocations,
    run_stress_test,
)
from projections.stress import CatastropheParams, StressTestRejected

MAX_SCENARIOS = 200_000
"""More than any published test needs; larger runs belong on the command line."""

router = APIRouter(tags=["stress"])


def _fresh_runtime(request: Request) -> Runtime:
    """The API's runtime, caught up (imported late: ``permanence.http`` imports this module)."""
    from permanence.http import fresh_runtime

    return fresh_runtime(request)


FreshRuntime = Annotated[Runtime, Depends(_fresh_runtime)]


class StressTestRequest(BaseModel):
    """One stress test, as ``permanence stress-test`` takes it (dashes become underscores)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("independent", description="independent|catastrophe|rising|default|"
                       "combined|backtest|stylised")
    pool: str | None = Field(None, description="Pool (default: the ledger's only pool).")
    as_of: str | None = Field(None, description="Business date YYYY-MM-DD (default today).")
    scenarios: int = Field(10_000, description=f"Simulated futures (at most {MAX_SCENARIOS}).")
    horizon: int = Field(100, ge=1, le=500, description="Years simulated (1 to 500).")
    seed: int = 0
    level: list[float] = Field(default_factory=lambda: [0.995], description="VaR/ES levels.")
    target_ruin: float | None = None
    loss_fraction: float = 1.0
    avoidable_share: float = 0.0
    default_probability: float = 0.5
    hazard_trend: float = 0.02
    annual_contributions: int = Field(0, ge=0, le=10**12)
    region_by: str = "program"
    cat_probability: float = 0.02
    cat_probability_multiplier: float = 5.0
    cat_loss_multiplier: float = 1.5
    allocation: dict[str, int] = Field(
        default_factory=dict, description="Backtest: cause -> credits."
    )
    since: str | None = None
    pool_size: int | None = None
    event_loss: int | None = None
    annual_probability: float | None = None


class StressTestGet(StressTestRequest):
    """Query form: the backtest's allocations as repeated ``allocation=CAUSE=CREDITS``."""

    allocation: list[str] = Field(default_factory=list)  # type: ignore[assignment]


@router.get("/stress-test", summary="Run a stress test (not recorded)")
def get_stress_test(
    rt: FreshRuntime, params: Annotated[StressTestGet, Query()]
) -> dict[str, Any]:
    """Run a stress test of a pool, or of the stylised pool; the run is not recorded."""
    try:
        allocations = parse_allocations(params.allocation)
    except StressTestRejected as e:
        raise UsageError(str(e)) from None
    request = StressTestRequest(**{**params.model_dump(), "allocation": allocations})
    outcome = _run(rt, request)
    outcome.output["recorded"] = None
    return outcome.output


@router.post("/stress-test", summary="Run a stress test and record it on the pool")
def post_stress_test(
    rt: FreshRuntime,
    request: Request,
    body: StressTestRequest,
    record: Annotated[bool, Query(description="Record the run (pool models).")] = True,
) -> dict[str, Any]:
    """Run a stress test; a pool run is recorded (parameters and results) on its pool.

    The run is recorded as made by the request's token (``token:NAME``) when auth is on,
    else by the configured actor or ``http``; recording holds the app's refresh lock, as
    every write of the API does, so this process never projects one page twice.
    """
    outcome = _run(rt, body)
    run_id = None
    if record and outcome.recordable:
        principal = getattr(request.state, "principal", None)
        actor = principal.actor if principal is not None else (
            getattr(request.app.state.settings, "actor", None) or "http"
        )
        pool, as_of = outcome.parameters["pool"], date.fromisoformat(outcome.parameters["as_of"])
        with request.app.state.refresh_lock, rt.app.acting_as(actor):
            run_id = record_stress_test(rt.app, pool, as_of, outcome.parameters, outcome.results)
    outcome.output["recorded"] = run_id
    return outcome.output


@router.get("/pools/{pool}/stress-tests", summary="A pool's recorded stress tests")
def get_pool_stress_tests(
    rt: FreshRuntime,
    pool: str,
    limit: Annotated[int | None, Query(ge=1, description="Only the newest N runs.")] = None,
) -> dict[str, Any]:
    """Every recorded run of the pool (parameters and results), newest first."""
    runs = latest_stress_tests(rt.app, pool, limit)
    if not runs and pool not in queries.pools(rt.engine):
        raise HTTPException(status_code=404, detail=f"pool: no pool named {pool!r}")
    return {"pool": pool, "runs": runs}


def _run(rt: Runtime, body: StressTestRequest) -> StressOutcome:
    spec = _spec(rt, body)
    try:
        return run_stress_test(spec, rt.engine, rt.app, rt.catalog)
    except StressTestRejected as e:
        if str(e).startswith("pool: no pool named"):
            raise HTTPException(status_code=404, detail=str(e)) from None
        raise UsageError(str(e)) from None


def _spec(rt: Runtime, body: StressTestRequest) -> StressSpec:
    if body.scenarios > MAX_SCENARIOS:
        raise UsageError(f"scenarios: {body.scenarios} is over the API's limit of {MAX_SCENARIOS}")
    try:
        pool = body.pool
        if pool is None and body.model != "stylised":
            pool = only_pool(rt.engine)
        return StressSpec(
            model=body.model,
            pool=pool,
            as_of=to_date(body.as_of, "as_of") or date.today(),
            scenarios=body.scenarios,
            horizon=body.horizon,
            seed=body.seed,
            levels=tuple(body.level) or (0.995,),
            target_ruin=body.target_ruin,
            options=ContentsOptions(
                body.loss_fraction, body.avoidable_share, body.default_probability,
                body.hazard_trend, body.annual_contributions, body.region_by,
            ),
            catastrophe=CatastropheParams(
                body.cat_probability, body.cat_probability_multiplier, body.cat_loss_multiplier
            ),
            allocations=dict(body.allocation),
            since=to_date(body.since, "since"),
            pool_size=body.pool_size,
            event_loss=body.event_loss,
            annual_probability=body.annual_probability,
        )
    except StressTestRejected as e:
        raise UsageError(str(e)) from None


__all__ = ["MAX_SCENARIOS", "StressTestRequest", "router"]
