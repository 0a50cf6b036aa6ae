"""Isometric ``issuances.csv``: one row per credit batch (durable carbon removal).

Per row: ``quantity`` = supplier credits, ``buffer`` = buffer-pool credits, ``total`` = the
batch total; ``project`` = ``project_id``; ``issued_on`` = date of ``issued_at`` (UTC, as
written). The file gives no vintage, project name or project country (``supplier.location`` is
the supplier's, not the project's), so those stay None.

Whole tonnes, floored: Isometric issues fractional credits (1 credit = 1 tonne, counted to the
kilogram in the ``*.credit_kgs`` columns). Tonnes in this ledger are whole, so each figure is
``<group>.credit_kgs // 1000``: a sub-tonne remainder is not a credit here. The kilograms are
the exact figures and must be present and consistent, else the row is rejected with the column
named: each ``*.credits`` cell must equal its kgs / 1000, and supplier kgs + buffer kgs must
equal total kgs. Flooring each figure apart can lose up to one tonne of the total, so the
reconciliation for this format is ``total - (quantity + buffer)`` in ``{0, 1}`` (the two
remainders add up to at most one more whole tonne), which follows from the kilograms adding up. A batch of less than one whole tonne is Skipped; one whose *supplier* part is
under a tonne while its buffer part is not still reaches the importer, which reports the
ledger's refusal of a zero-quantity vintage.

``source_key`` = ``id`` (``iss_...``), Isometric's own issuance id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, decimal_number, iso_date, parse_rows
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


def kilograms(row: Row, group: str) -> int:
    """The exact kilograms of ``<group>``, checked against its ``<group>.credits`` cell."""
    credits_column, kgs_column = f"{group}.credits", f"{group}.credit_kgs"
    kgs_text = row.text(kgs_column)
    if kgs_text is None:
        raise CellError(f"column {kgs_column!r} is missing or empty: no exact quantity")
    kgs = row.whole(kgs_column)
    credits_text = row.required(credits_column)
    credits = decimal_number(credits_text)
    if credits is None or credits < 0:
        raise CellError(f"column {credits_column!r}: {credits_text!r} is not a credit count")
    if credits * 1000 != kgs:
        raise CellError(
            f"column {credits_column!r} {credits_text!r} disagrees with column "
            f"{kgs_column!r} {kgs_text!r}"
        )
    return kgs


def _read(row: Row) -> ParseResult:
    key = row.required("id")
    project = row.required("project_id")
    issued = row.day("issued_at", iso_date, "an ISO date-time")
    supplier_kgs = kilograms(row, SUPPLIER)
    buffer_kgs = kilograms(row, BUFFER)
    total_kgs = kilograms(row, TOTAL)
    if supplier_kgs + buffer_kgs != total_kgs:
        raise CellError(
            f"kilograms do not add up: {SUPPLIER}.credit_kgs {supplier_kgs} + "
            f"{BUFFER}.credit_kgs {buffer_kgs} != {TOTAL}.credit_kgs {total_kgs}"
        )
    quantity, buffer, total = supplier_kgs // 1000, buffer_kgs // 1000, total_kgs // 1000
    if total == 0:
        return Skipped(
            row.line,
            f"less than one whole tonne issued (column '{TOTAL}.credit_kgs' is {total_kgs})",
        )
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
