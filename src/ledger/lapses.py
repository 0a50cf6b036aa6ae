"""When monitoring lapses, from the verifications' business dates alone (domain s.4).

``D(t)`` is the last verification dated on or before ``t`` (or the issuance) plus the
profile's interval; a lapse arises on the first day ``L > D(L) + grace`` with ``D(L)``
before the period end. A pure function of the dates, so the same verifications give the
same lapses whatever order they were recorded in; the aggregate records what this says
and corrects what it no longer says.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from ledger.calendar import add_years


@dataclass(frozen=True)
class LapseDue:
    """A lapse the facts say arose: its day, its amount, and the due date it missed."""

    on: date
    quantity: int
    verification_due: date


def owed_in_full(basis: str, quantity: int, buffer: int) -> int:
    """What a lapse owes before scaling: the buffer contribution (CIWP minimum) or all
    credits issued."""
    return {"none": 0, "buffer_contribution": buffer}.get(basis, quantity + buffer)


def scaled(owed: int, exposed: int, quantity: int) -> int:
    """``owed`` scaled by the share of ``quantity`` still exposed, rounded up to tonnes."""
    if quantity <= 0 or exposed <= 0:
        return 0
    return -(-owed * min(exposed, quantity) // quantity)


def due_as_of(
    t: date, issued_on: date, verifications: Sequence[date], interval_years: int | None
) -> date | None:
    """D(t): the last verification dated on or before ``t`` (or the issuance) + interval."""
    if interval_years is None:
        return None
    last = max((v for v in verifications if v <= t), default=issued_on)
    return add_years(max(last, issued_on), interval_years)


def expected_lapses(
    *,
    issued_on: date,
    period_end: date,
    verifications: Sequence[date],
    interval_years: int | None,
    grace_days: int,
    curable: bool,
    owed: int,
    quantity: int,
    exposed_on: Callable[[date], int],
) -> list[LapseDue]:
    """Every lapse the verification history implies, in date order.

    Not curable: at most one (the first). Curable: a verification dated on or after a
    lapse cures it as of its own date, and the clock runs again from there.
    """
    if interval_years is None or owed <= 0 or quantity <= 0:
        return []
    dates = sorted(set(verifications))
    out: list[LapseDue] = []
    anchor = issued_on
    while True:
        due = add_years(anchor, interval_years)
        if due >= period_end:
            return out
        deadline = due + timedelta(days=grace_days)
        verified = next((v for v in dates if anchor < v <= deadline), None)
        if verified is not None:
            anchor = verified
            continue
        day = deadline + timedelta(days=1)
        amount = scaled(owed, exposed_on(day), quantity)
        if amount <= 0:
            return out  # nothing exposed then, and exposure never comes back within the period
        out.append(LapseDue(day, amount, due))
        cure = next((v for v in dates if v >= day), None) if curable else None
        if cure is None:
            return out
        anchor = cure


def cure_date(lapse_on: date, verifications: Sequence[date]) -> date | None:
    """The first verification dated on or after a lapse: the day a curable lapse ends."""
    return min((v for v in verifications if v >= lapse_on), default=None)


def decisive_verifications(
    *,
    issued_on: date,
    period_end: date,
    recorded: Collection[date],
    candidates: Sequence[date],
    interval_years: int | None,
    grace_days: int,
) -> list[date]:
    """Which ``candidates`` (sorted) change what the verifications imply, given ``recorded``.

    Why: a project's issuances each imply a verification of its earlier vintages, so a
    project issued every month implies one per month on every vintage; only a few of them
    move a due date that matters. Recording just these gives the same lapses (days,
    amounts, missed due dates), the same cures, and the same last verification (hence the
    same due date and status today) as recording them all. From each anchor (the issuance,
    then each kept date) :func:`expected_lapses` moves to a verification within the due
    date plus grace; the latest such date leads to the same later walk as every one in
    between, and where none falls in time the next one (the cure) is the walk's next
    anchor in both. The latest date of all is kept for the due date as of today.
    """
    fresh = [d for d in candidates if d not in recorded]
    if not fresh:
        return []
    every = sorted(set(recorded).union(fresh))
    keep = {every[-1]}
    anchor = issued_on
    at = bisect_right(every, anchor)
    while interval_years is not None and at < len(every):
        due = add_years(anchor, interval_years)
        if due >= period_end:
            break
        last_in_time = bisect_right(every, due + timedelta(days=grace_days)) - 1
        anchor = every[last_in_time] if last_in_time >= at else every[at]
        keep.add(anchor)
        at = bisect_right(every, anchor)
    return [d for d in fresh if d in keep]
