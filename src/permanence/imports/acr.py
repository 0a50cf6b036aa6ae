"""American Carbon Registry (ACR) ``issuances.csv``.

Per row: ``quantity`` = ``Credits Issued to Project``; ``buffer`` = ``Credits Issued to Buffer
Pool`` + ``Credits Transferred to Buffer Pool`` (the vintage's whole buffer contribution: ACR
projects contribute either by issuance into the pool or by transferring credits to it, and both
stand behind the pool); ``buffer_transferred`` = the transferred part; ``total`` = ``Total
Credits Issued``, checked against project + *issued* to the buffer only, because the transfer is
not part of what was issued (see :class:`~permanence.imports.records.IssuanceRecord`).
``issued_on`` is the GMT date of ``Date Issued (GMT)``.

``source_key`` = ``<Project ID>|<Vintage>|<Date Issued, ISO date-time>|<ReportingPeriodBegin>/
<ReportingPeriodEnd>`` (ISO dates), plus ``|removal`` when ``Verified Removal`` is Yes.
Older exports (2021) have ``Date Issued`` as ``M/D/YY`` (its century taken from the row's own
``Issuance Year``, which it must then match), no reporting period and no transfer column: their
key is ``<Project ID>|<Vintage>|<Date Issued, ISO date>``.
Why the suffix: ACR publishes one issuance as two rows with the same project, vintage, time and
reporting period when part of it is a verified removal (12 such pairs in the real sample), and
the ``Verified Removal`` flag is the only stated difference besides the quantities.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from .cells import CellError, Row, check_total, parse_rows, short_us_date, us_date, us_datetime
from .records import IssuanceRecord, ParseResult, Skipped

FORMAT = "acr"
PROGRAM = "acr"

ISSUED = "Date Issued (GMT)"
TOTAL = "Total Credits Issued"
PROJECT_CREDITS = "Credits Issued to Project"
BUFFER_CREDITS = "Credits Issued to Buffer Pool"
TRANSFERRED = "Credits Transferred to Buffer Pool"

OLD_ISSUED = "Date Issued"
ISSUANCE_YEAR = "Issuance Year"

REQUIRED = (
    "Vintage",
    TOTAL,
    PROJECT_CREDITS,
    BUFFER_CREDITS,
    "Project ID",
)

_US = "M/D/YYYY"


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream ACR issuance rows as records, Rejected or Skipped, in file order."""
    return parse_rows(Path(path), fmt=FORMAT, required=REQUIRED, read=_read)


def issuance_key(
    project: str, vintage: int, issued: datetime, begin: date, end: date, removal: bool
) -> str:
    """The key of a current-shape ACR issuance (also formed from its retirement rows)."""
    key = f"{project}|{vintage}|{issued.isoformat()}|{begin.isoformat()}/{end.isoformat()}"
    return key + "|removal" if removal else key


def _issued(row: Row, vintage: int) -> datetime:
    """``Date Issued (GMT)``, or an older export's ``Date Issued`` (``M/D/YY`` allowed)."""
    if row.has(ISSUED):
        return row.day(ISSUED, us_datetime, "M/D/YYYY h:mm:ss AM")
    text = row.required(OLD_ISSUED)
    moment = us_datetime(text)
    if moment is not None:
        return moment
    year = row.optional_year(ISSUANCE_YEAR)
    day = short_us_date(text, year if year is not None else vintage)
    if day is None or (year is not None and day.year != year):
        expected = f"M/D/YY in year {year}" if year is not None else "M/D/YY near the vintage"
        raise CellError(f"column {OLD_ISSUED!r}: {text!r} is not a date (expected {expected})")
    return datetime(day.year, day.month, day.day)


def _read(row: Row) -> ParseResult:
    if not row.has(ISSUED) and not row.has(OLD_ISSUED):
        raise CellError(f"neither column {ISSUED!r} nor {OLD_ISSUED!r} is present")
    project = row.required("Project ID")
    vintage = row.year("Vintage")
    issued = _issued(row, vintage)
    begin = row.optional_day("ReportingPeriodBegin", us_date, _US)
    end = row.optional_day("ReportingPeriodEnd", us_date, _US)
    total = row.whole(TOTAL)
    quantity = row.whole(PROJECT_CREDITS)
    issued_to_buffer = row.whole(BUFFER_CREDITS)
    check_total(total, quantity, issued_to_buffer, (TOTAL, PROJECT_CREDITS, BUFFER_CREDITS))
    transferred = row.optional_whole(TRANSFERRED) or 0
    buffer = issued_to_buffer + transferred
    crediting_start = row.optional_day("Project Crediting Period Start Date", us_date, _US)
    if quantity == 0 and buffer == 0:
        return Skipped(row.line, f"no credits issued (column {TOTAL!r} is 0)")
    if begin is not None and end is not None:
        key = issuance_key(project, vintage, issued, begin, end, row.flag("Verified Removal"))
    else:
        key = f"{project}|{vintage}|{issued.date().isoformat()}"
    return IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=key,
        project=project,
        project_name=row.text("Project Name"),
        vintage_year=vintage,
        vintage_start=begin,
        vintage_end=end,
        issued_on=issued.date(),
        quantity=quantity,
        buffer=buffer,
        total=total,
        serial_first=None,
        serial_last=None,
        serial_prefix=None,
        crediting_start=crediting_start,
        country=row.text("Project Site Country"),
        project_type=row.text("Project Type"),
        corresponding_adjustment=None,
        authorization=None,
        labels=row.yes_labels("CCP Approved", "Verified Removal"),
        buffer_transferred=transferred,
        methodology=row.text("Project Methodology/Protocol") or row.text("Protocol Version"),
        verifier=row.text("Project VVB") or row.text("Verifier"),
    )
