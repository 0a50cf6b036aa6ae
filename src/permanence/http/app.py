"""The HTTP read API for trustees: the same questions as the CLI, answered as JSON.

One :class:`Runtime` per app, opened in the lifespan and closed at shutdown. Routes get it
through :func:`get_runtime`, one router per area, so write endpoints and token auth can be
added later as new routers or router dependencies without touching the reads.

Access: each router is included with a token guard (:data:`ACCESS`, :mod:`permanence.http.access`);
once the database holds an active API token, every route but ``/healthz`` needs one. Request
bodies are size-limited (413) by :class:`permanence.http.access.RequestLimits`. The registries'
write endpoints (:mod:`permanence.http.registry`) always need a ``registry`` token.

Freshness and answers: a read never shows figures older than the events recorded before it
arrived (:class:`Freshness`), and the trustee endpoints keep their serialised answers per
question and read-model position (:class:`permanence.http.answers.AnswerCache`), so a dashboard
asking the same questions again costs one small query of the event log's head.

Errors follow the CLI: malformed input is 422 and the message names the field; an unknown
vintage or profile is 404; any other rejection by the ledger is 400. Bodies are
``{"detail": "..."}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ledger.errors import LedgerError, NotFound
from permanence import tokens
from permanence.config import ConfigError, Settings, parse_store
from permanence.http import access as acl
from permanence.http.answers import AnswerCache, Question
from permanence.http.registry import router as write_router
from permanence.http.stress import router as stress_router
from permanence.parsing import UsageError, to_date, to_timestamp
from permanence.runtime import Runtime
from projections import listings, queries

NOT_FOUND_ERRORS: tuple[type[LedgerError], ...] = (NotFound,)

# ---------------------------------------------------------------------- freshness

PROJECTOR_GRACE_SECONDS = 0.5
"""How long a read that finds the read models behind the event log waits for another
projector (a writing process projects its own events right after saving them) before it
projects the pending events itself."""
POLL_SECONDS = (0.001, 0.002, 0.004)
"""Pauses between looks at the tracking position while waiting (the last one repeats)."""


class Freshness:
    """The read-model position a read must reflect: every event recorded before it arrived.

    A read asks the event log for its head (one small query). The tracking position never
    passes the head and never goes back (but for a rebuild, see :meth:`confirm`), so when
    this process has already read a position at or past the head, the read models are at
    exactly that position and nothing more is asked.

    Otherwise events were recorded that this process has not seen projected. Usually the
    process that recorded them is projecting them at this moment (writers project their
    own writes); racing it would compute the same page only to lose the conditional commit,
    holding up reads meanwhile. So one thread per process polls the tracking position until
    it reaches the head, and projects the pending events itself (under the app's refresh
    lock, which writes hold too) only if nobody has done so within
    :data:`PROJECTOR_GRACE_SECONDS` (a writer that does not project, or is gone). Other
    reads that find lag queue behind that thread and are mostly satisfied by what it saw.
    Either way the read ends at a position at or past the head it saw.
    """

    def __init__(self, runtime: Runtime, refresh_lock: threading.Lock,
                 grace: float = PROJECTOR_GRACE_SECONDS,
                 on_regress: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.refresh_lock = refresh_lock
        self.grace = grace
        self.on_regress = on_regress
        self._seen = -1  # the highest tracking position this process has read
        self._seen_lock = threading.Lock()
        self._catching_up = threading.Lock()

    def head(self) -> int:
        """The last notification id recorded (0 for an empty log)."""
        return int(self.runtime.app.recorder.max_notification_id() or 0)

    def observe(self) -> int:
        """A tracking position whose read models include every event recorded before now."""
        head = self.head()
        seen = self._seen
        # the position never passes the head, so head <= seen means they are equal
        return seen if head <= seen else self._reach(head)

    def confirm(self, position: int) -> None:
        """Make sure the read models are still at ``position`` or later before answering.

        They go backwards only when rebuilt (dropped and replayed from the first event):
        then what this process saw and the answers kept are forgotten, and the read catches
        up as any read that finds lag does.
        """
        current = self.runtime.projector.position()
        if current >= position:
            return
        with self._seen_lock:
            self._seen = min(self._seen, current)
        if self.on_regress is not None:
            self.on_regress()
        self._reach(position)

    def _note(self, position: int) -> int:
        with self._seen_lock:
            self._seen = max(self._seen, position)
        return position

    def _reach(self, target: int) -> int:
        with self._catching_up:
            if self._seen >= target:  # the thread before this one got there
                return self._seen
            position = self._wait_for_projector(target)
            if position < target:
                with self.refresh_lock:
                    self.runtime.refresh()
                position = self.runtime.projector.position()
            return self._note(position)

    def _wait_for_projector(self, target: int) -> int:
        deadline = time.monotonic() + self.grace
        pauses = iter(POLL_SECONDS)
        pause = 0.0
        while True:
            position = self.runtime.projector.position()
            if position >= target or time.monotonic() >= deadline:
                return position
            pause = next(pauses, pause)
            time.sleep(pause)


# ---------------------------------------------------------------------- dependencies


def get_runtime(request: Request) -> Runtime:
    """The app's runtime (opened by the lifespan); the seam for auth or per-request actors."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the runtime is not open: serve the app with its lifespan enabled")
    return runtime


