"""Reading registry CSV exports row by row, and reading their cells strictly.

Shared by every format module so that all formats agree on what a whole number, a date, an
empty cell and a line number are. Everything streams: a 100,000-row export is never held in
memory. Only the stdlib ``csv`` module is used; no cell is ever evaluated (a cell starting with
``=`` is just text).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from ledger.limits import FIRST_YEAR, LAST_YEAR

from .records import ParseResult, Rejected


class ImportFormatError(ValueError):
    """The file as a whole is not in the expected format (e.g. its header lacks columns).

    Raised when iteration starts, before any record, so nothing from a wrong file is imported.
    """


class CellError(ValueError):
    """One cell cannot be read; the message names the column and the problem."""


@lru_cache(maxsize=1024)
def normalise(name: str) -> str:
    """Header names compare with whitespace runs collapsed: real exports have stray doubled
    and trailing spaces (ART ``Program  Country``) that must not make a column "missing"."""
    return " ".join(name.split())


_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def decimal_number(text: str) -> Decimal | None:
    """``text`` as an exact decimal (thousands separators allowed), or None if not a number.

    A strict pattern is checked first because ``Decimal`` would accept ``NaN`` and ``1e3``.
    """
    if not _NUMBER.fullmatch(text):
        return None
    return Decimal(text.replace(",", ""))


#: The largest whole number a cell may hold: a ledger quantity is a signed 64-bit integer.
MAX_WHOLE = 2**63 - 1

_SPACES = re.compile(r"(?:\u00c2[\u00a0 ]|[\s\u00a0\u2000-\u200b\u202f\u205f\u3000\ufeff])+")
_RANGE_SEPARATOR = re.compile(r"\s+(?:-|to)\s+", re.IGNORECASE)


def spaces(text: str) -> str:
    """Every run of Unicode space (no-break, thin, zero-width, and the UTF-8 no-break space
    read as Latin-1, ``Â\u00a0``) as one ASCII space, stripped: exports are full of them."""
    return _SPACES.sub(" ", text).strip()


def serial_range(text: str) -> tuple[str, str | None]:
    """A serial cell as (first, last): Unicode spaces normalised, the range separator
    (`` - `` or `` to ``) found, and any space left inside either end removed.

    Why remove inner spaces: registries' spreadsheets insert them (``RW-5-1568504-2-2-0- 6207``)
    but a serial number never contains one. ``last`` is None for a single serial.
    """
    cleaned = spaces(text)
    parts = _RANGE_SEPARATOR.split(cleaned, maxsplit=1)
    first = parts[0].replace(" ", "")
    last = parts[1].replace(" ", "") if len(parts) == 2 else None
    return first, last


def whole_number(text: str) -> int | None:
    """``text`` as a whole number (``2163951.0`` and ``28,571`` are whole), else None."""
    if text.isascii() and text.isdigit():  # the common case, without building a Decimal
        return int(text)
    value = decimal_number(text)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


def identifier(text: str) -> str:
    """A numeric id that went through a spreadsheet can come back as ``1340.0``; undo that."""
    return text[:-2] if text.endswith(".0") and text[:-2].isdigit() else text


_US = re.compile(
    r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})"
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s*(?P<half>[AaPp][Mm]))?)?"
)


def us_datetime(text: str) -> datetime | None:
    """``M/D/YYYY`` with an optional time of day (``3/24/2026 9:08:01 PM``), else None.

    A regular expression rather than ``strptime``: this runs once or more per row of files
    with 100,000 rows, and ``strptime`` trying several formats is the slowest part by far.
    """
    match = _US.fullmatch(text.strip())
    if match is None:
        return None
    hour = int(match["hour"] or 0)
    half = (match["half"] or "").upper()
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "PM" else 0)
    try:
        return datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            hour,
            int(match["minute"] or 0),
            int(match["second"] or 0),
        )
    except ValueError:
        return None



_US_SHORT = re.compile(r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{2})")


def short_us_date(text: str, near: int | None) -> date | None:
    """``M/D/YY`` (older exports: ``2/7/14``) as the date whose century puts it nearest to
    ``near`` (the row's own vintage or issuance year), so ``8/2/06`` with vintage 2005 is
    2006; None when unreadable, or when the nearest reading is more than 15 years from
    ``near`` (then the century is a guess, and a guess is no date)."""
    match = _US_SHORT.fullmatch(text.strip())
    if match is None:
        return None
    short = int(match["year"])
    anchor = near if near is not None else 2000
    year = min((century + short for century in (1900, 2000, 2100)), key=lambda y: abs(y - anchor))
    if near is not None and abs(year - near) > 15:
        return None
    try:
        return date(year, int(match["month"]), int(match["day"]))
    except ValueError:
        return None


def us_date(text: str) -> date | None:
    """The calendar date of a ``M/D/YYYY[ time]`` cell, as written (no time-zone shift)."""
    moment = us_datetime(text)
    return None if moment is None else moment.date()


def iso_date(text: str) -> date | None:
    """The calendar date of an ISO 8601 date or date-time cell, as written (no zone shift)."""
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


def us_or_iso_date(text: str) -> date | None:
    """CARB's table has been published with both spellings; accept either."""
    return iso_date(text) or us_date(text)


DateParser = Callable[[str], date | None]
_When = TypeVar("_When", date, datetime)

_YES = frozenset({"yes", "y", "true"})


class Row:
    """One data row: cells addressed by (normalised) column name, with strict readers.

    The readers raise :class:`CellError` with a message naming the column; :meth:`reject`
    turns such a message into a :class:`Rejected` carrying the line and the raw row.
    """

    __slots__ = ("_cells", "_index", "line")

    def __init__(self, line: int, cells: list[str], index: dict[str, int]) -> None:
        self.line = line
        self._cells = cells
        self._index = index

    @property
    def raw(self) -> str:
        """The row re-serialised as one CSV line (quoting normalised)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(self._cells)
        return buffer.getvalue()

    def has(self, column: str) -> bool:
        return normalise(column) in self._index

    def text(self, column: str) -> str | None:
        """The stripped cell, or None when it is empty or the column is absent."""
        position = self._index.get(normalise(column))
        if position is None:
            return None
        value = self._cells[position].strip()
        return value or None

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise CellError(f"column {column!r} is empty")
        return value

    def flag(self, column: str) -> bool:
        """A Yes/No cell; anything but an explicit yes is no."""
        value = self.text(column)
        return value is not None and value.lower() in _YES

    def whole(self, column: str, *, negative: bool = False) -> int:
        """A required whole number; negative values only where ``negative`` says they belong."""
        text = self.required(column)
        value = whole_number(text)
        if value is None:
            raise CellError(f"column {column!r}: {text!r} is not a whole number")
        if abs(value) > MAX_WHOLE:
            raise CellError(f"column {column!r}: {text!r} is out of range (at most {MAX_WHOLE})")
        if value < 0 and not negative:
            raise CellError(f"column {column!r}: {text!r} is negative")
        return value

    def year(self, column: str) -> int:
        """A required calendar year (a vintage): four digits, so that 10^30 is refused here."""
        value = self.whole(column)
        if not FIRST_YEAR <= value <= LAST_YEAR:
            raise CellError(
                f"column {column!r}: {self.text(column)!r} is not a year ({FIRST_YEAR}-{LAST_YEAR})"
            )
        return value

    def optional_year(self, column: str) -> int | None:
        return None if self.text(column) is None else self.year(column)

    def optional_whole(self, column: str, *, negative: bool = False) -> int | None:
        if self.text(column) is None:
            return None
        return self.whole(column, negative=negative)

    def day(self, column: str, parser: Callable[[str], _When | None], expected: str) -> _When:
        """A required date (or date-time, with a date-time parser)."""
        text = self.required(column)
        value = parser(text)
        if value is None:
            raise CellError(f"column {column!r}: {text!r} is not a date (expected {expected})")
        return value

    def optional_day(self, column: str, parser: DateParser, expected: str) -> date | None:
        if self.text(column) is None:
            return None
        return self.day(column, parser, expected)

    def yes_labels(self, *columns: str) -> tuple[str, ...]:
        """The names of the Yes/No columns that say yes, as labels."""
        return tuple(column for column in columns if self.flag(column))

    def list_labels(self, column: str, separator: str) -> tuple[str, ...]:
        """The entries of a list cell (``"ICVCM CCP, Emission Reduction"``), verbatim."""
        value = self.text(column)
        if value is None:
            return ()
        return tuple(part.strip() for part in value.split(separator) if part.strip())

    def reject(self, reason: str) -> Rejected:
        return Rejected(self.line, f"line {self.line}: {reason}", self.raw)


def read_rows(path: Path, *, fmt: str, required: Sequence[str]) -> Iterator[Row | Rejected]:
    """Yield each non-blank data row of ``path`` with the line it starts on.

    Checks the header first (``ImportFormatError`` naming every missing column); strips a UTF-8
    BOM; a row with more cells than the header is accepted only if the extra cells are empty
    (exports end rows with a trailing comma), any other width mismatch is a :class:`Rejected`.
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFormatError(
                f"{Path(path).name}: empty file, expected a {fmt} header row"
            ) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFormatError(f"{Path(path).name}: unreadable header: {exc}") from exc
        index: dict[str, int] = {}
        for position, name in enumerate(header):
            index.setdefault(normalise(name), position)
        missing = [column for column in required if normalise(column) not in index]
        if missing:
            names = ", ".join(repr(column) for column in missing)
            raise ImportFormatError(
                f"{Path(path).name}: not a {fmt} export: missing column(s) {names}"
            )
        width = len(header)
        next_line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                raise ImportFormatError(
                    f"{Path(path).name}: unreadable from line {next_line}: {exc}"
                ) from exc
            line, next_line = next_line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
                cells = cells[:width]
            if len(cells) != width:
                row = Row(line, cells, {})
                yield row.reject(f"row has {len(cells)} cells, the header has {width}")
                continue
            yield Row(line, cells, index)


def parse_rows(
    path: Path, *, fmt: str, required: Sequence[str], read: Callable[[Row], ParseResult]
) -> Iterator[ParseResult]:
    """The loop of every one-record-per-row format: a :class:`CellError` rejects the row."""
    for row in read_rows(path, fmt=fmt, required=required):
        if isinstance(row, Rejected):
            yield row
            continue
        try:
            yield read(row)
        except CellError as exc:
            yield row.reject(str(exc))


def count_rows(path: Path) -> int:
    """Non-blank data rows (what a progress bar counts), without checking the columns.

    Reading the whole file also proves it decodes: a byte that is not UTF-8 or broken quoting
    anywhere is an :class:`ImportFormatError` here, so an importer that counts first never stops
    half-way through a file it has started writing to the ledger.
    """
    _check_utf8(Path(path))
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            if next(reader, None) is None:
                return 0
            return sum(1 for cells in reader if any(cell.strip() for cell in cells))
        except csv.Error as exc:
            raise ImportFormatError(
                f"{Path(path).name}: unreadable from line {reader.line_num}: {exc}"
            ) from exc


def _check_utf8(path: Path) -> None:
    """Decode line by line, so that the error names the physical line of the bad byte."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ImportFormatError(
                    f"{path.name}: unreadable line {number}: not UTF-8 (byte {exc.start + 1} of "
                    "the line)"
                ) from exc


def check_total(total: int, project: int, buffer: int, columns: tuple[str, str, str]) -> None:
    """A stated total must equal project + buffer, else the row is not trustworthy."""
    if total != project + buffer:
        names = ", ".join(repr(column) for column in columns)
        raise CellError(f"total {total} != project {project} + buffer {buffer} (columns {names})")
