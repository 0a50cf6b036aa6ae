"""Turning command-line and HTTP text into values, with errors that name the field."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledger.calendar import parse_iso_date


class UsageError(ValueError):
    """Malformed input (exit code 2 on the CLI, 422 over HTTP)."""


def to_date(text: str | None, field: str) -> date | None:
    if text is None:
        return None
    try:
        return parse_iso_date(text.strip(), field)
    except ValueError as e:
        raise UsageError(str(e)) from None


def to_timestamp(text: str | None, field: str = "known-at") -> datetime | None:
    """Parse an ISO timestamp (a bare date means the end of that day, UTC)."""
    if text is None:
        return None
    raw = text.strip()
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime(d.year, d.month, d.day, 23, 59, 59, 999999, tzinfo=UTC)
        value = datetime.fromisoformat(raw)  # accepts "Z" (Python 3.11+)
    except ValueError:
        raise UsageError(f"{field}: {text!r} is not an ISO timestamp (YYYY-MM-DDTHH:MM:SS)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_quantity(text: str | int, field: str = "quantity", allow_zero: bool = False) -> int:
    """A whole, positive number of tonnes: '1.5', '-3' and 'ten' are refused by name."""
    raw = str(text).strip().replace("_", "")
    if not raw.lstrip("-").isdigit():
        raise UsageError(f"{field}: {text!r} is not a whole number of tonnes")
    if len(raw) > 16:
        raise UsageError(f"{field}: {text!r} is larger than any quantity of tonnes")
    value = int(raw)
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{field}: must be a positive whole number of tonnes, got {value}")
    return value


def to_serials(text: str | None) -> tuple[str | None, str | None]:
    """``FIRST-LAST`` serial range (the last hyphen splits)."""
    if text is None:
        return None, None
    first, sep, last = text.strip().rpartition("-")
    if not sep or not first or not last:
        raise UsageError(f"serials: {text!r} is not a range FIRST-LAST")
    if first.isdigit() and last.isdigit() and int(last) < int(first):
        raise UsageError(f"serials: range {text!r} ends before it starts")
    return first, last