async def _runtime_dependency(request: Request) -> Runtime:
    # async: a plain attribute read needs no hop to the threadpool
    return get_runtime(request)


def fresh_runtime(request: Request) -> Runtime:
    """The runtime with its read models caught up, so reads never show stale figures.

    Another process (the daemon, an import) may have recorded events it has not projected
    yet; :class:`Freshness` waits for them to be projected (or projects them) first.
    """
    runtime = get_runtime(request)
    request.app.state.freshness.observe()
    return runtime


def answer(request: Request, question: Question, compute: Callable[[Runtime], Any]) -> Response:
    """The JSON answer to ``question``, from the app's answer cache or ``compute(runtime)``.

    The cache key is the question and the position :class:`Freshness` observed, so the
    answer includes at least every event recorded before the request arrived.
    """
    runtime = get_runtime(request)
    freshness: Freshness = request.app.state.freshness
    answers: AnswerCache = request.app.state.answers
    position = freshness.observe()

    def computed() -> bytes:
        freshness.confirm(position)
        return orjson.dumps(compute(runtime))

    return Response(answers.answer(question, position, computed), media_type="application/json")


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]

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


def day_or_today(text: str | None, field: str, request: Request | None = None) -> date:
    """Parse a business date named ``field``, defaulting to today (as the CLI does: the
    configured ``PERMANENCE_TODAY`` when set)."""
    settings = getattr(request.app.state, "settings", None) if request is not None else None
    return to_date(text, field) or (settings.today_source()() if settings else date.today())


