"""The registries' write API: the ledger's commands over HTTP, each recorded by its token.

Every endpoint needs a ``registry`` token (see :mod:`permanence.http.access`), even while reads
are open, and runs its command as ``token:NAME``, so the vintage's audit trail
(``/vintages/{id}/history``) says which token recorded each event.

Bodies are JSON objects validated before the ledger sees them: an unknown field, a
fractional, negative or absurd quantity (over :data:`MAX_TONNES`), a date that is not
``YYYY-MM-DD`` between :data:`EARLIEST` and :data:`LATEST`, or a control character in a
text field is a 422 whose ``detail`` names the field (``loc``). A command the ledger rejects is 400 (404 for an unknown vintage or
reversal), and writes nothing; a write that lost a race with another writer eight times
in a row is 409 and can be retried as is.

``POST /imports/{format}`` takes a registry export as the raw request body (``text/csv``,
up to 50 MiB) and loads it as ``permanence import FORMAT FILE`` does: idempotently, in
batches of one transaction each; the answer is the import summary with its rejects.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from eventsourcing.persistence import OperationalError as StoreUnavailable
from eventsourcing.persistence import RecordConflictError
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy.exc import OperationalError as ReadModelUnavailable

from ledger.classification import CAUSES
from ledger.limits import EARLIEST, LATEST, MAX_TONNES
from permanence.http.access import Principal, principal_of
from permanence.runtime import Runtime

T = TypeVar("T")

MAX_REJECTS_SHOWN = 1_000
"""Rejects listed in an import's answer (the count is always complete)."""

router = APIRouter(tags=["registry (write)"])

# ---------------------------------------------------------------------- field types

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: Any) -> Any:
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as e:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD: {e}") from None
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"{value!r} is outside {EARLIEST} to {LATEST}")
    return day


def _known_cause(value: str) -> str:
    if value not in CAUSES:
        raise ValueError(f"unknown cause {value!r}; known causes: {', '.join(sorted(CAUSES))}")
    return value


Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    Field(description=f"A date YYYY-MM-DD, {EARLIEST} to {LATEST}.", examples=["2030-01-01"]),
]
Tonnes = Annotated[
    int,
    Field(strict=True, gt=0, le=MAX_TONNES, description="Whole tonnes, at least 1."),
]
TonnesOrZero = Annotated[
    int,
    Field(strict=True, ge=0, le=MAX_TONNES, description="Whole tonnes, 0 or more."),
]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"




# Text without control characters (PostgreSQL text cannot hold NUL; none belongs in a name).
Text32 = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_PRINTABLE)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
Text400 = Annotated[str, StringConstraints(min_length=1, max_length=400, pattern=_PRINTABLE)]
Text1000 = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=_PRINTABLE)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- request bodies


class IssueRequest(Body):
    """One issuance, as ``permanence issue`` takes it."""

    program: Text64 = Field(description="Program profile name (GET /profiles).")
    project: Text200 = Field(description="Project identifier.")
    quantity: Tonnes
    buffer: TonnesOrZero = 0
    on: Day
    vintage_year: Annotated[int | None, Field(strict=True, ge=1900, le=2200)] = None
    vintage_start: Day | None = None
    vintage_end: Day | None = None
    serial_first: Text200 | None = None
    serial_last: Text200 | None = None
    crediting_start: Day | None = None
    crediting_end: Day | None = None
    pool: Text64 | None = Field(None, description="Pool (default: the profile's pool).")
    risk_class: Text64 | None = None
    vintage_id: UUID | None = Field(
        None,
        description="Optional id chosen by the caller: repeating a request with the same id "
        "cannot issue twice (the repeat is 409).",
    )

    @model_validator(mode="after")
    def _serials(self) -> IssueRequest:
        first, last = self.serial_first, self.serial_last
        if (first is None) != (last is None):
            raise ValueError("serial_first and serial_last: give both or neither")
        if first and last and first.isdigit() and last.isdigit() and int(last) < int(first):
            raise ValueError("serial_last: the range ends before it starts")
        return self


class VerifyRequest(Body):
    on: Day
    period_start: Day | None = None
    period_end: Day | None = None
    verifier: Text200 | None = Field(None, description="Verification body.")


class ProjectVerifyRequest(Body):
    on: Day
    verifier: Text200 | None = Field(None, description="Verification body.")


class ReversalRequest(Body):
    on: Day
    quantity: Tonnes
    cause: Annotated[
        str,
        AfterValidator(_known_cause),
        Field(description="Cause of the reversal.", json_schema_extra={"enum": sorted(CAUSES)}),
    ]
    negligence: bool = False
    wilful: bool = False
    within_control: bool = False
    note: Text1000 | None = None


