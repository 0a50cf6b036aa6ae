"""Verra (VCS) ``transactions.csv``: one row per serial block of VCUs.

Every row is a block that was issued (Verra splits a block when part of it is retired, so a
retired block is still part of what was issued): each row yields an :class:`IssuanceRecord` of
its block, and a row with a ``Retirement/Cancellation Date`` also yields a
:class:`RetirementRecord` of the whole block on that date (``beneficiary`` = ``Retirement
Beneficiary``), so the importer issues the block and then retires it. Summing the issuance
records therefore gives everything issued in the file's blocks, retired or not.

Per row: ``quantity`` = ``Quantity Issued`` (which must equal the serial range's size),
``buffer`` = 0 (Verra's pooled buffer is a separate account, not withheld per issuance),
``total`` = None; ``project`` = ``VCS`` + ``ID`` (Verra's own spelling, e.g. ``VCS1340``), so it
cannot collide with another registry's bare number; ``vintage_year`` is the year of the vintage
period when it lies in one calendar year, else None (the dates are kept); ``authorization`` lists
the ``Article 6 Authorized ...`` entries of ``Additional Certifications``; ``labels`` all of them.

Serial numbers look like ``19385-941467007-941467431-VCS-VCU-1507-VER-ET-14-1340-01012020-
31122020-1``: block id, first and last serial, program, unit type, then descriptive fields.
``serial_prefix`` is ``<program>-<unit type>`` (``VCS-VCU``), the space Verra numbers serials in.

``source_key`` = the full ``Serial Number``: it is unique per block and is Verra's own handle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, identifier, iso_date, read_rows, spaces
from .records import IssuanceRecord, ParseResult, Rejected, RetirementRecord

FORMAT = "verra"
PROGRAM = "verra-vcs"

SERIAL = "Serial Number"
QUANTITY = "Quantity Issued"
RETIRED = "Retirement/Cancellation Date"

REQUIRED = ("Issuance Date", "Vintage Start", "Vintage End", "ID", QUANTITY, SERIAL, RETIRED)

_SERIAL = re.compile(r"(?P<block>\d+)-(?P<first>\d+)-(?P<last>\d+)-(?P<space>[A-Z]+-[A-Z]+)-.+")
_ISO = "YYYY-MM-DD"


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream Verra rows: every block as an issuance, retired blocks also as a retirement."""
    for row in read_rows(Path(path), fmt=FORMAT, required=REQUIRED):
        if isinstance(row, Rejected):
            yield row
            continue
        try:
            yield from _read(row)
        except CellError as exc:
            yield row.reject(str(exc))


def _read(row: Row) -> list[ParseResult]:
    """The row's issuance, and its retirement when dated; a bad cell rejects the whole row."""
    project = identifier(row.required("ID"))
    serial = spaces(row.required(SERIAL)).replace(" ", "")
    match = _SERIAL.fullmatch(serial)
    if match is None:
        raise CellError(f"column {SERIAL!r}: {serial!r} is not a Verra serial range")
    first, last = int(match["first"]), int(match["last"])
    quantity = row.whole(QUANTITY)
    if last - first + 1 != quantity:
        raise CellError(
            f"column {QUANTITY!r} is {quantity} but column {SERIAL!r} covers "
            f"{match['first']}-{match['last']} ({last - first + 1} credits)"
        )
    issued = row.day("Issuance Date", iso_date, _ISO)
    start = row.day("Vintage Start", iso_date, _ISO)
    end = row.day("Vintage End", iso_date, _ISO)
    if end < start:
        raise CellError(f"column 'Vintage End' {end} is before column 'Vintage Start' {start}")
    retired = row.optional_day(RETIRED, iso_date, _ISO)
    labels = row.list_labels("Additional Certifications", ";")
    article6 = [label for label in labels if label.startswith("Article 6 Authorized")]
    issuance = IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=serial,
        project=f"VCS{project}",
        project_name=row.text("Name"),
        vintage_year=start.year if start.year == end.year else None,
        vintage_start=start,
        vintage_end=end,
        issued_on=issued,
        quantity=quantity,
        buffer=0,
        total=None,
        serial_first=match["first"],
        serial_last=match["last"],
        serial_prefix=match["space"],
        crediting_start=None,
        country=row.text("Country/Area"),
        project_type=row.text("Project Type"),
        corresponding_adjustment=None,
        authorization="; ".join(article6) or None,
        labels=labels,
        methodology=row.text("Methodology"),
    )
    if retired is None:
        return [issuance]
    retirement = RetirementRecord(
        line=row.line,
        program=PROGRAM,
        source_key=serial,
        on=retired,
        quantity=quantity,
        beneficiary=row.text("Retirement Beneficiary"),
    )
    return [issuance, retirement]
