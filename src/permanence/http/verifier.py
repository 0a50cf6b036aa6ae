"""The verifier's (and registry's) view of single vintages: find them, one vintage as of a
date, and its audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from permanence.http import schemas
from permanence.http.answers import CACHED, answer
from permanence.http.dependencies import (
    AsOfQuery,
    KnownAtQuery,
    PoolQuery,
    ProgramQuery,
    ProjectQuery,
    RuntimeDep,
    VintageId,
    day_or_today,
    iso,
)
from permanence.http.errors import problems
from permanence.parsing import to_date, to_timestamp
from projections import listings

router = APIRouter(prefix="/vintages", tags=["vintages"])

ONE_VINTAGE = problems(400, 404)
"""An id prefix naming several vintages (400) or none (404)."""


@router.get("", summary="Vintages in issuance order, a page at a time",
            response_model=schemas.VintagePage, responses=CACHED)
def get_vintages(
    request: Request,
    program: ProgramQuery = None,
    project: ProjectQuery = None,
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
    listings.check_status(status)  # a ListingError is a 422 naming the field
    listings.decode_cursor(cursor)
    question = ("/vintages", program, project, pool, status, label, iso(day), limit, cursor)
    return answer(request, question,
                  lambda rt: listings.list_vintages(rt.engine, filters, limit, cursor))


@router.get("/{vintage_id}", summary="One vintage as of a date", response_model=schemas.Vintage,
            response_model_exclude_unset=True, responses=ONE_VINTAGE)
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


@router.get("/{vintage_id}/history", summary="The vintage's audit trail",
            response_model=schemas.History, responses=ONE_VINTAGE)
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
    return {"vintage_id": vintage_id, "as_of": iso(day), "known_at": iso(kt), "events": trail}


__all__ = ["router"]
