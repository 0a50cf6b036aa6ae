"""The HTTP read API for trustees: the same questions as the CLI, answered as JSON.

One :class:`Runtime` per app, opened in the lifespan and closed at shutdown. Routes get it
through :func:`get_runtime`, one router per area, so write endpoints and token auth can be
added later as new routers or router dependencies without touching the reads.

Access: each router is included with a token guard (:data:`ACCESS`, :mod:`permanence.auth`);
once the database holds an active API token, every route but ``/healthz`` needs one. Request
bodies are size-limited (413) by :class:`permanence.auth.RequestLimits`. The registries'
write endpoints (:mod:`permanence.http_write`) always need a ``registry`` token.

Errors follow the CLI: malformed input is 422 and the message names the field; an unknown
vintage or profile is 404; any other rejection by the ledger is 400. Bodies are
``{"detail": "..."}``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from ledger.errors import LedgerError, UnknownProgram, UnknownReversal, UnknownVintage
from permanence import auth
from permanence.config import ConfigError, Settings, parse_store
from permanence.http_stress import router as stress_router
from permanence.http_write import router as write_router
from permanence.parsing import UsageError, to_date, to_timestamp
from permanence.runtime import Runtime
from projections import queries

NOT_FOUND_ERRORS: tuple[type[LedgerError], ...] = (UnknownVintage, UnknownProgram, UnknownReversal)

# ---------------------------------------------------------------------- dependencies


def get_runtime(request: Request) -> Runtime:
    """The app's runtime (opened by the lifespan); the seam for auth or per-request actors."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the runtime is not open: serve the app with its lifespan enabled")
    return runtime


def fresh_runtime(request: Request) -> Runtime:
    """The runtime with its read models caught up, so reads never show stale figures.

    Another process (the daemon, an import) may have recorded events it has not projected
    yet; catching up here is one cheap query when nothing is pending. The lock keeps the
    threadpool's requests from projecting the same page twice in this process.
    """
    runtime = get_runtime(request)
    with request.app.state.refresh_lock:
        runtime.refresh()
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ReadRuntimeDep = Annotated[Runtime, Depends(fresh_runtime)]

# ---------------------------------------------------------------------- query parameters

AsOfQuery = Annotated[
    str | None,
    Query(description="Business date YYYY-MM-DD (default today).", examples=["2030-01-01"]),
]
KnownAtQuery = Annotated[
    str | None,
    Query(
        description="Only what had been recorded by this ISO timestamp (a bare date means "
        "the end of that day, UTC).",
        examples=["2030-01-01T00:00:00Z"],
    ),
]
PoolQuery = Annotated[str | None, Query(description="Only this pool.")]


def day_or_today(text: str | None, field: str) -> date:
    """Parse a business date named ``field``, defaulting to today (as the CLI does)."""
    return to_date(text, field) or date.today()


# ---------------------------------------------------------------------- routers

trustee = APIRouter(tags=["trustee"])
ledger = APIRouter(prefix="/vintages", tags=["vintages"])
reference = APIRouter(tags=["reference"])
operations = APIRouter(tags=["operations"])


