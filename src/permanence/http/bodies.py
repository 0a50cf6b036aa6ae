"""The registries' write requests: JSON bodies validated before the ledger sees them.

An unknown field, a fractional, negative or absurd quantity (over :data:`MAX_TONNES`), a date
that is not ``YYYY-MM-DD`` between :data:`EARLIEST` and :data:`LATEST`, or a control character
in a text field is a 422 whose ``errors`` name the field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from ledger.classification import CAUSES
from ledger.limits import EARLIEST, LATEST, MAX_TONNES

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
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# Text without control characters (PostgreSQL text cannot hold NUL; none belongs in a name).
Text32 = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=PRINTABLE)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PRINTABLE)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
Text400 = Annotated[str, StringConstraints(min_length=1, max_length=400, pattern=PRINTABLE)]
Text1000 = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=PRINTABLE)]


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


__all__ = ["MAX_TONNES", "PRINTABLE", "CancellationRequest", "CompensationRequest", "IssueRequest",
           "ProjectVerifyRequest", "RetirementRequest", "ReversalRequest", "VerifyRequest"]
