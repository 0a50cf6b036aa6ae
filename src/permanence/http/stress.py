"""HTTP face of the buffer stress test (CIWP recommendation 3): run it, and list the record.

- ``GET /stress-test``: run a test with query parameters; never records (a GET is safe).
- ``POST /stress-test``: the same parameters as a JSON body; records the run on the pool
  unless ``record`` is false (the stylised pool is never recorded). Like every write it
  needs a token (``registry`` or ``trustee``), even while reads are open.
- ``GET /pools/{pool}/stress-tests``: the pool's recorded runs, newest first.

Parameters and output match ``permanence stress-test --json``. Every parameter is range
checked (422 naming it, never a 500); an unknown pool is 404, a rejected run 400.

Compute budget: a request may simulate at most :data:`MAX_POOL_YEARS` scenario-years
(scenarios x horizon) and :data:`MAX_CELLS` scenario-year-projects (x the pool's projects
with exposure); above either it is 422 and the message states the bound. A run happens in
a worker thread, off the event loop, one at a time per process (429 with ``Retry-After``
while another runs) and is stopped after :data:`TIME_LIMIT_SECONDS` (503). Larger runs
belong on the command line (``permanence stress-test``), which has no such limits.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ledger.limits import EARLIEST, LATEST, MAX_TONNES
from permanence.parsing import UsageError, to_date, to_timestamp
from permanence.runtime import Runtime
from projections import queries
from risk.engine import CatastropheParams, StressTestRejected
from risk.pool_contents import (
    ContentsOptions,
    StressOutcome,
    StressSpec,
    only_pool,
    parse_allocations,
    run_stress_test,
)
from risk.service import latest_stress_tests, record_stress_test

T = TypeVar("T")

MAX_SCENARIOS = 200_000
"""More than any published test needs; larger runs belong on the command line."""
MAX_POOL_YEARS = 2_000_000
"""Scenarios x horizon per request (20,000 scenarios over 100 years; 4,000 over 500):
a few seconds of one core for a pool of up to a hundred projects (docs/benchmarks.md)."""
MAX_CELLS = 1_000_000_000
"""Scenarios x horizon x projects per request: large pools cost per project as well."""
TIME_LIMIT_SECONDS = 30.0
"""A run still going after this long is stopped and the request answered 503."""
BUSY_RETRY_SECONDS = 5
"""``Retry-After`` of a 429 while another run holds the process's stress-test slot."""

