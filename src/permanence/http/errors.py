"""Every error the HTTP API answers, in one shape and mapped from exceptions in one place.

The shape is RFC 9457 problem details (``application/problem+json``): ``type``, ``title``,
``status``, ``detail`` (one line naming the field or thing at fault) and ``instance`` (the
request path); a 422 adds ``errors``, one entry per field. Clients branch on ``status`` and
``type``; ``detail`` is for people.

The map (:data:`STATUS_OF`, read top down, first match wins):

- request validation (FastAPI), :class:`UsageError`, :class:`ConfigError`, a listing's
  cursor or filter: 422;
- :class:`NotFound` (unknown vintage, program, reversal, pool): 404;
- :class:`AmbiguousVintage` (an id prefix naming several vintages): 400, the message lists
  the candidates; any other :class:`LedgerError` (a rejected command): 400;
- a write that lost a race with another writer (``RecordConflictError``): 409, retry as is;
- a store that cannot answer now (locked, read-only, unreachable): 503 with ``Retry-After``;
- ``HTTPException`` raised by a route or a guard keeps its status (401, 403, 413, 429, ...).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from eventsourcing.persistence import OperationalError as StoreUnavailable
from eventsourcing.persistence import RecordConflictError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError as ReadModelUnavailable
from starlette.exceptions import HTTPException

from ledger.errors import AmbiguousVintage, LedgerError, NotFound
from permanence.config import ConfigError
from permanence.parsing import UsageError
from projections.listings import ListingError

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of a 503 while the store cannot answer."""

TYPES: dict[int, str] = {
    400: "rejected",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    422: "invalid-input",
    429: "busy",
    500: "internal",
    503: "unavailable",
}
"""The ``type`` of each status (prefixed by :data:`TYPE_PREFIX`)."""
TYPE_PREFIX = "urn:permanence:problem:"
AMBIGUOUS_TYPE = TYPE_PREFIX + "ambiguous-vintage"

STATUS_OF: tuple[tuple[tuple[type[Exception], ...], int], ...] = (
    ((UsageError, ConfigError, ListingError), 422),
    ((NotFound,), 404),
    ((AmbiguousVintage,), 400),
    ((LedgerError,), 400),
    ((RecordConflictError,), 409),
    ((StoreUnavailable, ReadModelUnavailable), 503),
)
"""Domain and store exceptions to HTTP statuses: the only place the API decides one."""


class FieldError(BaseModel):
    """One field a 422 found at fault."""

    field: str = Field(description="The field, as the request named it (``on``, ``as_of``).")
    loc: list[str | int] = Field(description="Where: ``body``, ``query`` or ``path``, then "
                                 "the field's path.")
    msg: str
    type: str = Field(description="The kind of fault (``missing``, ``int_parsing``, ...).")


class Problem(BaseModel):
    """An error answer: RFC 9457 problem details."""

    type: str = Field(description="What kind of problem: "
                      + ", ".join(f"``{TYPE_PREFIX}{t}``" for t in sorted(set(TYPES.values())))
                      + f", ``{AMBIGUOUS_TYPE}``.",
                      examples=[TYPE_PREFIX + "not-found"])
    title: str = Field(description="The status's reason phrase.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong, naming the field or thing at fault.",
                        examples=["vintage: no vintage 3f2a5e1c-..."])
    instance: str | None = Field(None, description="The request's path.",
                                 examples=["/vintages/3f2a5e1c"])
    errors: list[FieldError] | None = Field(
        None, description="422 only: each field at fault.")


def status_for(exc: BaseException) -> int | None:
    """The status :data:`STATUS_OF` maps ``exc`` to (None: not a mapped exception)."""
    for kinds, status in STATUS_OF:
        if isinstance(exc, kinds):
            return status
    return None