def _query_names(dependant: Any) -> set[str]:
    names: set[str] = set()
    for p in dependant.query_params:
        model = getattr(p.field_info, "annotation", None)
        if isinstance(model, type) and issubclass(model, BaseModel):  # a query-parameter model
            names |= {f.alias or name for name, f in model.model_fields.items()}
        else:
            names.add(p.alias)
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_only(request: Request) -> None:
    """A query parameter the route does not take is a 422, never silently ignored (a
    mistyped ``known_at`` would otherwise answer as of now)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    taken = _query_names(dependant)
    unknown = sorted(set(request.query_params.keys()) - taken)
    if unknown:
        raise UsageError(
            f"{unknown[0]}: not a parameter of {request.url.path}"
            + (f"; it takes {', '.join(sorted(taken))}" if taken else "; it takes none")
        )


# ---------------------------------------------------------------------- routers

trustee = APIRouter(tags=["trustee"])
ledger = APIRouter(prefix="/vintages", tags=["vintages"])
reference = APIRouter(tags=["reference"])
operations = APIRouter(tags=["operations"])


@trustee.get("/liabilities", summary="Exposure and due liability by obligor",
             response_model=dict[str, Any])
def get_liabilities(
    request: Request,
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
) -> Response:
    """Outstanding liabilities as of a date, optionally as recorded by ``known_at``."""
    if by is not None and by not in queries.GROUP_BY_CHOICES:
        raise UsageError(f"by: {by!r} is not one of {', '.join(queries.GROUP_BY_CHOICES)}")
    day = day_or_today(as_of, "as_of", request)
    kt = to_timestamp(known_at, "known_at")
    filters = queries.Filters(program, project, pool)
    question = ("/liabilities", program, project, pool, by, day.isoformat(), _iso(kt))
    return answer(request, question,
                  lambda rt: queries.liabilities(rt.engine, day, filters, kt, by))


@trustee.get("/buffer", summary="Buffer balance and coverage ratio per pool",
             response_model=dict[str, Any])
def get_buffer(
    request: Request,
    pool: PoolQuery = None,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> Response:
    """Contributions less draws and holds (never below zero: the rest is the pool's
    shortfall), and (balance - owed) / exposure borne by the pool."""
    day = day_or_today(as_of, "as_of", request)
    kt = to_timestamp(known_at, "known_at")
    question = ("/buffer", pool, day.isoformat(), _iso(kt))
    return answer(request, question, lambda rt: queries.buffer(rt.engine, day, pool, kt))


@trustee.get("/runoff", summary="Exposure ending in each future year",
             response_model=dict[str, Any])
def get_runoff(
    request: Request,
    pool: PoolQuery = None,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> Response:
    """The run-off ladder: when the exposure leaves each bearer, from the facts dated by
    ``as_of`` and recorded by ``known_at``."""
    day = day_or_today(as_of, "as_of", request)
    kt = to_timestamp(known_at, "known_at")
    return answer(request, ("/runoff", pool, day.isoformat(), _iso(kt)),
                  lambda rt: queries.runoff(rt.engine, day, pool, kt))


@trustee.get("/pools", summary="Pools that hold vintages: vintage count, contributions",
             response_model=list[dict[str, Any]])
def get_pools(request: Request) -> Response:
    """Each pool with its number of vintages and the buffer contributed at issuance."""
    return answer(request, ("/pools",), lambda rt: listings.list_pools(rt.engine))


@trustee.get("/projects", summary="Projects: vintage count and credits issued",
             response_model=list[dict[str, Any]])
def get_projects(request: Request) -> Response:
    """Each project with its number of vintages and the credits issued to it."""
    return answer(request, ("/projects",), lambda rt: listings.list_projects(rt.engine))


@trustee.get("/programs", summary="Programs that hold vintages", response_model=list[str])
def get_programs(request: Request) -> Response:
    return answer(request, ("/programs",), lambda rt: queries.programs(rt.engine))


def _iso(value: date | None) -> str | None:
    # the text, not the object, keys an answer: equal instants in other zones print differently
    return None if value is None else value.isoformat()


VintageId = Annotated[str, Path(description="Vintage id (a UUID), or a unique prefix of 8+ "
                                             "hex characters.")]


@ledger.get("", summary="Vintages in issuance order, a page at a time",
            response_model=dict[str, Any])
def get_vintages(
    request: Request,
    program: Annotated[str | None, Query(description="Only this program.")] = None,
    project: Annotated[str | None, Query(description="Only this project.")] = None,
    pool: PoolQuery = None,
    status: Annotated[str | None, Query(
        description="Only this status.", json_schema_extra={"enum": list(listings.STATUSES)},
    )] = None,
    label: Annotated[str | None, Query(description="Only vintages with this label.")] = None,
    as_of: Annotated[str | None, Query(
        description="Only vintages issued on or before this date.")] = None,
    limit: Annotated[int, Query(description="Vintages per page.", ge=1,
                                le=listings.MAX_LIMIT)] = listings.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(
        description="The cursor of the next page (``next_cursor`` of the previous one).")] = None,
) -> Response:
    """Find vintages (their ids for the other routes); ``next_cursor`` is null on the last
    page."""
    day = to_date(as_of, "as_of")
    filters = listings.VintageFilters(program, project, pool, status, label, day)
    try:
        listings.check_status(status)
        listings.decode_cursor(cursor)
    except listings.ListingError as e:
        raise UsageError(str(e)) from None
    question = ("/vintages", program, project, pool, status, label, _iso(day), limit, cursor)
    return answer(request, question,
                  lambda rt: listings.list_vintages(rt.engine, filters, limit, cursor))


@ledger.get("/{vintage_id}", summary="One vintage as of a date")
def get_vintage(
    request: Request,
    rt: RuntimeDep,
    vintage_id: VintageId,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> dict[str, Any]:
    """Period end, verification due, status, exposure, bearer, dues and reversals, from
    the events dated by ``as_of`` and recorded by ``known_at``."""
    day = day_or_today(as_of, "as_of", request)
    return rt.app.show(vintage_id, day, to_timestamp(known_at, "known_at"))


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
    vintage_id = rt.app.resolve(vintage_id)
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


@operations.get("/healthz", summary="Liveness, projection lag and answer-cache counters")
def get_health(request: Request, rt: RuntimeDep) -> JSONResponse:
    """200 when the store answers; 503 (with the reason) when it does not, or when the read
    models hold events they could not take."""
    try:
        lag = rt.projector.lag()
    except Exception as e:  # noqa: BLE001 - any store failure means "unhealthy"
        return JSONResponse({"status": "unavailable", "detail": str(e)}, status_code=503)
    answers: AnswerCache = request.app.state.answers
    failed = rt.projector.failures()
    if failed:
        return JSONResponse({"status": "degraded", "store": rt.store.kind, "projection_lag": lag,
                             "projection_failures": failed}, status_code=503)
    return JSONResponse({"status": "ok", "store": rt.store.kind, "projection_lag": lag,
                         "answers": answers.stats().as_dict()})


ROUTERS: tuple[APIRouter, ...] = (trustee, ledger, reference, operations, stress_router)

WRITE_ROUTERS: tuple[APIRouter, ...] = (write_router,)
"""The registries' write endpoints (:mod:`permanence.http.registry`)."""