class CompensationRequest(Body):
    reversal_id: Text32 = Field(description="Reversal id (R1, L2, ...).")
    route: Literal["buffer", "proponent", "insurance", "deduction", "fund", "jurisdiction"]
    quantity: Tonnes
    on: Day
    reference: Text400 | None = Field(None, description="Serials surrendered, claim number, ...")


class RetirementRequest(Body):
    quantity: Tonnes
    on: Day
    beneficiary: Text400 | None = None


class CancellationRequest(Body):
    quantity: Tonnes
    on: Day
    reason: Text400 | None = None
    invalidation: bool = Field(False, description="Record as an invalidation.")


VintageId = Annotated[str, PathParam(description="Vintage id (a UUID).")]

# ---------------------------------------------------------------------- plumbing


def _runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise RuntimeError("the runtime is not open: serve the app with its lifespan enabled")
    return runtime


def _record(request: Request, action: Callable[[Runtime], T]) -> tuple[T, Principal]:
    """Run ``action(rt)`` as the request's token, then bring the read models up to date.

    The app's refresh lock is held throughout: the command's save projects in this
    thread, and the projector must not run twice at once in one process.
    """
    principal = principal_of(request)
    rt = _runtime(request)
    with request.app.state.refresh_lock, rt.app.acting_as(principal.actor):
        try:
            rt.refresh()  # verify-by-project looks vintages up in the read models
            result = action(rt)
            rt.refresh()
        except RecordConflictError:
            raise HTTPException(
                status_code=409,
                detail="another writer changed the same vintage(s) meanwhile; nothing was "
                "recorded, retry the request",
            ) from None
        except (StoreUnavailable, ReadModelUnavailable) as e:
            raise _unavailable(e) from None
    return result, principal


def _unavailable(e: Exception) -> HTTPException:
    """503 for a store that cannot take the write now (locked, read-only, unreachable)."""
    text = str(getattr(e, "orig", None) or e).strip()
    reason = text.splitlines()[0] if text else type(e).__name__
    return HTTPException(status_code=503, detail=f"database unavailable: {reason}",
                         headers={"Retry-After": "5"})


# ---------------------------------------------------------------------- endpoints


@router.post("/vintages", status_code=201, summary="Issue a vintage")
def post_vintage(request: Request, body: IssueRequest) -> dict[str, Any]:
    """Issue a vintage: its stream and its permanence clock begin here."""
    spec = body.model_dump(exclude_none=True)
    if "vintage_id" in spec:
        spec["vintage_id"] = str(spec["vintage_id"])
    if body.vintage_id is not None:
        _refuse_existing(request, str(body.vintage_id))
    vid, who = _record(request, lambda rt: rt.app.issue(**spec))
    return {"vintage_id": vid, "recorded_by": who.actor}


def _refuse_existing(request: Request, vid: str) -> None:
    if _runtime(request).app.existing([vid]):
        raise HTTPException(status_code=409, detail=f"vintage_id: vintage {vid} exists already")


@router.post("/vintages/{vintage_id}/verifications", status_code=201,
             summary="Record a verification of one vintage")
def post_verification(request: Request, vintage_id: VintageId, body: VerifyRequest) -> dict[str, Any]:
    _, who = _record(request, lambda rt: rt.app.verify(
        vintage_id, body.on, body.period_start, body.period_end, body.verifier))
    return {"verified": [vintage_id], "recorded_by": who.actor}


@router.post("/projects/{project}/verifications", status_code=201,
             summary="Verify every monitored vintage of a project")
