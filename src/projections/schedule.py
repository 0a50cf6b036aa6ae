"""A vintage's as-of figures as dated steps, and the changes an event makes to them.

Every as-of figure of a vintage (exposure, due liability by obligor, buffer contribution,
cancellation, hold) is a step function of the business date that can change only on the
vintage's breakpoints. Evaluating it there and differencing gives dated deltas; an event's
effect is the difference between the schedules before and after it. Summing deltas dated
on or before ``t`` (recorded by ``known_at``) answers any as-of question without replaying
a single aggregate.
"""

from __future__ import annotations

from datetime import date

from ledger.vintage import Vintage

#: (measure, key, day) -> amount
Schedule = dict[tuple[str, str, date], int]


def values_at(v: Vintage, t: date) -> dict[tuple[str, str], int]:
    """The vintage's figures at business date ``t``, keyed by (measure, key)."""
    out: dict[tuple[str, str], int] = {}
    exposure = v.exposure_at(t)
    if exposure:
        out[("exposure", v.pool)] = exposure
    if v.transfer is not None:
        transferred = v.transferred_at(t)
        if transferred:
            out[("transferred", v.transfer.to)] = transferred
    if v.reversals or v.pool_cancellations:
        for obligor, owed in v.due_at(t).items():
            if owed:
                out[("due", obligor)] = owed
        cancelled = v.buffer_cancelled_at(t)
        if cancelled:
            out[("cancelled", v.pool)] = cancelled
    if v.buffer and t >= v.issued_on:
        out[("contributions", v.pool)] = v.buffer
    if v.holds or v.rules.lapse_holds_buffer:
        held = v.on_hold_at(t)
        if held:
            out[("on_hold", v.pool)] = held
    return out


def schedule(v: Vintage) -> Schedule:
    """All of the vintage's figures as dated deltas."""
    out: Schedule = {}
    previous: dict[tuple[str, str], int] = {}
    for day in v.breakpoints():
        current = values_at(v, day)
        for measure_key in current.keys() | previous.keys():
            delta = current.get(measure_key, 0) - previous.get(measure_key, 0)
            if delta:
                out[(measure_key[0], measure_key[1], day)] = delta
        previous = current
    return out


def difference(before: Schedule, after: Schedule) -> Schedule:
    """What an event changed: ``after - before``, without zero entries."""
    out: Schedule = {}
    for k in before.keys() | after.keys():
        delta = after.get(k, 0) - before.get(k, 0)
        if delta:
            out[k] = delta
    return out
