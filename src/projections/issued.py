"""A new vintage's read-model row straight from its stored ``Issued`` record.

``Issued`` is nearly every event a registry records, so this is the projector's hot path:
no aggregate, no validation, one JSON decode, and the clock dates (the same pure functions
the aggregate uses) computed once per distinct combination of rules and dates rather than
once per vintage. Tests check the row and the baseline agree with the aggregate path for
every profile.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from ledger import clock
from ledger.calendar import add_years
from ledger.events import Issued
from ledger.lapses import owed_in_full
from ledger.mapper import decode_state
from projections.tables import FRESH_INFO, record_time_text, vintages

#: A roll-up amount's key: (measure, key, ISO day, program, pool).
RollKey = tuple[str, str, str, str, str]

#: The columns :meth:`IssuedRows.row` fills, in this order (the table's): every column of
#: ``proj_vintages`` not marked fresh in :mod:`projections.tables`.
ROW_COLUMNS = tuple(c.name for c in vintages.columns if FRESH_INFO not in c.info)
#: The state columns of a vintage nothing has happened to since its issuance. The insert
#: writes them as SQL literals: a million rows then bind a third fewer values.
FRESH: dict[str, Any] = {c.name: c.info[FRESH_INFO] for c in vintages.columns if FRESH_INFO in c.info}

#: (issued_on, exposure_start, period_end, verification_due, lapse_arises_on, risk_due,
#: whether any exposure is carried), as ISO text.
_Dates = tuple[str, str, str, str | None, str | None, str | None, bool]

MEMO_SIZE = 100_000
ISSUED_TOPIC = get_topic(Issued)


class IssuedRows:
    """Turns stored ``Issued`` records into ``proj_vintages`` rows and baselines."""

    def __init__(self) -> None:
        self._dates: dict[tuple[Any, ...], _Dates] = {}
        self._versioned = getattr(Issued, "class_version", 1) > 1

    def row(
        self, nid: int, vintage_id: str, raw: bytes | str | memoryview, rolled: dict[RollKey, int]
    ) -> list[Any]:
        """The values of one issuance (in :data:`ROW_COLUMNS` order); its baseline is
        added to ``rolled`` (the roll-up amounts by measure, key, day, program and pool)."""
        s: dict[str, Any] = (
            decode_state(Issued, raw) if self._versioned or isinstance(raw, memoryview)
            else orjson.loads(raw)
        )
        try:
            return self._row(nid, vintage_id, s, rolled)
        except KeyError:  # recorded before an optional field existed
            return self._row(nid, vintage_id, {**OPTIONAL, **s}, rolled)

    def _row(self, nid: int, vintage_id: str, s: dict[str, Any], rolled: dict[RollKey, int]) -> list[Any]:
        rules = s["rules"]
        quantity, buffer_, pool, program = s["quantity"], s["buffer"], s["pool"], s["program"]
        reversible = s.get("reversible", True)
        lapses = reversible and quantity > 0 and owed_in_full(
            rules.get("liability_basis", "buffer_contribution"), quantity, buffer_) > 0
        key = (
            s["on"], s["crediting_start"], s["crediting_end"], rules["clock"],
            rules["period_years"], rules["whichever_later"],
            rules.get("verification_interval_years"), rules.get("grace_days", 0),
            rules.get("risk_reassessment_years"),
        )
        dates = self._dates.get(key)
        if dates is None:
            dates = _clock_dates(*key)
            if len(self._dates) >= MEMO_SIZE:
                self._dates.clear()
            self._dates[key] = dates
        on, start, end, due, lapse, risk_due, exposed = dates
        if not lapses:
            lapse = None
        exposed = exposed and reversible
        if exposed and quantity:
            k = ("exposure", pool, start, program, pool)
            rolled[k] = rolled.get(k, 0) + quantity
            k = ("exposure", pool, end, program, pool)
            rolled[k] = rolled.get(k, 0) - quantity
        if buffer_:
            k = ("contributions", pool, on, program, pool)
            rolled[k] = rolled.get(k, 0) + buffer_
        if not reversible and quantity:  # issued, never exposed: a measure of its own
            k = ("non_reversible", pool, on, program, pool)
            rolled[k] = rolled.get(k, 0) + quantity
        return [
            vintage_id, program, pool, s["project"], s["vintage_year"] or 0, s["serial_first"],
            s["serial_last"], s["source_key"], s["corresponding_adjustment"], quantity, buffer_,
            on, start, end, record_time(s["timestamp"]), nid, due, lapse, risk_due,
            pool, "monitored" if reversible else "non-reversible", quantity if exposed else 0,
            quantity, s["risk_class"], reversible,
        ]


#: Fields an ``Issued`` record may lack (recorded before they existed), and their defaults.
OPTIONAL: dict[str, Any] = {
    name: None
    for name in ("vintage_year", "serial_first", "serial_last", "source_key",
                 "corresponding_adjustment", "risk_class", "crediting_start", "crediting_end")
}


def _clock_dates(
    on_text: str,
    crediting_start: str | None,
    crediting_end: str | None,
    clock_name: str,
    period_years: int,
    whichever_later: bool,
    interval_years: int | None,
    grace_days: int,
    risk_years: int | None,
) -> _Dates:
    on = date.fromisoformat(on_text)
    start = clock.clock_start(clock_name, on, _day(crediting_start))
    end = clock.period_end(start, period_years, whichever_later, _day(crediting_end))
    due = clock.verification_due(on, interval_years)
    exposure_start = max(on, start)
    lapse = clock.lapse_arises_on(due, end, grace_days)
    if lapse is not None and not exposure_start <= lapse < end:
        lapse = None  # nothing exposed on the day: no lapse is recorded
    return (
        on.isoformat(),
        exposure_start.isoformat(),
        end.isoformat(),
        _iso(due),
        _iso(lapse),
        add_years(on, risk_years).isoformat() if risk_years else None,
        exposure_start < end,
    )


def record_time(stamp: str) -> str:
    """A stored ISO record time as the tables' fixed-width UTC text.

    Stored times are UTC with microseconds (``...:SS.ffffff+00:00``), which is a slice away
    from the table format; anything else takes the general conversion.
    """
    if len(stamp) == 32 and stamp.endswith("+00:00") and stamp[19] == ".":
        return stamp[:26] + "Z"
    return record_time_text(datetime.fromisoformat(stamp))


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None
