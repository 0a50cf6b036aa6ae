"""HTTP face of the buffer stress test (CIWP recommendation 3): run it, and list the record.

- ``GET /stress-test``: run a test with query parameters; never records (a GET is safe).
- ``POST /stress-test``: the same parameters as a JSON body; records the run on the pool
  unless ``record`` is false (the stylised pool is never recorded). Like every write it
  needs a token (``registry`` or ``trustee``), even while reads are open.
- ``GET /pools/{pool}/stress-tests``: the pool's recorded runs, newest first.

Parameters are :class:`risk.spec.StressSpec`, the one spec the CLI validates into too, with
this API's limits on top; output matches ``permanence stress-test --json``, typed by
:mod:`permanence.http.stress_schemas`. A value out of range is 422 naming it; the use case
(:mod:`risk.stress_test`) raises the domain's errors, which propagate to the app's one error
map (:mod:`permanence.http.errors`: an unknown pool 404, a rejected run 400). A write's
author is the request's token (:data:`permanence.http.dependencies.Writer`).

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
import gc
import threading
import traceback
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, StringConstraints, ValidationError

from permanence.http.dependencies import FreshRuntime, Writer
from permanence.http.errors import problems
from permanence.http.stress_schemas import RecordedRuns, StressTestAnswer
from permanence.parsing import UsageError
from permanence.runtime import Runtime
from risk.pool_contents import check_pool, projects_bearing_exposure
from risk.service import latest_stress_tests
from risk.spec import StressSpec, first_problem
from risk.stress_test import StressOutcome, record_outcome, resolve_pool, run_stress_test

T = TypeVar("T")

MAX_SCENARIOS = 200_000
"""More than any published test needs; larger runs belong on the command line."""
MAX_HORIZON = 500
"""Years a request may simulate."""
MAX_POOL_YEARS = 2_000_000
"""Scenarios x horizon per request (20,000 scenarios over 100 years; 4,000 over 500):
a few seconds of one core for a pool of up to a hundred projects (docs/benchmarks.md)."""
MAX_CELLS = 1_000_000_000
"""Scenarios x horizon x projects per request: large pools cost per project as well."""
TIME_LIMIT_SECONDS = 30.0
"""A run still going after this long is stopped and the request answered 503."""
BUSY_RETRY_SECONDS = 5
"""``Retry-After`` of a 429 while another run holds the process's stress-test slot."""

router = APIRouter(tags=["stress"])

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer"}}}
RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    **problems(400, 404),
    429: {**problems(429)[429], "headers": _RETRY_AFTER, "description":
          "Another stress test is running on this server (one at a time); retry after "
          "``Retry-After`` seconds."},
    503: {**problems(503)[503], "description":
          f"The run passed the API's time limit ({TIME_LIMIT_SECONDS:g} s) and was stopped "
          "(run it with ``permanence stress-test``); or the database cannot answer now "
          "(with ``Retry-After``)."},
}
"""What a run may answer besides its result (auth and 422 come with the router): a rule
broken (400), an unknown pool (404), the slot busy (429), the time limit (503)."""


class StressTestRequest(StressSpec):
    """The stress-test spec within this API's limits (dashes of the CLI become underscores)."""

    scenarios: int = Field(10_000, ge=1, le=MAX_SCENARIOS,
                           description=f"Simulated futures (1 to {MAX_SCENARIOS:,}).")
    horizon: int = Field(100, ge=1, le=MAX_HORIZON,
                         description=f"Years simulated, numbered from 1 (1 to {MAX_HORIZON}).")


class StressTestQuery(StressTestRequest):
    """Query form: the backtest's allocations as repeated ``allocation=CAUSE=CREDITS``."""

    allocation: list[Annotated[str, StringConstraints(max_length=80)]] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=32,
        description="Backtest: repeated CAUSE=CREDITS, one per sub-allocation.")


@router.get("/stress-test", summary="Run a stress test (not recorded)",
            response_model=StressTestAnswer, response_model_exclude_unset=True,
            responses=RUN_ERRORS)
async def get_stress_test(
    rt: FreshRuntime, params: Annotated[StressTestQuery, Query()]
) -> dict[str, Any]:
    """Run a stress test of a pool, or of the stylised pool; the run is not recorded."""
    try:
        spec = StressTestRequest.model_validate(params.model_dump(exclude_unset=True))
    except ValidationError as e:  # the allocations' text, parsed by the spec
        raise UsageError(first_problem(e)) from None
    outcome = await run_limited(lambda: _run(rt, spec))
    outcome.output["recorded"] = None
    return outcome.output


@router.post("/stress-test", summary="Run a stress test and record it on the pool",
             response_model=StressTestAnswer, response_model_exclude_unset=True,
             responses={**RUN_ERRORS, **problems(409, 413)})
async def post_stress_test(
    rt: FreshRuntime,
    request: Request,
    body: StressTestRequest,
    who: Writer,
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

        def save() -> str | None:
            with request.app.state.refresh_lock, rt.app.acting_as(who.actor):
                return record_outcome(rt.app, outcome)

        run_id = await run_in_threadpool(save)
    outcome.output["recorded"] = run_id
    return outcome.output


@router.get("/pools/{pool}/stress-tests", summary="A pool's recorded stress tests",
            response_model=RecordedRuns, response_model_exclude_unset=True,
            responses=problems(400, 404))
def get_pool_stress_tests(
    rt: FreshRuntime,
    pool: Annotated[str, StringConstraints(max_length=64)],
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="Only the newest N runs.")] = None,
) -> dict[str, Any]:
    """Every recorded run of the pool (parameters and results), newest first."""
    runs = latest_stress_tests(rt.app, pool, limit)
    if not runs:
        check_pool(rt.engine, pool)  # an unknown pool is 404, naming the pools
    return {"pool": pool, "runs": runs}