Model = Literal["independent", "catastrophe", "rising", "default", "combined", "backtest",
                "stylised"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Level = Annotated[float, Field(gt=0.0, lt=1.0)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                        pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
Day = Annotated[str, StringConstraints(max_length=10)]
Tonnes = Annotated[int, Field(ge=1, le=MAX_TONNES)]

router = APIRouter(tags=["stress"])


def _fresh_runtime(request: Request) -> Runtime:
    """The API's runtime, caught up (imported late: ``permanence.http.app`` imports this module)."""
    from permanence.http.app import fresh_runtime

    return fresh_runtime(request)


FreshRuntime = Annotated[Runtime, Depends(_fresh_runtime)]


class StressTestRequest(BaseModel):
    """One stress test, as ``permanence stress-test`` takes it (dashes become underscores)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: Model = Field("independent", description="The loss model.")
    pool: Name | None = Field(None, description="Pool (default: the ledger's only pool).")
    as_of: Day | None = Field(None, description=f"Business date YYYY-MM-DD, {EARLIEST} to "
                              f"{LATEST} (default today).")
    known_at: str | None = Field(None, max_length=40, description=(
        "Only what had been recorded by this ISO timestamp (a bare date: the end of that day, "
        "UTC)."))
    scenarios: int = Field(10_000, ge=1, le=MAX_SCENARIOS,
                           description=f"Simulated futures (1 to {MAX_SCENARIOS:,}).")
    horizon: int = Field(100, ge=1, le=500, description="Years simulated (1 to 500).")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Random seed (0 to 2^63-1).")
    level: list[Level] = Field(default_factory=lambda: [0.995], min_length=1, max_length=8,
                               description="VaR/ES levels, each within (0, 1).")
    target_ruin: float | None = Field(None, ge=0.0, lt=1.0)
    loss_fraction: Probability = 1.0
    avoidable_share: Probability = 0.0
    default_probability: Probability = 0.5
    hazard_trend: float = Field(0.02, gt=-1.0, le=1.0,
                                description="Yearly growth of the hazard, above -1 and at most 1.")
    annual_contributions: int = Field(0, ge=0, le=MAX_TONNES)
    region_by: Literal["program", "project"] = "program"
    cat_probability: Probability = 0.02
    cat_probability_multiplier: float = Field(5.0, ge=1.0, le=1_000.0)
    cat_loss_multiplier: float = Field(1.5, ge=1.0, le=1_000.0)
    allocation: dict[Name, Tonnes] = Field(
        default_factory=dict, max_length=32, description="Backtest: cause -> credits."
    )
    since: Day | None = None
    pool_size: Tonnes | None = None
    event_loss: Tonnes | None = None
    annual_probability: Probability | None = None


class StressTestGet(StressTestRequest):
    """Query form: the backtest's allocations as repeated ``allocation=CAUSE=CREDITS``."""

    allocation: list[Annotated[str, StringConstraints(max_length=80)]] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=32)


@router.get("/stress-test", summary="Run a stress test (not recorded)")
async def get_stress_test(
    rt: FreshRuntime, params: Annotated[StressTestGet, Query()]
) -> dict[str, Any]:
    """Run a stress test of a pool, or of the stylised pool; the run is not recorded."""
    try:
        allocations = parse_allocations(params.allocation)
    except StressTestRejected as e:
        raise UsageError(str(e)) from None
    request = StressTestRequest(**{**params.model_dump(), "allocation": allocations})
    outcome = await run_limited(lambda: _run(rt, request))
    outcome.output["recorded"] = None
    return outcome.output


@router.post("/stress-test", summary="Run a stress test and record it on the pool")
async def post_stress_test(
    rt: FreshRuntime,
    request: Request,
    body: StressTestRequest,
    record: Annotated[bool, Query(description="Record the run (pool models).")] = True,
) -> dict[str, Any]:
    """Run a stress test; a pool run is recorded (parameters and results) on its pool.

    The run is recorded as made by the request's token (``token:NAME``); recording holds
    the app's refresh lock, as every write of the API does, so this process never projects
    one page twice. It happens after the run, outside the time limit's worker.
    """
    outcome = await run_limited(lambda: _run(rt, body))
    run_id = None
    if record and outcome.recordable:
        actor = request.state.principal.actor  # the guard let no write through without one
        pool, as_of = outcome.parameters["pool"], date.fromisoformat(outcome.parameters["as_of"])

        def save() -> str:
            with request.app.state.refresh_lock, rt.app.acting_as(actor):
                return record_stress_test(rt.app, pool, as_of, outcome.parameters,
                                          outcome.results)

        run_id = await run_in_threadpool(save)
    outcome.output["recorded"] = run_id
    return outcome.output


@router.get("/pools/{pool}/stress-tests", summary="A pool's recorded stress tests")
def get_pool_stress_tests(
    rt: FreshRuntime,
    pool: Annotated[str, StringConstraints(max_length=64)],
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="Only the newest N runs.")] = None,
) -> dict[str, Any]:
    """Every recorded run of the pool (parameters and results), newest first."""
    runs = latest_stress_tests(rt.app, pool, limit)
    if not runs and pool not in queries.pools(rt.engine):
        raise HTTPException(status_code=404, detail=f"pool: no pool named {pool!r}")
    return {"pool": pool, "runs": runs}


# ---------------------------------------------------------------------- budget and time limit


class StressTimeLimit(Exception):
    """Raised inside a worker thread whose run passed :data:`TIME_LIMIT_SECONDS`."""


_slot = threading.BoundedSemaphore(1)
"""One run at a time per process: the simulation is CPU-bound."""


