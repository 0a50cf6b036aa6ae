"""The permanence clock as pure functions of plain values (reference semantics, s.4).

The aggregate's properties and the read side's bulk path both call these, so a vintage's
period end or verification due date is computed one way only.
"""

from __future__ import annotations

from datetime import date, timedelta

from ledger.calendar import add_years


def clock_start(clock: str, issued_on: date, crediting_start: date | None) -> date:
    """S: the issuance date, or the first crediting-period start under that clock."""
    if clock == "crediting_period" and crediting_start is not None:
        return crediting_start
    return issued_on


def period_end(
    start: date, period_years: int, whichever_later: bool, crediting_end: date | None
) -> date:
    """E = S + period_years; under "whichever is later", at least the crediting end."""
    end = add_years(start, period_years)
    if whichever_later and crediting_end is not None and crediting_end > end:
        return crediting_end
    return end


def verification_due(last_verified_or_issued: date, interval_years: int | None) -> date | None:
    """D = (last verification, or issuance) + the profile's interval (None: never due)."""
    if interval_years is None:
        return None
    return add_years(last_verified_or_issued, interval_years)


def lapse_arises_on(due: date | None, end: date, grace_days: int) -> date | None:
    """D + grace + 1 day, the day a lapse's obligation arises, if D falls within the period."""
    if due is None or due >= end:
        return None
    return due + timedelta(days=grace_days + 1)
