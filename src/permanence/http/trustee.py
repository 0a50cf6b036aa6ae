"""The trustee's questions: liabilities, the buffer, the run-off, pools, projects, programs and
the rule profiles behind them.

Aggregate answers come from the answer cache (:func:`permanence.http.answers.answer`), with an
``ETag`` and 304 on ``If-None-Match``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from ledger.profiles import ProgramProfile
from permanence.http import schemas
from permanence.http.answers import CACHED, answer
from permanence.http.dependencies import (
    AsOfQuery,
    KnownAtQuery,
    PoolQuery,
    ProgramQuery,
    ProjectQuery,
    RuntimeDep,
    day_or_today,
    iso,
)
from permanence.http.errors import problems
from permanence.parsing import UsageError, to_timestamp
from projections import listings, queries
from projections.runoff import runoff

router = APIRouter(tags=["trustee"])

@router.get("/liabilities", summary="Exposure and due liability by obligor",
            response_model=schemas.Liabilities, responses=CACHED)
def get_liabilities(
    request: Request,
    program: ProgramQuery = None,
    project: ProjectQuery = None,
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
    question = ("/liabilities", program, project, pool, by, day.isoformat(), iso(kt))
    return answer(request, question,
                  lambda rt: queries.liabilities(rt.engine, day, filters, kt, by))


@router.get("/buffer", summary="Buffer balance and coverage ratio per pool",
            response_model=schemas.Buffer, responses=CACHED)
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
    question = ("/buffer", pool, day.isoformat(), iso(kt))
    return answer(request, question, lambda rt: queries.buffer(rt.engine, day, pool, kt))


@router.get("/runoff", summary="Exposure ending in each future year",
            response_model=schemas.Runoff, responses=CACHED)
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
    return answer(request, ("/runoff", pool, day.isoformat(), iso(kt)),
                  lambda rt: runoff(rt.engine, day, pool, kt))


@router.get("/pools", summary="Pools that hold vintages: vintage count, contributions",
            response_model=list[schemas.PoolRow], responses=CACHED)
def get_pools(request: Request) -> Response:
    """Each pool with its number of vintages and the buffer contributed at issuance."""
    return answer(request, ("/pools",), lambda rt: listings.list_pools(rt.engine))


@router.get("/projects", summary="Projects: vintage count and credits issued",
            response_model=list[schemas.ProjectRow], responses=CACHED)
def get_projects(request: Request) -> Response:
    """Each project with its number of vintages and the credits issued to it."""
    return answer(request, ("/projects",), lambda rt: listings.list_projects(rt.engine))


@router.get("/programs", summary="Programs that hold vintages", response_model=list[str],
            responses=CACHED)
def get_programs(request: Request) -> Response:
    return answer(request, ("/programs",), lambda rt: queries.programs(rt.engine))


@router.get("/profiles", summary="Program rule profiles",
            response_model=list[schemas.ProfileSummary])
def get_profiles(rt: RuntimeDep) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "version": p.version, "pool": p.pool_name,
         "ccp_aligned": p.ccp_aligned, "title": p.title}
        for p in rt.catalog
    ]


@router.get("/profiles/{name}", summary="One profile, each rule with its source",
            response_model=ProgramProfile, responses=problems(404))
def get_profile(
    rt: RuntimeDep, name: Annotated[str, Path(description="Profile name (GET /profiles).")],
) -> Response:
    # the catalog's own serialisation (validated when loaded), not a second pass
    return Response(rt.catalog.get(name).model_dump_json().encode(),
                    media_type="application/json")


__all__ = ["router"]