async def run_limited(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread, off the event loop, stopped after the time limit.

    429 while another run holds the slot; 503 when the limit passes (the worker is
    interrupted at its next Python instruction and gives the slot back as it ends).
    """
    if not _slot.acquire(blocking=False):
        raise HTTPException(
            status_code=429, headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            detail="stress-test: another run is in progress on this server (one at a time); "
                   f"retry in {BUSY_RETRY_SECONDS} s",
        )
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done() or isinstance(error, StressTimeLimit):  # answered 503 already
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def worker() -> None:
        try:
            result = work()
        except BaseException as e:  # noqa: BLE001 - handed to the request, whatever it is
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, result, None)
        finally:
            _slot.release()

    thread = threading.Thread(target=worker, name="stress-test", daemon=True)
    try:
        thread.start()
    except BaseException:
        _slot.release()
        raise
    try:
        return await asyncio.wait_for(asyncio.shield(done), TIME_LIMIT_SECONDS)
    except asyncio.CancelledError:  # the client went away: nobody wants the answer
        _interrupt(thread)
        raise
    except TimeoutError:
        _interrupt(thread)
        raise HTTPException(
            status_code=503,
            detail=f"stress-test: stopped after the API's time limit of {TIME_LIMIT_SECONDS:g} s; "
                   "run it with `permanence stress-test`",
        ) from None


def _interrupt(thread: threading.Thread) -> None:
    """Raise :class:`StressTimeLimit` in ``thread`` at its next Python instruction."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(StressTimeLimit)
        )


def check_budget(spec: StressSpec, projects: int) -> None:
    """Refuse a run above the API's compute budget, stating the bound (422)."""
    if spec.model == "backtest":
        return  # replays the pool's recorded losses once: no scenarios
    pool_years = spec.scenarios * spec.horizon
    if pool_years > MAX_POOL_YEARS:
        raise UsageError(
            f"scenarios x horizon: {spec.scenarios:,} x {spec.horizon} = {pool_years:,} is over "
            f"the API's budget of {MAX_POOL_YEARS:,} per request; run it with "
            "`permanence stress-test`"
        )
    cells = pool_years * projects
    if cells > MAX_CELLS:
        raise UsageError(
            f"scenarios x horizon x projects: {spec.scenarios:,} x {spec.horizon} x {projects:,} "
            f"= {cells:,} is over the API's budget of {MAX_CELLS:,} per request; run it with "
            "`permanence stress-test`"
        )


def _projects(rt: Runtime, spec: StressSpec) -> int:
    """The projects the run simulates: those of the pool bearing exposure as of the date."""
    if spec.model == "stylised" or spec.pool is None or spec.as_of is None:
        return 1
    if spec.pool not in queries.pools(rt.engine):
        return 1  # the run itself answers 404, naming the pools
    result = queries.liabilities(rt.engine, spec.as_of, queries.Filters(pool=spec.pool),
                                 spec.known_at, "project")
    return max(1, sum(1 for g in result.get("groups", {}).values() if int(g["exposure"]) > 0))


def _run(rt: Runtime, body: StressTestRequest) -> StressOutcome:
    spec = _spec(rt, body)
    if spec.scenarios * spec.horizon > MAX_POOL_YEARS:
        check_budget(spec, 1)  # before any query
    check_budget(spec, _projects(rt, spec))
    try:
        return run_stress_test(spec, rt.engine, rt.app, rt.catalog)
    except StressTestRejected as e:
        if str(e).startswith("pool: no pool named"):
            raise HTTPException(status_code=404, detail=str(e)) from None
        raise UsageError(str(e)) from None


def _day(text: str | None, field: str) -> date | None:
    day = to_date(text, field)
    if day is not None and not EARLIEST <= day <= LATEST:
        raise UsageError(f"{field}: {text!r} is outside {EARLIEST} to {LATEST}")
    return day


def _spec(rt: Runtime, body: StressTestRequest) -> StressSpec:
    try:
        pool = body.pool
        if pool is None and body.model != "stylised":
            pool = only_pool(rt.engine)
        return StressSpec(
            model=body.model,
            pool=pool,
            as_of=_day(body.as_of, "as_of") or rt.settings.today_source()(),
            known_at=to_timestamp(body.known_at, "known_at"),
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
            since=_day(body.since, "since"),
            pool_size=body.pool_size,
            event_loss=body.event_loss,
            annual_probability=body.annual_probability,
        )
    except StressTestRejected as e:
        raise UsageError(str(e)) from None


__all__ = ["MAX_CELLS", "MAX_POOL_YEARS", "MAX_SCENARIOS", "StressTestRequest", "router"]
