"""Isometric ``issuances.csv``: one row per credit batch (durable carbon removal).

Per row: ``quantity`` = supplier credits, ``buffer`` = buffer-pool credits, ``total`` = the
batch total (checked: total = supplier + buffer); ``project`` = ``project_id``; ``issued_on`` =
date of ``issued_at`` (UTC, as written). The file gives no vintage, project name or project
country (``supplier.location`` is the supplier's, not the project's), so those stay None.

Whole tonnes: Isometric issues fractional credits (1 credit = 1 tonne, counted in kg). Tonnes in
this system are whole, so each quantity is read from its ``*.credit_kgs`` column when present
(an exact integer; the ``*.credits`` cell must agree with it to the kilogram) and must be a
multiple of 1,000 kg; without a kgs column the ``*.credits`` cell must itself be whole. A batch
that is not whole tonnes is rejected with a reason naming the column; nothing is rounded, because
rounding supplier and buffer separately would make totals disagree and invent tonnes.
(In the real sample every batch is fractional, so every row is rejected.)

``source_key`` = ``id`` (``iss_...``), Isometric's own issuance id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, check_total, decimal_number, iso_date, parse_rows, whole_number
from .records import IssuanceRecord, ParseResult, Skipped

FORMAT = "isometric"
PROGRAM = "isometric"

SUPPLIER = "supplier_credit_batch_size_total"
BUFFER = "buffer_pool_credit_batch_size_total"
TOTAL = "credit_batch_size_total"

REQUIRED = (
    "id",
    "issued_at",
    "project_id",
    f"{SUPPLIER}.credits",
    f"{BUFFER}.credits",
    f"{TOTAL}.credits",
)


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream Isometric issuance rows as records, Rejected or Skipped, in file order."""
    return parse_rows(Path(path), fmt=FORMAT, required=REQUIRED, read=_read)


def tonnes(row: Row, group: str) -> int:
    """Whole tonnes of ``<group>.credits``, using ``<group>.credit_kgs`` as the exact figure."""
    credits_column, kgs_column = f"{group}.credits", f"{group}.credit_kgs"
    credits_text = row.required(credits_column)
    credits = decimal_number(credits_text)
    if credits is None or credits < 0:
        raise CellError(f"column {credits_column!r}: {credits_text!r} is not a credit count")
    kgs_text = row.text(kgs_column)
    if kgs_text is None:
        whole = whole_number(credits_text)
        if whole is None:
            raise CellError(
                f"column {credits_column!r}: {credits_text!r} is not a whole number of tonnes"
            )
        return whole
    kgs = row.whole(kgs_column)
    if (credits * 1000).to_integral_value() != kgs:
        raise CellError(
            f"column {credits_column!r} {credits_text!r} disagrees with column "
            f"{kgs_column!r} {kgs_text!r}"
        )
    if kgs % 1000:
        raise CellError(
            f"column {credits_column!r}: {credits_text!r} is not a whole number of tonnes "
            f"({kgs_column} {kgs} is not a multiple of 1000)"
        )
    return kgs // 1000


def _read(row: Row) -> ParseResult:
    key = row.required("id")
    project = row.required("project_id")
    issued = row.day("issued_at", iso_date, "an ISO date-time")
    quantity = tonnes(row, SUPPLIER)
    buffer = tonnes(row, BUFFER)
    total = tonnes(row, TOTAL)
    check_total(
        total, quantity, buffer, (f"{TOTAL}.credits", f"{SUPPLIER}.credits", f"{BUFFER}.credits")
    )
    if total == 0:
        return Skipped(row.line, f"no credits issued (column '{TOTAL}.credits' is 0)")
    return IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=key,
        project=project,
        project_name=None,
        vintage_year=None,
        vintage_start=None,
        vintage_end=None,
        issued_on=issued,
        quantity=quantity,
        buffer=buffer,
        total=total,
        serial_first=None,
        serial_last=None,
        serial_prefix=None,
        crediting_start=None,
        country=None,
        project_type=None,
        corresponding_adjustment=None,
        authorization=None,
    )