def problem(status: int, detail: str, instance: str | None = None, *,
            errors: list[FieldError] | None = None, type_: str | None = None) -> Problem:
    return Problem(type=type_ or TYPE_PREFIX + TYPES.get(status, "error"),
                   title=_title(status), status=status, detail=detail, instance=instance,
                   errors=errors)


def problem_bytes(p: Problem) -> bytes:
    return p.model_dump_json(exclude_none=True).encode()


def problem_response(p: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(problem_bytes(p), status_code=p.status, headers=headers,
                    media_type=PROBLEM_MEDIA_TYPE)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------- handlers


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    detail = "; ".join(f"{e.field}: {e.msg}" for e in errors) or "invalid request"
    return problem_response(problem(422, detail, request.url.path, errors=errors))


def _field_error(e: Any) -> FieldError:
    loc = [part if isinstance(part, int) else str(part) for part in e.get("loc", ())]
    named = [part for part in loc[1:] if isinstance(part, str)] or [str(p) for p in loc]
    return FieldError(field=".".join(named) or "request", loc=loc, msg=str(e.get("msg", "")),
                      type=str(e.get("type", "")))


async def _mapped(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    if status is None:  # pragma: no cover - only mapped kinds are registered
        raise exc
    if status == 503:
        return problem_response(
            problem(503, f"database unavailable: {_one_line(exc)}", request.url.path),
            {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if status == 409:
        detail = ("another writer changed the same records meanwhile; nothing was recorded "
                  "by the conflicting batch: retry the request as is")
        return problem_response(problem(409, detail, request.url.path))
    type_ = AMBIGUOUS_TYPE if isinstance(exc, AmbiguousVintage) else None
    errors = _named_field(str(exc)) if status == 422 else None
    return problem_response(problem(status, str(exc), request.url.path, errors=errors,
                                    type_=type_))


_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*): (.+)", re.DOTALL)


def _named_field(message: str) -> list[FieldError] | None:
    """``errors`` for a 422 whose message names its field first (``as_of: ...``), as every
    :class:`UsageError` does: clients find the field where validation errors put it."""
    found = _FIELD.fullmatch(message)
    if found is None:
        return None
    field, msg = found.groups()
    return [FieldError(field=field, loc=[field], msg=msg, type="value_error")]


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(problem(exc.status_code, detail, request.url.path), headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # the traceback goes to the server's log (Starlette re-raises after this answer)
    return problem_response(problem(500, "internal error; the server's log has the details",
                                    request.url.path))


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem (the one place statuses are chosen)."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for kinds, _ in STATUS_OF:
        for kind in kinds:
            app.add_exception_handler(kind, _mapped)
    app.add_exception_handler(Exception, _unexpected)


# ---------------------------------------------------------------------- OpenAPI

DESCRIPTIONS: dict[int, str] = {
    400: "The ledger rejected the command or question (nothing was recorded); an ambiguous "
         "vintage id prefix lists its candidates.",
    401: "No token, or an invalid or revoked one (``WWW-Authenticate: Bearer``).",
    403: "The token's role may not call this route.",
    404: "The vintage, program, reversal, pool or format named does not exist.",
    409: "Another writer changed the same records meanwhile, or the id exists already; "
         "nothing was recorded.",
    413: "The request body is over the limit.",
    422: "A parameter or body field is malformed; ``errors`` names each.",
    429: "Busy: retry after ``Retry-After`` seconds.",
    503: "The database cannot answer now (locked, read-only, unreachable); retry after "
         "``Retry-After`` seconds.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring each status as a problem answer."""
    return {
        status: {
            "description": DESCRIPTIONS.get(status, _title(status)),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def add_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put :class:`Problem` (referred to by :func:`problems`) into the document's schemas."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    found = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in found.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["Problem"] = found
    return document


__all__ = ["PROBLEM_MEDIA_TYPE", "STATUS_OF", "FieldError", "Problem", "add_schemas", "install",
           "problem", "problem_bytes", "problem_response", "problems", "status_for"]