def post_project_verification(
    request: Request,
    project: Annotated[str, PathParam(description="Project identifier.", max_length=200)],
    body: ProjectVerifyRequest,
) -> dict[str, Any]:
    ids, who = _record(request, lambda rt: rt.app.verify_project(project, body.on, body.verifier))
    return {"project": project, "verified": ids, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/reversals", status_code=201, summary="Record a reversal")
def post_reversal(request: Request, vintage_id: VintageId, body: ReversalRequest) -> dict[str, Any]:
    """Record a reversal; answers its id and classification."""
    result, who = _record(request, lambda rt: rt.app.record_reversal(
        vintage_id, body.on, body.quantity, body.cause, body.negligence, body.wilful,
        body.within_control, body.note))
    return {"vintage_id": vintage_id, **result, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/compensations", status_code=201,
             summary="Record compensation of a reversal")
def post_compensation(
    request: Request, vintage_id: VintageId, body: CompensationRequest
) -> dict[str, Any]:
    """Compensate a reversal (never above what is still due); answers what is due after."""

    def act(rt: Runtime) -> dict[str, Any]:
        rt.app.compensate(vintage_id, body.reversal_id, body.route, body.quantity, body.on,
                          body.reference)
        return rt.app.show(vintage_id, body.on)["due"]

    due, who = _record(request, act)
    return {"vintage_id": vintage_id, "reversal_id": body.reversal_id, "due": due,
            "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/retirements", status_code=201, summary="Retire credits")
def post_retirement(request: Request, vintage_id: VintageId, body: RetirementRequest) -> dict[str, Any]:
    """Retire credits (retirement does not reduce exposure)."""
    _, who = _record(request, lambda rt: rt.app.retire(
        vintage_id, body.quantity, body.on, body.beneficiary))
    return {"vintage_id": vintage_id, "retired": body.quantity, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/cancellations", status_code=201,
             summary="Cancel or invalidate credits")
def post_cancellation(
    request: Request, vintage_id: VintageId, body: CancellationRequest
) -> dict[str, Any]:
    """Cancel or invalidate credits (they leave the exposure)."""

    def act(rt: Runtime) -> None:
        command = rt.app.invalidate if body.invalidation else rt.app.cancel
        command(vintage_id, body.quantity, body.on, body.reason)

    _, who = _record(request, act)
    return {"vintage_id": vintage_id, "quantity": body.quantity,
            "invalidation": body.invalidation, "recorded_by": who.actor}


# ---------------------------------------------------------------------- imports

_CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "The registry's CSV export, as is (at most 50 MiB).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post("/imports/{fmt}", summary="Import a registry export (CSV body)",
             openapi_extra=_CSV_BODY)
async def post_import(
    request: Request,
    fmt: Annotated[str, PathParam(description="Export format (acr, car, art, verra, ...).")],
    filename: Annotated[
        str | None, Query(max_length=200, pattern=_PRINTABLE,
                          description="The file's name, echoed in the summary.")
    ] = None,
    batch: Annotated[int, Query(ge=1, le=100_000, description="Records per transaction.")] = 2_000,
) -> dict[str, Any]:
    """Load the export as ``permanence import FORMAT FILE``: repeatable, batch by batch.

    Unknown format: 404. A file that is not that format (missing columns, undecodable
    bytes): 422 and nothing written. Rows that cannot be imported are listed in
    ``rejects`` with their line and reason.
    """
    try:
        from permanence.imports import PARSERS, ImportFormatError
        from permanence.imports.loader import import_file
    except ImportError as e:  # pragma: no cover - the loader is part of the package
        raise HTTPException(status_code=501, detail=f"imports are unavailable: {e}") from None
    if fmt not in PARSERS:
        raise HTTPException(
            status_code=404,
            detail=f"format: unknown import format {fmt!r}; known formats: "
            f"{', '.join(sorted(PARSERS))}",
        )
    principal = principal_of(request)
    rt = _runtime(request)
    with tempfile.TemporaryDirectory(prefix="permanence-import-") as tmp:
        path = Path(tmp) / "upload.csv"
        with path.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)

        def load() -> dict[str, Any]:
            # Its own runtime, which does not project on each save: the import's batches
            # must not hold the app's refresh lock (reads wait on it) for the whole file.
            importer = Runtime(rt.settings, catch_up_on_write=False)
            try:
                with importer.app.acting_as(principal.actor):
                    summary = import_file(importer, fmt, path, batch=batch,
                                          rejects=Path(tmp) / "rejects.csv")
            finally:
                importer.close()
            with request.app.state.refresh_lock:
                rt.refresh()
            return summary.as_dict() | {"rejects": [
                {"line": r.line, "reason": r.reason, "raw": r.raw}
                for r in summary.rejects[:MAX_REJECTS_SHOWN]
            ]}

        try:
            data = await run_in_threadpool(load)
        except ImportFormatError as e:
            raise HTTPException(status_code=422, detail=str(e).replace(str(path), "upload"))
        except RecordConflictError:
            raise HTTPException(status_code=409, detail="another writer conflicted; retry the "
                                "import (it resumes where it stopped)") from None
        except (StoreUnavailable, ReadModelUnavailable) as e:
            raise _unavailable(e) from None
    data["file"] = filename or "upload.csv"
    data["rejects_file"] = None
    data["recorded_by"] = principal.actor
    return data


__all__ = ["MAX_TONNES", "router"]
