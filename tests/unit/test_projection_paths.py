"""The projector's bulk path for ``Issued`` agrees with the aggregate path, for every profile."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

import orjson
import pytest

from ledger.mapper import PydanticMapper
from ledger.profiles import ProfileCatalog
from ledger.vintage import Vintage
from projections.issued import FRESH, ROW_COLUMNS, IssuedRows, record_time
from projections.schedule import schedule
from projections.second_pass import STATE_COLUMNS, state_row
from projections.tables import record_time_text

CATALOG = ProfileCatalog.load()


def _issued_row(v: Vintage, recorded_at: str, nid: int) -> dict[str, Any]:
    """The issuance columns read off the aggregate, to check the bulk path against."""
    return {
        "vintage_id": str(v.id),
        "program": v.program,
        "pool": v.pool,
        "project": v.project,
        "vintage_year": v.vintage_year or 0,
        "serial_first": v.serial_first,
        "serial_last": v.serial_last,
        "source_key": v.source_key,
        "corresponding_adjustment": v.corresponding_adjustment,
        "quantity": v.quantity,
        "buffer": v.buffer,
        "issued_on": v.issued_on.isoformat(),
        "exposure_start": max(v.issued_on, v.clock_start).isoformat(),
        "period_end": v.period_end.isoformat(),
        "issued_recorded_at": recorded_at,
        "issued_nid": nid,
        "risk_class": v.risk_class,
        "reversible": v.reversible,
    }


@pytest.mark.parametrize("program", CATALOG.names())
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"crediting_start": date(2019, 3, 1), "crediting_end": date(2080, 12, 31)},
        {"crediting_start": date(2024, 2, 29)},
    ],
)
def test_bulk_issued_row_equals_aggregate_row(program: str, extra: dict[str, date]) -> None:
    p = CATALOG.get(program)
    v = Vintage.issue(vintage_id=uuid4(), program=p.name, pool=p.pool_name, project="P",
                      quantity=1234, buffer=456, on=date(2024, 2, 29), rules=p.rules(),
                      vintage_year=2023, **extra)  # type: ignore[arg-type]
    (event,) = v.collect_events()
    stored = PydanticMapper().to_stored_event(event)
    rolled: dict[tuple[str, str, str, str, str], int] = {}
    row = IssuedRows().row(7, str(stored.originator_id), stored.state, rolled)
    expected = {**_issued_row(v, record_time_text(event.timestamp), 7), **state_row(v)}
    assert {**dict(zip(ROW_COLUMNS, row, strict=True)), **FRESH} == expected
    assert tuple(state_row(v)) == STATE_COLUMNS  # the columns a replay worker writes
    assert rolled == {(m, k, d.isoformat(), p.name, p.pool_name): amount
                      for (m, k, d), amount in schedule(v).items()}


def test_bulk_row_reads_records_that_lack_later_optional_fields() -> None:
    """An ``Issued`` stored before the optional fields existed still projects."""
    p = CATALOG.get("verra-vcs")
    v = Vintage.issue(vintage_id=uuid4(), program=p.name, pool=p.pool_name, project="P",
                      quantity=10, buffer=2, on=date(2030, 1, 1), rules=p.rules())
    (event,) = v.collect_events()
    state = orjson.loads(PydanticMapper().to_stored_event(event).state)
    for name in ("vintage_year", "serial_first", "source_key", "crediting_end", "risk_class"):
        del state[name]
    row = IssuedRows().row(1, str(v.id), orjson.dumps(state), {})
    assert {**dict(zip(ROW_COLUMNS, row, strict=True)), **FRESH} == {
        **_issued_row(v, record_time_text(event.timestamp), 1), **state_row(v)}


@pytest.mark.parametrize("stamp, expected", [
    ("2026-11-21T07:40:06.225807+00:00", "2026-11-21T07:40:06.225807Z"),
    ("2026-11-21T07:40:06+00:00", "2026-11-21T07:40:06.000000Z"),
    ("2026-11-21T09:40:06.5+02:00", "2026-11-21T07:40:06.500000Z"),
])
def test_record_time_is_the_tables_utc_text(stamp: str, expected: str) -> None:
    assert record_time(stamp) == expected
