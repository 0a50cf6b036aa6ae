"""Retirement and cancellation exports (ACR, CAR): one row per serial block retired or
cancelled, read the same way for both registries.

Why one reader: both registries publish the same facts (project, vintage, serial block,
quantity, effective date, who or why) under slightly different column names, and their older
exports differ again (two-digit-year dates). Each format is a :class:`CreditFormat` naming its
columns; rows become :class:`~permanence.imports.records.CreditRecord`.

Checks per row: the quantity must equal the serial block's size when the block is stated as
``<first> to <last>`` (a disagreement rejects the row: which figure is right cannot be known),
and a two-digit-year date must be consistent with the row's own year column (``Retirement
Year``) or, failing one, lie within 15 years of its vintage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .cells import CellError, Row, parse_rows, serial_range, short_us_date, us_date
from .records import CreditRecord, ParseResult


@dataclass(frozen=True)
class CreditFormat:
    """One registry's retirements or cancellations export."""

    FORMAT: str
    PROGRAM: str
    action: str
    serials: tuple[str, ...]
    quantity: tuple[str, ...]
    effective: tuple[str, ...]
    reason: tuple[str, ...]
    year: tuple[str, ...] = ()
    key: Callable[[Row, str, int], str | None] | None = None

    @property
    def required(self) -> tuple[str, ...]:
        return ("Project ID", "Vintage")

    def parse(self, path: Path) -> Iterator[ParseResult]:
        """Stream the export's rows as credit records, Rejected, in file order."""
        return parse_rows(Path(path), fmt=self.FORMAT, required=self.required, read=self._read)

    def _read(self, row: Row) -> ParseResult:
        for group in (self.quantity, self.effective):
            if _column(row, group) is None:
                raise CellError(f"none of the columns {', '.join(map(repr, group))} is filled")
        project = row.required("Project ID")
        vintage = row.year("Vintage")
        quantity_column = _column(row, self.quantity)
        assert quantity_column is not None
        quantity = row.whole(quantity_column)
        serials_column = _column(row, self.serials)
        serials = row.text(serials_column) if serials_column else None
        if serials is not None:
            _check_block(serials, quantity, serials_column or "", quantity_column)
        effective_column = _column(row, self.effective)
        assert effective_column is not None
        year_column = _column(row, self.year)
        stated_year = row.year(year_column) if year_column else None
        on = _date(row, effective_column, stated_year, vintage)
        reason_column = _column(row, self.reason)
        return CreditRecord(
            line=row.line,
            program=self.PROGRAM,
            source_key=self.key(row, project, vintage) if self.key else None,
            project=project,
            vintage_year=vintage,
            on=on,
            quantity=quantity,
            action=self.action,
            reason=row.text(reason_column) if reason_column else None,
            serials=" to ".join(part for part in serial_range(serials) if part)
            if serials
            else None,
        )


def _column(row: Row, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that the row has and fills (exports rename columns)."""
    for name in names:
        if row.text(name) is not None:
            return name
    return None


_TAIL = re.compile(r".*?(\d+)")


def _check_block(text: str, quantity: int, column: str, quantity_column: str) -> None:
    first, last = serial_range(text)
    if last is None:
        return
    low, high = _TAIL.fullmatch(first), _TAIL.fullmatch(last)
    if low is None or high is None:
        raise CellError(f"column {column!r}: {text!r} is not a serial range")
    size = int(high[1]) - int(low[1]) + 1
    if size != quantity:
        raise CellError(
            f"column {quantity_column!r} is {quantity} but column {column!r} covers "
            f"{low[1]}-{high[1]} ({size} credits)"
        )


def _date(row: Row, column: str, stated_year: int | None, vintage: int) -> date:
    """A US date, four-digit year or (older exports) two-digit year checked against the row."""
    text = row.required(column)
    full = us_date(text)
    if full is not None:
        return full
    short = short_us_date(text, stated_year if stated_year is not None else vintage)
    if short is None or (stated_year is not None and short.year != stated_year):
        expected = f"M/D/YYYY, or M/D/YY in year {stated_year}" if stated_year else "M/D/YYYY"
        raise CellError(f"column {column!r}: {text!r} is not a date (expected {expected})")
    return short


__all__ = ["CreditFormat"]
