"""Calendar arithmetic as the brief defines it: "N years after D" is calendar addition."""

from __future__ import annotations

from datetime import date, timedelta


def add_years(day: date, years: int) -> date:
    """Return ``day`` plus ``years`` calendar years; 29 February falls back to 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def add_days(day: date, days: int) -> date:
    """Return ``day`` plus ``days`` days (named for symmetry with :func:`add_years`)."""
    return day + timedelta(days=days)


def parse_iso_date(text: str, field: str = "date") -> date:
    """Parse ``YYYY-MM-DD`` strictly, naming the field in the error."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {text!r} is not a date in the form YYYY-MM-DD") from None
