"""One scenario suite, run on an SQLite file and on PostgreSQL (the ``runtime`` fixture).

Figures are computed by hand from the brief's reference semantics, to the tonne.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from ledger.errors import InvalidCommand, UnknownVintage
from permanence.runtime import Runtime
from projections.queries import Filters, buffer, liabilities
from projections.runoff import runoff
from tests.support import table_rows


def test_worked_example_on_every_backend(runtime: Runtime) -> None:
    app = runtime.app
    vid = app.issue(program="icvcm-ccp", project="P1", vintage_year=2024, quantity=80_000,
                    buffer=20_000, on=date(2025, 1, 1))
    app.verify(vid, date(2029, 6, 30))
    assert app.record_lapses([vid], date(2034, 6, 30)) == []
    assert app.record_lapses([vid], date(2034, 7, 9)) == [vid]
    assert app.record_lapses([vid], date(2034, 7, 10)) == []
    shown = app.show(vid, date(2034, 7, 1))
    assert shown["period_end"] == "2065-01-01"
    assert shown["verification_due"] == "2034-06-30"
    assert shown["status"] == "lapsed"
    assert shown["reversals"][0]["on"] == "2034-07-01"
    e = runtime.engine
    assert liabilities(e, date(2034, 6, 30))["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert liabilities(e, date(2034, 7, 1))["due"] == {"proponent": 20_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert liabilities(e, date(2064, 12, 31))["exposure"] == 80_000
    assert liabilities(e, date(2065, 1, 1))["exposure"] == 0


def _two_programs(runtime: Runtime) -> dict[str, str]:
    """Vintages in two programs and two pools, with a retirement, reversals and compensation."""
    app = runtime.app
    a = app.issue(program="icvcm-ccp", project="FOREST-1", vintage_year=2024, quantity=80_000,
                  buffer=20_000, on=date(2025, 1, 1))
    b = app.issue(program="carb-forest", project="FOREST-2", vintage_year=2023, quantity=50_000,
                  buffer=9_000, on=date(2025, 6, 1))
    app.retire(a, 30_000, date(2026, 1, 1))
    r = app.record_reversal(b, date(2027, 8, 15), 4_000, "wildfire")
    assert r == {"reversal_id": "R1", "classification": "unavoidable"}
    app.compensate(b, "R1", "buffer", 4_000, date(2027, 10, 1))
    h = app.record_reversal(a, date(2028, 3, 1), 1_500, "harvest")
    assert h["classification"] == "avoidable"
    app.cancel(a, 5_000, date(2029, 1, 1))
    return {"a": a, "b": b}


@pytest.mark.parametrize(
    ("day", "exposure", "due", "balance_ccp", "balance_carb"),
    [
        (date(2024, 12, 31), 0, {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 0, 0),  # before any issuance
        (date(2025, 1, 1), 80_000, {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 0),
        (date(2025, 6, 1), 130_000, {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 9_000),
        (date(2026, 1, 1), 130_000, {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 9_000),  # retirement
        (date(2027, 8, 15), 130_000, {"proponent": 0, "pool": 4_000, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 9_000),
        (date(2027, 10, 1), 130_000, {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),  # buffer cancel
        (date(2028, 3, 1), 130_000, {"proponent": 1_500, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),
        (date(2029, 1, 1), 125_000, {"proponent": 1_500, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),  # cancel 5k
        (date(2029, 3, 2), 125_000, {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),  # default
        (date(2065, 1, 1), 50_000, {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),  # a ends
        (date(2125, 6, 1), 0, {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}, 20_000, 5_000),  # b ends
    ],
)
def test_two_programs_two_pools_by_hand(
    runtime: Runtime, day: date, exposure: int, due: dict[str, int], balance_ccp: int,
    balance_carb: int,
) -> None:
    _two_programs(runtime)
    e = runtime.engine
    fast = liabilities(e, day)
    assert (fast["exposure"], fast["due"]) == (exposure, due)
    # the detail path (project filter) must agree with the roll-up
    by_project = [liabilities(e, day, Filters(project=p)) for p in ("FOREST-1", "FOREST-2")]
    assert sum(x["exposure"] for x in by_project) == exposure
    pools = {p["pool"]: p for p in buffer(e, day)["pools"]}
    assert pools.get("icvcm-ccp", {}).get("balance", 0) == balance_ccp
    assert pools.get("carb-forest", {}).get("balance", 0) == balance_carb


def test_groupings_and_coverage(runtime: Runtime) -> None:
    _two_programs(runtime)
    e = runtime.engine
    day = date(2030, 1, 1)
    by_program = liabilities(e, day, by="program")["groups"]
    assert by_program["icvcm-ccp"]["exposure"] == 75_000
    assert by_program["carb-forest"]["exposure"] == 50_000
    assert by_program["icvcm-ccp"]["due"] == {"proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}
    by_year = liabilities(e, day, by="vintage-year")["groups"]
    assert by_year["2024"]["exposure"] == 75_000 and by_year["2023"]["exposure"] == 50_000
    by_project = liabilities(e, day, by="project")["groups"]
    assert by_project["FOREST-2"]["exposure"] == 50_000
    by_bearer = liabilities(e, day, by="bearer")["groups"]
    assert by_bearer["carb-forest"]["exposure"] == 50_000
    carb = buffer(e, day, pool="carb-forest")
    assert (carb["contributions"], carb["cancelled"], carb["on_hold"], carb["balance"]) == (
        9_000, 4_000, 0, 5_000)
    assert carb["coverage_ratio"] == pytest.approx(5_000 / 50_000)
    ladder = runoff(e, day)
    assert ladder["years"] == [
        {"year": 2065, "exposure_ending": 75_000, "by_bearer": {"icvcm-ccp": 75_000}},
        {"year": 2125, "exposure_ending": 50_000, "by_bearer": {"carb-forest": 50_000}}]


def test_known_at_hides_a_back_dated_event_recorded_later(runtime: Runtime) -> None:
    app = runtime.app
    vid = app.issue(program="icvcm-ccp", project="P", quantity=10_000, buffer=2_500,
                    on=date(2025, 1, 1))
    time.sleep(0.02)
    between = datetime.now(UTC)
    time.sleep(0.02)
    app.record_reversal(vid, date(2026, 1, 1), 700, "storm")  # back-dated, recorded now
    e = runtime.engine
    assert liabilities(e, date(2027, 1, 1))["due"]["pool"] == 700
    earlier = liabilities(e, date(2027, 1, 1), known_at=between)
    assert earlier["due"]["pool"] == 0
    assert earlier["exposure"] == 10_000
    before_issue = liabilities(e, date(2027, 1, 1), known_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert before_issue["exposure"] == 0


def test_rebuild_equals_incremental_row_by_row(runtime: Runtime) -> None:
    ids = _two_programs(runtime)
    runtime.app.verify(ids["a"], date(2029, 6, 30))
    runtime.app.record_lapses([ids["b"]], date(2040, 1, 1))
    runtime.app.transfer_liability(ids["a"], "Trust Fund", "fund", date(2050, 1, 1))
    incremental = table_rows(runtime)
    assert incremental["proj_deltas"], "later events must produce deltas"
    runtime.projector.page_size = 3  # different page boundaries, same result
    runtime.projector.rebuild()
    assert table_rows(runtime) == incremental


def test_rejected_commands_store_nothing(runtime: Runtime) -> None:
    app = runtime.app
    vid = app.issue(program="icvcm-ccp", project="P", quantity=100, buffer=25, on=date(2025, 1, 1))
    before = app.recorder.max_notification_id()
    with pytest.raises(InvalidCommand):
        app.record_reversal(vid, date(2030, 1, 1), 126, "storm")
    with pytest.raises(InvalidCommand):
        app.verify(vid, date(2024, 1, 1))
    with pytest.raises(UnknownVintage):
        app.retire("00000000-0000-0000-0000-000000000000", 1, date(2030, 1, 1))
    with pytest.raises(InvalidCommand):
        app.issue_many([
            {"program": "icvcm-ccp", "project": "Q", "quantity": 5, "buffer": 1, "on": date(2025, 1, 1)},
            {"program": "icvcm-ccp", "project": "Q", "quantity": -5, "buffer": 1, "on": date(2025, 1, 1)},
        ])
    assert app.recorder.max_notification_id() == before


def test_verify_project_applies_to_monitored_vintages_in_one_transaction(runtime: Runtime) -> None:
    app = runtime.app
    ids = app.issue_many([
        {"program": "icvcm-ccp", "project": "P", "quantity": 10, "buffer": 2, "on": date(2025, 1, 1)},
        {"program": "icvcm-ccp", "project": "P", "quantity": 20, "buffer": 5, "on": date(2026, 1, 1)},
        {"program": "icvcm-ccp", "project": "OTHER", "quantity": 20, "buffer": 5, "on": date(2026, 1, 1)},
    ])
    verified = app.verify_project("P", date(2027, 6, 1))
    assert sorted(verified) == sorted(ids[:2])
    assert app.show(ids[0], date(2027, 6, 1))["verification_due"] == "2032-06-01"
    assert app.show(ids[2], date(2027, 6, 1))["verification_due"] == "2031-01-01"


def test_concurrent_writer_conflict_is_retried(
    runtime: Runtime, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer saves between our load and our save: we reload, retry, keep both."""
    from permanence.config import Settings

    other = Runtime(Settings(db=db_url))
    try:
        vid = runtime.app.issue(program="icvcm-ccp", project="P", quantity=100, buffer=25,
                                on=date(2025, 1, 1))
        loads = []
        original = runtime.app.vintage

        def racing_load(vintage_id: str, version: int | None = None):  # type: ignore[no-untyped-def]
            loaded = original(vintage_id, version)
            loads.append(loaded.version)
            if len(loads) == 1:
                other.app.retire(vid, 20, date(2026, 2, 1))  # commits after our load
            return loaded

        monkeypatch.setattr(runtime.app, "vintage", racing_load)
        runtime.app.retire(vid, 10, date(2026, 1, 1))
        assert loads == [1, 2]  # the first attempt conflicted; the retry saw the other write
        monkeypatch.undo()
        assert runtime.app.show(vid, date(2027, 1, 1))["retired"] == 30
        assert [type(e).__name__ for e in runtime.app.stream(vid)] == ["Issued", "Retired", "Retired"]
    finally:
        other.close()
