"""The registries' write API: the ledger's commands over HTTP, each recorded by its token.

Every endpoint needs a ``registry`` token (see :mod:`permanence.http.access`), even while reads
are open, and runs its command as that token (:func:`permanence.http.dependencies.writer`), so
the vintage's audit trail (``/vintages/{id}/history``) says which token recorded each event.

Bodies are validated before the ledger sees them (:mod:`permanence.http.bodies`). A command
the ledger rejects is 400 (404 for an unknown vintage or reversal) and writes nothing; a write
that lost a race with another writer is 409 and can be retried as is (statuses:
:mod:`permanence.http.errors`). Each 201 names in ``Location`` where the write can be read
back: the new vintage, or the audit trail the event joined.

``POST /imports/{format}`` takes a registry export as the raw request body (``text/csv``,
up to 50 MiB) and loads it as ``permanence import FORMAT FILE`` does: idempotently, in
batches of one transaction each; the answer is the import summary with its rejects.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from permanence.http import schemas
from permanence.http.bodies import (
    MAX_TONNES,
    PRINTABLE,
    CancellationRequest,
    CompensationRequest,
    IssueRequest,
    ProjectVerifyRequest,
    RetirementRequest,
    ReversalRequest,
    VerifyRequest,
)
from permanence.http.dependencies import Writer, get_runtime
from permanence.http.errors import problems
from permanence.parsing import UsageError
from permanence.runtime import Runtime
from permanence.tokens import Principal

T = TypeVar("T")

MAX_REJECTS_SHOWN = 1_000
"""Rejects listed in an import's answer (the count is always complete)."""

router = APIRouter(tags=["registry (write)"])

CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "Recorded.", "headers": {"Location": {
        "description": "Where the write can be read back.", "schema": {"type": "string"}}}},
    **problems(400, 404, 409, 413),
}
"""What every command route declares besides its answer (auth and 422 come with the router)."""

VintageId = Annotated[str, PathParam(description="Vintage id (a UUID), or a unique prefix of "
                                                 "8+ hex characters.")]

# ---------------------------------------------------------------------- plumbing


def _record(request: Request, who: Principal, action: Callable[[Runtime], T]) -> T:
    """Run ``action(rt)`` as ``who``, then bring the read models up to date.

    The app's refresh lock is held throughout: the command's save projects in this
    thread, and the projector must not run twice at once in one process.
    """
    rt = get_runtime(request)
    with request.app.state.refresh_lock, rt.app.acting_as(who.actor):
        rt.refresh()  # verify-by-project looks vintages up in the read models
        result = action(rt)
        rt.refresh()
    return result


def _trail(request: Request, response: Response, vintage_id: str) -> str:
    """Point ``Location`` at the vintage's audit trail (which the event joined); the full id."""
    vid = get_runtime(request).app.resolve(vintage_id)
    response.headers["Location"] = f"/vintages/{vid}/history"
    return vid


# ---------------------------------------------------------------------- endpoints


@router.post("/vintages", status_code=201, summary="Issue a vintage",
             response_model=schemas.Issued, responses=CREATED)
def post_vintage(request: Request, response: Response, body: IssueRequest,
                 who: Writer) -> dict[str, Any]:
    """Issue a vintage: its stream and its permanence clock begin here."""
    spec = body.model_dump(exclude_none=True)
    if "vintage_id" in spec:
        spec["vintage_id"] = str(spec["vintage_id"])
    if body.vintage_id is not None:
        _refuse_existing(request, str(body.vintage_id))
    vid = _record(request, who, lambda rt: rt.app.issue(**spec))
    response.headers["Location"] = f"/vintages/{vid}"
    return {"vintage_id": vid, "recorded_by": who.actor}


def _refuse_existing(request: Request, vid: str) -> None:
    if get_runtime(request).app.existing([vid]):
        raise HTTPException(status_code=409, detail=f"vintage_id: vintage {vid} exists already")


@router.post("/vintages/{vintage_id}/verifications", status_code=201,
             summary="Record a verification of one vintage", response_model=schemas.Verified,
             responses=CREATED)
def post_verification(request: Request, response: Response, vintage_id: VintageId,
                      body: VerifyRequest, who: Writer) -> dict[str, Any]:
    _record(request, who, lambda rt: rt.app.verify(
        vintage_id, body.on, body.period_start, body.period_end, body.verifier))
    _trail(request, response, vintage_id)
    return {"verified": [vintage_id], "recorded_by": who.actor}


@router.post("/projects/{project}/verifications", status_code=201,
             summary="Verify every monitored vintage of a project",
             response_model=schemas.ProjectVerified, responses=CREATED)
