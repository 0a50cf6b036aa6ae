"""ART TREES ``issuances.csv`` (jurisdictional REDD+ programs; also lists FCPF issuances).

Per row: ``quantity`` = ``Credits Verified``, ``buffer`` = ``Credits Deposited in Buffer``,
``total`` = ``Total Emission Reductions/Removals`` (checked: total = verified + buffer);
``project`` is the ``Program ID``; ``issued_on`` is ``Date Approved``.

``source_key`` = ``<Program ID>|<Vintage>|<Date Approved, ISO>``: ART approves one issuance per
program and vintage at a time (Guyana's 2016-2020 vintages were all approved on 12/01/2022 and
stay distinct by vintage); unique over the real sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .cells import Row, check_total, parse_rows, us_date
from .records import IssuanceRecord, ParseResult, Skipped

FORMAT = "art"
PROGRAM = "art-trees"

TOTAL = "Total Emission Reductions/Removals"
BUFFER = "Credits Deposited in Buffer"
VERIFIED = "Credits Verified"

REQUIRED = ("Date Approved", "Program ID", "Vintage", TOTAL, BUFFER, VERIFIED)


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream ART TREES issuance rows as records, Rejected or Skipped, in file order."""
    return parse_rows(Path(path), fmt=FORMAT, required=REQUIRED, read=_read)


def _read(row: Row) -> ParseResult:
    program_id = row.required("Program ID")
    approved = row.day("Date Approved", us_date, "MM/DD/YYYY")
    vintage = row.whole("Vintage")
    total = row.whole(TOTAL)
    buffer = row.whole(BUFFER)
    quantity = row.whole(VERIFIED)
    check_total(total, quantity, buffer, (TOTAL, VERIFIED, BUFFER))
    if total == 0:
        return Skipped(row.line, f"no credits issued (column {TOTAL!r} is 0)")
    return IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=f"{program_id}|{vintage}|{approved.isoformat()}",
        project=program_id,
        project_name=row.text("Program Name"),
        vintage_year=vintage,
        vintage_start=None,
        vintage_end=None,
        issued_on=approved,
        quantity=quantity,
        buffer=buffer,
        total=total,
        serial_first=None,
        serial_last=None,
        serial_prefix=None,
        crediting_start=None,
        country=row.text("Program Country"),
        project_type=row.text("Program Type"),
        corresponding_adjustment=None,
        authorization=None,
        labels=row.yes_labels("CCP Approved", "CORSIA Eligible"),
    )
