"""What routes take from the app and the request: the runtime, fresh read models, the writer,
and the query parameters every audience shares.

Routers import from here, and the app factory imports the routers, so nothing imports the
app factory back (no cycle).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel

from permanence.http.access import principal_of
from permanence.parsing import UsageError, to_date
from permanence.runtime import Runtime
from permanence.tokens import Principal


def get_runtime(request: Request) -> Runtime:
    """The app's runtime (opened by the lifespan)."""
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
    yet; :class:`permanence.http.freshness.Freshness` waits for them to be projected (or
    projects them) first.
    """
    runtime = get_runtime(request)
    request.app.state.freshness.observe()
    return runtime


def writer(request: Request) -> Principal:
    """Who records a write: the token the router's guard authenticated (the one way every
    write endpoint decides it; its ``actor`` is what the audit trail shows)."""
    return principal_of(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
FreshRuntime = Annotated[Runtime, Depends(fresh_runtime)]
Writer = Annotated[Principal, Depends(writer)]

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
ProgramQuery = Annotated[str | None, Query(description="Only this program.")]
ProjectQuery = Annotated[str | None, Query(description="Only this project.")]
VintageId = Annotated[str, Path(description="Vintage id (a UUID), or a unique prefix of 8+ "
                                            "hex characters.")]


def day_or_today(text: str | None, field: str, request: Request | None = None) -> date:
    """Parse a business date named ``field``, defaulting to today (as the CLI does: the
    configured ``PERMANENCE_TODAY`` when set)."""
    settings = getattr(request.app.state, "settings", None) if request is not None else None
    return to_date(text, field) or (settings.today_source()() if settings else date.today())


def iso(value: date | datetime | None) -> str | None:
    """The text of a date or instant, for keying an answer: equal instants in other zones
    print differently, so the text (not the object) is the key."""
    return None if value is None else value.isoformat()


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


__all__ = ["AsOfQuery", "FreshRuntime", "KnownAtQuery", "PoolQuery", "ProgramQuery",
           "ProjectQuery", "RuntimeDep", "VintageId", "Writer", "day_or_today", "fresh_runtime",
           "get_runtime", "iso", "known_query_only", "writer"]
