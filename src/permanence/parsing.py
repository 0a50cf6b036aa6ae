"""Turning command-line and HTTP text into values, with errors that name the field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
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


def required_date(text: str, field: str) -> date:
    """A date that must be given (typer has checked that it was)."""
    value = to_date(text, field)
    if value is None:
        raise UsageError(f"{field}: a date YYYY-MM-DD is required")
    return value


def to_timestamp(text: str | None, field: str = "known-at") -> datetime | None:
    """Parse an ISO timestamp (a bare date means the end of that day, UTC), in UTC.

    Any offset Python accepts is taken, but the instant must lie within years 1 to 9999 in
    UTC too (``9999-12-31T23:00-05:00`` does not): record times are compared in UTC.
    """
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
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"{field}: {text!r} falls outside years 1 to 9999 in UTC") from None


_DIGITS = re.compile(r"-?[0-9]+")


def to_quantity(text: str | int, field: str = "quantity", allow_zero: bool = False) -> int:
    """A whole, positive number of tonnes: '1.5', '-3', 'ten' and '²' are refused by name."""
    raw = str(text).strip().replace("_", "")
    if not _DIGITS.fullmatch(raw):  # ASCII digits: str.isdigit() also takes '²' and '٣'
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


def to_year(text: str | int | None, field: str = "vintage-year") -> int | None:
    """A calendar year from 1 to 9999 (a 31-digit year is refused by name)."""
    if text is None:
        return None
    raw = str(text).strip()
    if not _DIGITS.fullmatch(raw) or len(raw) > 5 or not 1 <= int(raw) <= 9999:
        raise UsageError(f"{field}: {text!r} is not a year from 1 to 9999")
    return int(raw)


def unprintable(text: str) -> str | None:
    """The first character of ``text`` that must not reach a terminal or the ledger, or None.

    Control characters (C0, DEL, C1: ESC starts every terminal escape, CSI is U+009B),
    Unicode format controls such as bidirectional overrides (they reorder what a reader
    sees), and the surrogates that stand for bytes that are not UTF-8.
    """
    for ch in text:
        if ch.isprintable() or ch == " ":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return ch
    return None


def check_text(value: str, field: str) -> str:
    """``value`` unless it carries an unprintable character (see :func:`unprintable`)."""
    bad = unprintable(value)
    if bad is not None:
        raise UsageError(
            f"{field}: contains the control character {bad!r}; text must be printable"
        )
    return value


def check_arguments(args: Sequence[str]) -> None:
    """Refuse any command-line argument carrying a control character or terminal escape.

    The message names the option the value belongs to (``--project``), or its position.
    """
    for i, arg in enumerate(args):
        if unprintable(arg) is None:
            continue
        if arg.startswith("--") and "=" in arg:
            field = arg.partition("=")[0]
        elif i > 0 and args[i - 1].startswith("-") and "=" not in args[i - 1]:
            field = args[i - 1]
        else:
            field = f"argument {i + 1}"
        check_text(arg, field)
