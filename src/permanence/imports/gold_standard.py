"""Gold Standard ``issuances.csv``: one row per issued serial block.

Per row: ``quantity`` = ``Quantity`` (which must equal the serial range's size), ``buffer`` = 0
(the file states no buffer share), ``total`` = None; ``project`` = ``GS`` + ``GSID`` (the
spelling Gold Standard's own serials use, e.g. ``GS11236``); ``vintage_start``/``vintage_end``
= ``Monitoring Period Start``/``End`` as stated (the period can span several vintage years;
``vintage_year`` says which one the block belongs to); ``issued_on`` = date of ``Issuance Date``;
``authorization`` = ``Article Six Authorization`` verbatim (``Not Applicable`` included);
``labels`` = the comma-separated entries of ``Label``. A row whose ``Credit Status`` is present
and not ``Issued`` is Skipped.

Serial numbers come in two shapes:

- Gold Standard's own, ``GS1-1-UG-GS11236-16-2024-30307-1-19149``: the last two numbers are the
  first and last serial, and everything before them (``GS1-1-UG-GS11236-16-2024-30307``, which
  ends with the issuance batch) is ``serial_prefix``, the space those numbers count in;
- CDM (CER) ranges, ``RW-5-1463953-2-2-0-7014 - RW-5-1467609-2-2-0-7014``: the third field of
  each end is the serial; ``serial_prefix`` is party and unit type (``RW-5``), the space the UN
  registry numbers CERs in, so overlaps between CER blocks of any project can be detected.

``source_key`` = the ``Serial Number`` with its spaces normalised (see
:func:`~permanence.imports.cells.serial_range`): one issuance block, stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, identifier, iso_date, parse_rows, serial_range, us_or_iso_date
from .records import IssuanceRecord, ParseResult, Skipped

FORMAT = "gold-standard"
PROGRAM = "gold-standard"

#: The export states no buffer, but Gold Standard withholds a flat share (the profile's rate)
#: of land-use and forest credits: the importer derives it for reversible rows.
BUFFER_FROM_PROFILE = True

SERIAL = "Serial Number"
QUANTITY = "Quantity"

REQUIRED = ("Vintage", QUANTITY, "GSID", "Issuance Date", SERIAL)

_NATIVE = re.compile(r"(?P<prefix>.+)-(?P<first>\d+)-(?P<last>\d+)")
_CDM_END = re.compile(
    r"(?P<party>[A-Z]{2})-(?P<unit>\d+)-(?P<serial>\d+)-(?P<rest>\d+-\d+-\d+-\d+)"
)
_PERIOD = "YYYY-MM-DD or MM/DD/YYYY"


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream Gold Standard issuance rows as records, Rejected or Skipped, in file order."""
    return parse_rows(Path(path), fmt=FORMAT, required=REQUIRED, read=_read)


def split_serial(serial: str) -> tuple[str, str, str] | None:
    """(prefix, first, last) of a Gold Standard or CDM serial range, or None if it is neither.

    Unicode and stray spaces are normalised first (older exports have no-break spaces and
    spaces inside serials, ``RW-5-1568504-2-2-0- 6207``)."""
    low, high = serial_range(serial)
    if high is not None:
        start, stop = _CDM_END.fullmatch(low), _CDM_END.fullmatch(high)
        if start is None or stop is None:
            return None
        same_block = all(start[part] == stop[part] for part in ("party", "unit", "rest"))
        if not same_block:
            return None
        return f"{start['party']}-{start['unit']}", start["serial"], stop["serial"]
    native = _NATIVE.fullmatch(low)
    if native is None:
        return None
    return native["prefix"], native["first"], native["last"]


def _read(row: Row) -> ParseResult:
    status = row.text("Credit Status")
    if status is not None and status.lower() != "issued":
        return Skipped(row.line, f"column 'Credit Status' is {status!r}, not an issuance")
    project = identifier(row.required("GSID"))
    written = row.required(SERIAL)
    first_end, last_end = serial_range(written)
    serial = f"{first_end} - {last_end}" if last_end else first_end
    parts = split_serial(serial)
    if parts is None:
        raise CellError(f"column {SERIAL!r}: {serial!r} is not a serial range")
    prefix, first, last = parts
    quantity = row.whole(QUANTITY)
    if int(last) - int(first) + 1 != quantity:
        raise CellError(
            f"column {QUANTITY!r} is {quantity} but column {SERIAL!r} covers "
            f"{first}-{last} ({int(last) - int(first) + 1} credits)"
        )
    vintage = row.year("Vintage")
    issued = row.day("Issuance Date", iso_date, "an ISO date or date-time")
    start = row.optional_day("Monitoring Period Start", us_or_iso_date, _PERIOD)
    end = row.optional_day("Monitoring Period End", us_or_iso_date, _PERIOD)
    return IssuanceRecord(
        line=row.line,
        program=PROGRAM,
        source_key=serial,
        project=f"GS{project}",
        project_name=row.text("Project Name"),
        vintage_year=vintage,
        vintage_start=start,
        vintage_end=end,
        issued_on=issued,
        quantity=quantity,
        buffer=0,
        total=None,
        serial_first=first,
        serial_last=last,
        serial_prefix=prefix,
        crediting_start=None,
        country=row.text("Country"),
        project_type=row.text("Project Type"),
        corresponding_adjustment=None,
        authorization=row.text("Article Six Authorization"),
        labels=row.list_labels("Label", ","),
        methodology=row.text("Methodology"),
    )