# ---------------------------------------------------------------------- budget and time limit


class StressTimeLimit(Exception):
    """Raised inside a worker thread whose run passed :data:`TIME_LIMIT_SECONDS`."""


_slot = threading.BoundedSemaphore(1)
"""One run at a time per process: the simulation is CPU-bound."""


class _Interruptible:
    """A run in a worker thread, and the one interrupt the request may send it.

    The interrupt is an asynchronous exception, raised at the thread's next Python
    instruction wherever that is. It is sent at most once and only while the run is inside
    ``work()`` (both decided under ``guard``), and it strikes before :meth:`call` returns,
    so what follows the run (giving the slot back, handing over the answer) is never
    interrupted: the slot is always given back, exactly once.
    """

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.running = False
        self.stopped = False

    def call(self, work: Callable[[], T]) -> tuple[T | None, BaseException | None]:
        """``work()`` unless the request already gave up: its result or its error."""
        result: T | None = None
        error: BaseException | None = None
        try:
            with self.guard:
                if self.stopped:
                    raise StressTimeLimit
                self.running = True
            try:
                result = work()
            finally:
                with self.guard:  # a pending interrupt strikes by the end of this block
                    self.running = False
        except BaseException as e:  # noqa: BLE001 - handed to the request, whatever it is
            error = e
            if isinstance(e, StressTimeLimit):
                _release_interrupted(e)
        return result, error

    def stop(self, thread: threading.Thread) -> None:
        """Stop the run at its next Python instruction (or before it starts)."""
        with self.guard:
            self.stopped = True
            if self.running and thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(StressTimeLimit))
                self.running = False  # once


def _release_interrupted(error: BaseException) -> None:
    """Let go at once of what an interrupted run held.

    The interrupt may strike while the run holds a database connection in a transaction
    (between a query and the end of its ``with`` block). The exception's traceback keeps
    that frame, and so the connection, alive, and on PostgreSQL its open transaction would
    block a rebuild's DROP until the garbage collector happened to run. Clearing the frames
    and collecting now returns the connection to its pool, which rolls it back.
    """
    traceback.clear_frames(error.__traceback__)
    error.__traceback__ = None
    gc.collect()


async def run_limited(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread, off the event loop, stopped after the time limit.

    429 while another run holds the slot; 503 when the limit passes (the worker is
    interrupted at its next Python instruction and gives the slot back as it ends). The
    worker gives the slot back before it hands over the answer, so a client's next run,
    sent once this one is answered, finds the slot free.
    """
    if not _slot.acquire(blocking=False):
        raise HTTPException(
            status_code=429, headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
            detail="stress-test: another run is in progress on this server (one at a time); "
                   f"retry in {BUSY_RETRY_SECONDS} s",
        )
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    run = _Interruptible()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done() or run.stopped:  # answered 503 already, or nobody is waiting
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def worker() -> None:
        result, error = run.call(work)
        _slot.release()  # before the answer: the client's next run finds the slot free
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed meanwhile (shutdown): nobody is waiting
            pass

    thread = threading.Thread(target=worker, name="stress-test", daemon=True)
    try:
        thread.start()
    except BaseException:
        _slot.release()
        raise
    try:
        return await asyncio.wait_for(asyncio.shield(done), TIME_LIMIT_SECONDS)
    except asyncio.CancelledError:  # the client went away: nobody wants the answer
        run.stop(thread)
        raise
    except TimeoutError:
        run.stop(thread)
        raise HTTPException(
            status_code=503,
            detail=f"stress-test: stopped after the API's time limit of {TIME_LIMIT_SECONDS:g} s; "
                   "run it with `permanence stress-test`",
        ) from None


def check_budget(spec: StressSpec, projects: int) -> None:
    """Refuse a run above the API's compute budget, stating the bound (422)."""
    if not spec.simulated:
        return  # the backtest replays the pool's recorded losses once: no scenarios
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


def _run(rt: Runtime, spec: StressSpec) -> StressOutcome:
    """Within the budget, the use case's run (in the worker thread of :func:`run_limited`)."""
    if spec.as_of is None:
        spec = spec.model_copy(update={"as_of": rt.settings.today_source()()})
    check_budget(spec, 1)  # before any query
    named = resolve_pool(spec, rt.engine)
    if named.on_a_pool:
        assert named.pool is not None and named.as_of is not None
        projects = projects_bearing_exposure(rt.engine, named.pool, named.as_of, named.known_at)
        check_budget(named, max(1, projects))
    return run_stress_test(named, rt.engine, rt.app, rt.catalog)


__all__ = [
    "MAX_CELLS",
    "MAX_HORIZON",
    "MAX_POOL_YEARS",
    "MAX_SCENARIOS",
    "StressTestQuery",
    "StressTestRequest",
    "check_budget",
    "router",
]