@trustee.get("/liabilities", summary="Exposure and due liability by obligor")
def get_liabilities(
    rt: ReadRuntimeDep,
    program: Annotated[str | None, Query(description="Only this program.")] = None,
    project: Annotated[str | None, Query(description="Only this project.")] = None,
    pool: PoolQuery = None,
    by: Annotated[
        str | None,
        Query(
            description="Group by " + "|".join(queries.GROUP_BY_CHOICES) + ".",
            json_schema_extra={"enum": list(queries.GROUP_BY_CHOICES)},
        ),
    ] = None,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> dict[str, Any]:
    """Outstanding liabilities as of a date, optionally as recorded by ``known_at``."""
    if by is not None and by not in queries.GROUP_BY_CHOICES:
        raise UsageError(f"by: {by!r} is not one of {', '.join(queries.GROUP_BY_CHOICES)}")
    day = day_or_today(as_of, "as_of")
    kt = to_timestamp(known_at, "known_at")
    return queries.liabilities(rt.engine, day, queries.Filters(program, project, pool), kt, by)


@trustee.get("/buffer", summary="Buffer balance and coverage ratio per pool")
def get_buffer(
    rt: ReadRuntimeDep,
    pool: PoolQuery = None,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> dict[str, Any]:
    """Contributions - cancelled - on hold, and balance / exposure borne by the pool."""
    day = day_or_today(as_of, "as_of")
    kt = to_timestamp(known_at, "known_at")
    return queries.buffer(rt.engine, day, pool, kt)


@trustee.get("/runoff", summary="Exposure ending in each future year")
def get_runoff(rt: ReadRuntimeDep, pool: PoolQuery = None, as_of: AsOfQuery = None) -> dict[str, Any]:
    """The run-off ladder: when today's exposure leaves the books."""
    return queries.runoff(rt.engine, day_or_today(as_of, "as_of"), pool)


@trustee.get("/pools", summary="Pools that hold vintages")
def get_pools(rt: ReadRuntimeDep) -> list[str]:
    return queries.pools(rt.engine)


@trustee.get("/programs", summary="Programs that hold vintages")
def get_programs(rt: ReadRuntimeDep) -> list[str]:
    return queries.programs(rt.engine)


VintageId = Annotated[str, Path(description="Vintage id (a UUID).")]


@ledger.get("/{vintage_id}", summary="One vintage as of a date")
def get_vintage(rt: RuntimeDep, vintage_id: VintageId, as_of: AsOfQuery = None) -> dict[str, Any]:
    """Period end, verification due, status, exposure, bearer, dues and reversals."""
    day = day_or_today(as_of, "as_of")
    return rt.app.show(vintage_id, day)


@ledger.get("/{vintage_id}/history", summary="The vintage's audit trail")
def get_history(
    rt: RuntimeDep,
    vintage_id: VintageId,
    as_of: Annotated[
        str | None, Query(description="Only events that happened by this date (default: all).")
    ] = None,
    known_at: KnownAtQuery = None,
) -> dict[str, Any]:
    """Each event, when it happened and was recorded, by whom, and the state after it."""
    from ledger.replay import replay

    day = to_date(as_of, "as_of")
    kt = to_timestamp(known_at, "known_at")
    _, trail = replay(rt.app.stream(vintage_id), day, kt)
    return {
        "vintage_id": vintage_id,
        "as_of": day.isoformat() if day else None,
        "known_at": kt.isoformat() if kt else None,
        "events": trail,
    }


@reference.get("/profiles", summary="Program rule profiles")
def get_profiles(rt: RuntimeDep) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "version": p.version, "pool": p.pool_name,
         "ccp_aligned": p.ccp_aligned, "title": p.title}
        for p in rt.catalog
    ]


@reference.get("/profiles/{name}", summary="One profile, each rule with its source")
def get_profile(rt: RuntimeDep, name: str) -> dict[str, Any]:
    return rt.catalog.get(name).model_dump(mode="json")


@operations.get("/healthz", summary="Liveness and projection lag")
def get_health(rt: RuntimeDep) -> JSONResponse:
    """200 when the store answers; 503 (with the reason) when it does not."""
    try:
        lag = rt.projector.lag()
    except Exception as e:  # noqa: BLE001 - any store failure means "unhealthy"
        return JSONResponse({"status": "unavailable", "detail": str(e)}, status_code=503)
    return JSONResponse({"status": "ok", "store": rt.store.kind, "projection_lag": lag})


ROUTERS: tuple[APIRouter, ...] = (trustee, ledger, reference, operations, stress_router)

WRITE_ROUTERS: tuple[APIRouter, ...] = (write_router,)
"""The registries' write endpoints (:mod:`permanence.http_write`)."""

ACCESS: tuple[tuple[APIRouter, auth.Access], ...] = (
    (trustee, auth.TRUSTEE),
    (ledger, auth.DETAIL),
    (reference, auth.TRUSTEE),
    (operations, auth.OPEN),
    (stress_router, auth.STRESS),
    (write_router, auth.WRITE),
)
"""Which token roles may call each router once auth is enforced (docs/security.md); a
router not listed here gets :data:`permanence.auth.DEFAULT` (registry and verifier read)."""


def access_for(router: APIRouter) -> auth.Access:
    return next((access for r, access in ACCESS if r is router), auth.DEFAULT)

# ---------------------------------------------------------------------- the app


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the API on ``settings``' store, or on a caller's open ``runtime``.

    A runtime passed in stays the caller's to close; one opened here is closed at shutdown.
    The store URL is checked now, so ``permanence serve`` fails fast with a clear message.
    """
    if runtime is None:
        parse_store(settings.db, settings.lock_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime if runtime is not None else Runtime(settings)
        app.state.runtime = rt
        app.state.tokens = auth.TokenStore(rt.engine, auth.require_auth_setting(settings))
        try:
            yield
        finally:
            app.state.runtime = None
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="permanence",
        summary="Read API for trustees: liabilities, buffer coverage, run-off, audit trails.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.refresh_lock = threading.Lock()
    for router in (*ROUTERS, *WRITE_ROUTERS):
        app.include_router(router, dependencies=auth.dependencies_for(access_for(router)))
    app.add_middleware(auth.RequestLimits)
    app.add_exception_handler(UsageError, _usage_error)
    app.add_exception_handler(ConfigError, _usage_error)
    app.add_exception_handler(LedgerError, _ledger_error)
    return app


async def _usage_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _ledger_error(_: Request, exc: Exception) -> JSONResponse:
    status = 404 if isinstance(exc, NOT_FOUND_ERRORS) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status)