def post_project_verification(
    request: Request,
    response: Response,
    project: Annotated[str, PathParam(description="Project identifier.", max_length=200)],
    body: ProjectVerifyRequest,
    who: Writer,
) -> dict[str, Any]:
    """Verify each monitored vintage of the project; ``Location`` lists the project's
    vintages."""
    ids = _record(request, who, lambda rt: rt.app.verify_project(project, body.on, body.verifier))
    response.headers["Location"] = "/vintages?" + urlencode({"project": project}, quote_via=quote)
    return {"project": project, "verified": ids, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/reversals", status_code=201, summary="Record a reversal",
             response_model=schemas.ReversalRecorded, responses=CREATED)
def post_reversal(request: Request, response: Response, vintage_id: VintageId,
                  body: ReversalRequest, who: Writer) -> dict[str, Any]:
    """Record a reversal; answers its id and classification."""
    result = _record(request, who, lambda rt: rt.app.record_reversal(
        vintage_id, body.on, body.quantity, body.cause, body.negligence, body.wilful,
        body.within_control, body.note))
    _trail(request, response, vintage_id)
    return {"vintage_id": vintage_id, **result, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/compensations", status_code=201,
             summary="Record compensation of a reversal", response_model=schemas.Compensated,
             responses=CREATED)
def post_compensation(request: Request, response: Response, vintage_id: VintageId,
                      body: CompensationRequest, who: Writer) -> dict[str, Any]:
    """Compensate a reversal (never above what is still due); answers what is due after."""

    def act(rt: Runtime) -> dict[str, Any]:
        rt.app.compensate(vintage_id, body.reversal_id, body.route, body.quantity, body.on,
                          body.reference)
        due: dict[str, Any] = rt.app.show(vintage_id, body.on)["due"]
        return due

    due = _record(request, who, act)
    _trail(request, response, vintage_id)
    return {"vintage_id": vintage_id, "reversal_id": body.reversal_id, "due": due,
            "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/retirements", status_code=201, summary="Retire credits",
             response_model=schemas.Retired, responses=CREATED)
def post_retirement(request: Request, response: Response, vintage_id: VintageId,
                    body: RetirementRequest, who: Writer) -> dict[str, Any]:
    """Retire credits (retirement does not reduce exposure)."""
    _record(request, who, lambda rt: rt.app.retire(
        vintage_id, body.quantity, body.on, body.beneficiary))
    _trail(request, response, vintage_id)
    return {"vintage_id": vintage_id, "retired": body.quantity, "recorded_by": who.actor}


@router.post("/vintages/{vintage_id}/cancellations", status_code=201,
             summary="Cancel or invalidate credits", response_model=schemas.Cancelled,
             responses=CREATED)
def post_cancellation(request: Request, response: Response, vintage_id: VintageId,
                      body: CancellationRequest, who: Writer) -> dict[str, Any]:
    """Cancel or invalidate credits (they leave the exposure)."""

    def act(rt: Runtime) -> None:
        command = rt.app.invalidate if body.invalidation else rt.app.cancel
        command(vintage_id, body.quantity, body.on, body.reason)

    _record(request, who, act)
    _trail(request, response, vintage_id)
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
             openapi_extra=_CSV_BODY, response_model=schemas.Imported,
             responses=problems(404, 409, 413))
async def post_import(
    request: Request,
    fmt: Annotated[str, PathParam(description="Export format (acr, car, art, verra, ...).")],
    who: Writer,
    filename: Annotated[
        str | None, Query(max_length=200, pattern=PRINTABLE,
                          description="The file's name, echoed in the summary.")
    ] = None,
    batch: Annotated[int, Query(ge=1, le=100_000, description="Records per transaction.")] = 2_000,
) -> dict[str, Any]:
    """Load the export as ``permanence import FORMAT FILE``: repeatable, batch by batch.

    Unknown format: 404. A file that is not that format (missing columns, undecodable
    bytes): 422 and nothing written. Rows that cannot be imported are listed in
    ``rejects`` with their line and reason. A repeat imports nothing new (200, not 201).
    """
    from permanence.imports import PARSERS, ImportFormatError
    from permanence.imports.loader import import_file

    if fmt not in PARSERS:
        raise HTTPException(
            status_code=404,
            detail=f"format: unknown import format {fmt!r}; known formats: "
            f"{', '.join(sorted(PARSERS))}",
        )
    rt = get_runtime(request)
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
                with importer.app.acting_as(who.actor):
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
            raise UsageError(str(e).replace(str(path), "upload")) from None
    data["file"] = filename or "upload.csv"
    data["rejects_file"] = None
    data["recorded_by"] = who.actor
    return data


__all__ = ["MAX_TONNES", "router"]
