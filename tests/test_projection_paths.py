"""The projector's bulk path for ``Issued`` agrees with the aggregate path, for every profile."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

from ledger.mapper import PydanticMapper
from ledger.profiles import ProfileCatalog
from ledger.vintage import Vintage
from projections.projector import _issued_row, _state_row, _utc, issued_figures
from projections.schedule import schedule

CATALOG = ProfileCatalog.load()


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
                      quantity=1234, buffer=56, on=date(2024, 2, 29), rules=p.rules(),
                      vintage_year=2023, **extra)  # type: ignore[arg-type]
    (event,) = v.collect_events()
    stored = PydanticMapper().to_stored_event(event)
    n = Notification(id=7, originator_id=stored.originator_id,
                     originator_version=stored.originator_version, topic=stored.topic,
                     state=stored.state)
    row, changes = issued_figures(n)
    expected = {**_issued_row(v, _utc(event.timestamp), 7), **_state_row(v)}
    assert row == expected
    assert changes == schedule(v)
