"""Climate Action Reserve (CAR) ``issuances.csv``.

Quantities: ``total`` = ``Total Offset Credits Issued``; ``buffer`` = ``Offset Credits Currently
in Reserve Buffer Pool`` + ``Offset Credits Intended for Compliance Buffer Pool`` (empty = 0);
``quantity`` = total - buffer. The buffer is *inside* the total: under CAR's forest protocols the
buffer contribution is a share of the CRTs issued for the reporting period, and in the real sample
every buffer is below its total (Mexico forest rows ~29%, ARB-compliance forest rows ~18-19% of
the total). A buffer larger than the total is rejected. Caveat the importer should know: the
reserve column says *currently*, so it can shrink after CAR retires buffer credits for a
reversal, and a later export of the same issuance may then show a smaller buffer.

``source_key`` = ``<Project ID>|<Vintage>|<Date Issued, ISO>|<Total Offset Credits Issued>``.
Why the total: the file has no row-level id, and CAR publishes some issuances as several rows
with the same project, vintage and date (CAR1568 in the real sample: 118,084 and 22,287 CRTs on
12/31/2025); the total issued is stated once and does not change afterwards, unlike the
"currently in buffer" figure.

A row flagged ``Zero-Credit Reporting Period`` = Yes, or with no credits at all, is Skipped.
``Canceled for Compliance`` (credits converted to ARB offsets) is not read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, parse_rows, us_date
from .records import IssuanceRecord, ParseResult, Skipped

FORMAT = "car"
PROGRAM = "car-forest"

TOTAL = "Total Offset Credits Issued"
RESERVE = "Offset Credits Currently in Reserve Buffer Pool"
COMPLIANCE = "Offset Credits Intended for Compliance Buffer Pool"

REQUIRED = ("Date Issued", "Project ID", "Vintage", TOTAL, RESERVE, COMPLIANCE)


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream CAR issuance rows as records, Rejected or Skipped, in file order."""
    return parse_rows(Path(path), fmt=FORMAT, required=REQUIRED, read=_read)


def _read(row: Row) -> ParseResult:
    project = row.required("Project ID")
    issued = row.day("Date Issued", us_date, "MM/DD/YYYY")
    vintage = row.year("Vintage")
    total = row.whole(TOTAL)
    reserve = row.optional_whole(RESERVE) or 0
    compliance = row.optional_whole(COMPLIANCE) or 0
    buffer = reserve + compliance
    if buffer > total:
        raise CellError(
            f"buffer {buffer} (columns {RESERVE!r} {reserve} + {COMPLIANCE!r} {compliance}) "
            f"exceeds column {TOTAL!r} {total}"
        )
    if row.flag("Zero-Credit Reporting Period"):
        return Skipped(
            row.line, "zero-credit reporting period (column 'Zero-Credit Reporting Period')"
        )
    if total == 0:
        return Skipped(row.line, f"no credits issued (column {TOTAL!r} is 0)")
    labels = row.yes_labels("CCP Approved")
    reversible = row.text("Reversible/Non-Reversible")
    if reversible is not None:
        labels += (reversible,)
    return IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=f"{project}|{vintage}|{issued.isoformat()}|{total}",
        project=project,
        project_name=row.text("Project Name"),
        vintage_year=vintage,
        vintage_start=None,
        vintage_end=None,
        issued_on=issued,
        quantity=total - buffer,
        buffer=buffer,
        total=total,
        serial_first=None,
        serial_last=None,
        serial_prefix=None,
        crediting_start=None,
        country=row.text("Project Site Country"),
        project_type=row.text("Project Type"),
        corresponding_adjustment=row.text("Corresponding Adjustment"),
        authorization=None,
        labels=labels,
        methodology=row.text("Protocol and Version"),
        reversible_stated=_stated(reversible),
        verifier=row.text("Verification Body"),
    )


def _stated(text: str | None) -> bool | None:
    """CAR's own ``Reversible/Non-Reversible`` cell, when filled."""
    if text is None:
        return None
    folded = text.lower().replace("-", "").replace(" ", "")
    if folded == "reversible":
        return True
    if folded == "nonreversible":
        return False
    return None