ACCESS: tuple[tuple[APIRouter, acl.Access], ...] = (
    (trustee, acl.TRUSTEE),
    (ledger, acl.DETAIL),
    (reference, acl.TRUSTEE),
    (operations, acl.OPEN),
    (stress_router, acl.STRESS),
    (write_router, acl.WRITE),
)
"""Which token roles may call each router once auth is enforced (docs/security.md); a
router not listed here gets :data:`permanence.http.access.DEFAULT` (registry and verifier read)."""


def access_for(router: APIRouter) -> acl.Access:
    return next((access for r, access in ACCESS if r is router), acl.DEFAULT)

# ---------------------------------------------------------------------- the app


def create_app(settings: Settings, runtime: Runtime | None = None, *,
               answers: AnswerCache | None = None) -> FastAPI:
    """Build the API on ``settings``' store, or on a caller's open ``runtime``.

    A runtime passed in stays the caller's to close; one opened here is closed at shutdown.
    The store URL is checked now, so ``permanence serve`` fails fast with a clear message.
    ``answers`` is the trustee endpoints' answer cache (default: a new one of the default
    size; its counters are reported by ``/healthz``).
    """
    if runtime is None:
        parse_store(settings.db, settings.lock_timeout_seconds)
    cache = answers if answers is not None else AnswerCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime if runtime is not None else Runtime(settings)
        app.state.runtime = rt
        app.state.tokens = tokens.TokenStore(rt.engine, tokens.require_auth_setting(settings))
        app.state.freshness = Freshness(rt, app.state.refresh_lock, on_regress=cache.clear)
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
    app.state.answers = cache
    for router in (*ROUTERS, *WRITE_ROUTERS):
        app.include_router(router, dependencies=[
            Depends(known_query_only), *acl.dependencies_for(access_for(router))])
    app.add_middleware(acl.RequestLimits)
    app.add_exception_handler(UsageError, _usage_error)
    app.add_exception_handler(ConfigError, _usage_error)
    app.add_exception_handler(LedgerError, _ledger_error)
    return app


async def _usage_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _ledger_error(_: Request, exc: Exception) -> JSONResponse:
    status = 404 if isinstance(exc, NOT_FOUND_ERRORS) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status)
